"""Run a sync's steps in this process, in the order the DAG chains them (no scheduler, no DB).

The integration tests use it for the many property checks (same interval twice, backfill order,
full resync) where starting Airflow per run would cost minutes; the DAGs themselves are run
through real Airflow (``airflow dags test``) by their own end-to-end tests.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import traceback
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime


def run_sync(start: datetime, end: datetime, *, activity: bool = False, audiences: list[str] | None = None,
             full_resync: bool = False, dry_run: bool = False,
             campaigns: list[str] | None = None, side_by_side: bool = False) -> list[dict[str, Any]]:
    """Preflight, then extract -> map -> validate -> load -> report per audience; the reports.

    :param side_by_side: run the audiences' map, validate and load tasks at the same time, as
        Airflow runs a mapped task's instances (extracts stay one at a time, as the DAGs'
        ``max_active_tis_per_dagrun=1`` says). Meant for steps that each run in a process of their
        own (the benchmark's :func:`bench.runs.timed`), as Airflow's tasks do; otherwise one after another.
    """
    from mcsf import activity_sync, audience

    if activity:
        ready = audience.preflight_activity(start, end, audiences=audiences, campaigns=campaigns, dry_run=dry_run)
        steps = (activity_sync.extract, activity_sync.map_, activity_sync.validate, activity_sync.load)
    else:
        ready = audience.preflight(start, end, audiences=audiences, full_resync=full_resync, dry_run=dry_run)
        steps = (audience.extract, audience.map_, audience.validate, audience.load_people, audience.load_subscribers)
    # Like Airflow's expand over a mapped task: every audience finishes a step before the next starts.
    for n, step in enumerate(steps):
        ready = each(step, ready, side_by_side=side_by_side and n > 0)
    return [audience.report(item) for item in ready]


def each(step: Callable[[Any], Any], items: list[Any], *, side_by_side: bool) -> list[Any]:
    """``[step(item) for item in items]``, the calls at the same time when ``side_by_side``; the
    first error raised is raised once every call has ended (as a mapped task fails after its peers)."""
    if not side_by_side or len(items) < 2:
        return [step(item) for item in items]
    from concurrent.futures import ThreadPoolExecutor, wait

    with ThreadPoolExecutor(max_workers=len(items), thread_name_prefix="mapped-task") as pool:
        futures = [pool.submit(step, item) for item in items]
        wait(futures)
    return [f.result() for f in futures]


def in_fresh_process(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` in a forked child, as Airflow runs each task in a process of its own.

    The child's peak memory is then its own (see :func:`measured_in_fresh_process`); what it
    returns (a step's XCom-sized dict) comes back pickled, and so does what it raises.
    """
    return measured_in_fresh_process(fn, *args, **kwargs)[0]


def measured_in_fresh_process(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, float]:
    """:func:`in_fresh_process`, also returning the child's peak resident set in MB (``wait4``'s
    usage of that one child, so one task's figure, not the largest of every child so far)."""
    receive, send = multiprocessing.Pipe(duplex=False)
    pid = os.fork()
    if pid == 0:  # the child: run, answer, leave without the parent's exit handlers
        code = 0
        try:
            try:
                payload = (True, fn(*args, **kwargs))
            except BaseException as err:  # handed to the parent, which raises it
                code = 1
                try:
                    pickle.dumps(err)
                    payload = (False, err)
                except Exception:  # one that cannot travel: its text does
                    payload = (False, RuntimeError("".join(traceback.format_exception(err))))
            send.send(payload)
        finally:
            os._exit(code)
    send.close()
    try:
        ok, value = receive.recv()
    except EOFError:
        ok, value = False, RuntimeError(f"{getattr(fn, '__name__', fn)}: the child process died without an answer")
    finally:
        receive.close()
        usage = os.wait4(pid, 0)[2]
    if not ok:
        raise value
    return value, usage.ru_maxrss / 1024  # Linux: KiB
