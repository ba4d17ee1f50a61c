"""Tools for running mcsf on one machine: the sandbox process, an Airflow home wired to it.

Used by ``make demo``, ``make up``, the benchmarks and the integration tests — never by the
product code in ``plugins/mcsf``.
"""
