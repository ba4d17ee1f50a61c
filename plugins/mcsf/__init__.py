"""mcsf: Airflow 3 DAGs that keep a Mailchimp account and a Salesforce org in step."""


def _arrow_memory_pool() -> None:
    """Arrow allocates from the system allocator, which gives big freed buffers back, not from its
    default pool (mimalloc), which keeps them: a task's RSS would stay at its highest point while
    the next Bulk job is built. Probe (two Bulk jobs in flight, 1.2 M rows, one process): peak
    1,403 MB with mimalloc, 1,218 MB with the system pool. An operator's ``ARROW_DEFAULT_MEMORY_POOL``
    wins. Set when mcsf is first imported, before any of its frames exist."""
    import os

    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        return
    import pyarrow as pa

    pa.set_memory_pool(pa.system_memory_pool())


_arrow_memory_pool()
