"""What a worker runs: mcsf's scenarios through its DAG steps, and the peers (see :mod:`bench.peers`).

Each runner takes the worker's spec and returns ``rows`` plus whatever explains the figure
(time per step, counts from the run's reports). mcsf runs through ``devtools.runner.run_sync``,
the DAG's steps in DAG order, each task in a process of its own, the audiences' tasks after
extract side by side as Airflow runs mapped tasks (or, with ``--mapped one-at-a-time``, one after
another); each step's time is summed over audiences, so ``steps`` adds up to task time, not wall time.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from types import ModuleType

AUDIENCE_STEPS = ("preflight", "extract", "map_", "validate", "load_people", "load_subscribers", "report")
ACTIVITY_STEPS = ("extract", "map_", "validate", "load")


#: What every task process of the DAGs imports: loaded once, before the steps fork, so the figures
#: are the steps' work and not ~5 s of imports per task process (GX alone takes 3.5 s to import).
PRELOAD = ("pyarrow.parquet", "great_expectations", "airflow.sdk", "mcsf.hooks.mailchimp", "mcsf.hooks.salesforce",
           "mcsf.validate", "mcsf.mapping", "mcsf.extract", "mcsf.audience_load", "mcsf.activity_sync")


@contextmanager
def timed(steps: dict[str, float], module: ModuleType, names: tuple[str, ...], prefix: str = "",
          rss: dict[str, float] | None = None) -> Iterator[None]:
    """Add the seconds spent in ``module.<name>`` (summed over calls) to ``steps``; each call runs in
    a process of its own, as each Airflow task does, so the peak RSS measured is a task's (with the
    :data:`PRELOAD` libraries in it, as a task would have them); ``rss`` gets each step's largest."""
    import importlib
    import threading

    from devtools.runner import measured_in_fresh_process

    lock = threading.Lock()  # mapped tasks may run side by side (devtools.runner.each)

    for name in PRELOAD:  # imports only: no client, session or connection exists before the fork
        importlib.import_module(name)
    originals = {name: getattr(module, name) for name in names}

    def wrap(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed_call(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            step = prefix + name.rstrip("_")
            try:
                value, peak = measured_in_fresh_process(fn, *args, **kwargs)
            finally:
                with lock:
                    steps[step] += time.perf_counter() - started
            if rss is not None:
                with lock:
                    rss[step] = max(rss.get(step, 0.0), round(peak, 1))
            return value
        return timed_call

    for name, fn in originals.items():
        setattr(module, name, wrap(name, fn))
    try:
        yield
    finally:
        for name, fn in originals.items():
            setattr(module, name, fn)


def _window(spec: dict[str, Any]) -> tuple[datetime, datetime]:
    start, end = spec["window"]
    return datetime.fromisoformat(start), datetime.fromisoformat(end)


def _merge(reports: list[dict[str, Any]]) -> dict[str, Any]:
    by_object: dict[str, Counter[str]] = defaultdict(Counter)
    totals: Counter[str] = Counter()
    for report in reports:
        for name, counts in report.get("by_object", {}).items():
            by_object[name].update(counts)
        totals.update({k: report.get(k, 0) for k in ("extracted", "created", "updated", "unchanged", "rejected",
                                                      "leads_created", "load_failed", "deleted")})
    return {**totals, "by_object": {k: dict(v) for k, v in by_object.items()}}


def mcsf_sync(spec: dict[str, Any]) -> dict[str, Any]:
    """Scenarios 1-3: the hourly DAG's steps for the spec's window."""
    from devtools.runner import run_sync
    from mcsf import audience

    steps: dict[str, float] = defaultdict(float)
    rss: dict[str, float] = {}
    with timed(steps, audience, AUDIENCE_STEPS, rss=rss):
        reports = run_sync(*_window(spec), side_by_side=spec.get("side_by_side", False))
    merged = _merge(reports)
    return {"rows": merged["extracted"], "steps": {k: round(v, 2) for k, v in steps.items()}, "outcome": merged,
            "full": [r.get("full_reason") for r in reports], "peak_rss_mb_by_step": rss}


def mcsf_activity(spec: dict[str, Any]) -> dict[str, Any]:
    """Scenario 4: the nightly DAG's steps for one day."""
    from devtools.runner import run_sync
    from mcsf import activity_sync, audience

    steps: dict[str, float] = defaultdict(float)
    rss: dict[str, float] = {}
    with timed(steps, audience, ("preflight_activity", "report"), rss=rss), \
            timed(steps, activity_sync, ACTIVITY_STEPS, rss=rss):
        reports = run_sync(*_window(spec), activity=True, side_by_side=spec.get("side_by_side", False))
    merged = _merge(reports)
    return {"rows": merged["extracted"], "steps": {k: round(v, 2) for k, v in steps.items()}, "outcome": merged,
            "peak_rss_mb_by_step": rss}


def mcsf_push(spec: dict[str, Any]) -> dict[str, Any]:
    """Scenario 5: the Query Builder task (:func:`mcsf.querybuilder.run`) for the spec's window."""
    from mcsf import querybuilder

    summaries = querybuilder.run(*_window(spec))
    keys = ("matched", "pushed", "created", "updated", "rejected", "kept_status")
    outcome = {k: sum(int(s.get(k) or 0) for s in summaries) for k in keys}
    return {"rows": outcome["matched"], "outcome": outcome, "requests_reported": [s["requests"] for s in summaries]}


def mcsf_extract_members(spec: dict[str, Any]) -> dict[str, Any]:
    """Next to Airbyte: mcsf's member read of every audience (the extract's Mailchimp part), through
    the same TLS front (the connection's base URL is the real host name)."""
    from mcsf.extract import MEMBER_FIELDS, members_frame
    from mcsf.hooks.mailchimp import MailchimpHook

    hook = MailchimpHook()
    rows = sum(len(members_frame(hook.iter_members(list_id, fields=MEMBER_FIELDS))) for list_id in spec["lists"])
    return {"rows": rows}


def core(spec: dict[str, Any]) -> dict[str, Any]:
    from bench.core import run

    return run(spec["rows"])


def _peer(name: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def run(spec: dict[str, Any]) -> dict[str, Any]:
        from bench import airbyte, peers

        module = airbyte if name == "airbyte" else peers
        return getattr(module, f"run_{name}")(spec)
    return run


RUNNERS: dict[tuple[str, str], Callable[[dict[str, Any]], dict[str, Any]]] = {
    ("1", "mcsf"): mcsf_sync, ("2", "mcsf"): mcsf_sync, ("3", "mcsf"): mcsf_sync,
    ("4", "mcsf"): mcsf_activity, ("5", "mcsf"): mcsf_push, ("6", "mcsf"): core,
    ("1", "mcsf_extract_tls"): mcsf_extract_members,
    ("1", "a"): _peer("a_members"), ("2", "a"): _peer("a_members"), ("3", "a"): _peer("a_members"),
    ("4", "a"): _peer("a_activity"), ("1", "b"): _peer("b_members"), ("5", "b"): _peer("b_push"),
    ("1", "c"): _peer("airbyte"),
}
