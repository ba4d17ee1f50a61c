"""One timed run in a process of its own: ``python -m bench.worker SPEC.json``.

A fresh process per (scenario, contender) makes its peak RSS its own (``getrusage`` of the process
plus its children, e.g. the Airbyte connector). The spec names the scenario, the contender, the
environment (sandbox URLs and keys, mcsf's folders) and where to write the result: wall time,
rows, time per step and peak RSS. Request counts are read from the sandbox by the orchestrator.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any


def peak_rss_mb() -> dict[str, float]:
    """Peak resident set of this process and of its largest waited-for child (Linux: KiB); ``per_task``
    when the children were the steps (one at a time, see :func:`bench.runs.timed`)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"self": round(own, 1), "children": round(children, 1), "total": round(own + children, 1),
            "per_task": round(max(own, children), 1)}


class TreeRss:
    """The most memory this process and all its children held at once (sampled every 0.2 s with
    psutil): what a worker box needs when mapped tasks run side by side. Proportional set sizes:
    the pages a forked task still shares with its parent count once, not in both."""

    def __init__(self) -> None:
        import threading

        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="tree-rss", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._stop.wait(0.2):
            total = 0
            for proc in [me, *me.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    total += proc.memory_full_info().pss
            self.peak_mb = max(self.peak_mb, total / 2**20)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return round(self.peak_mb, 1)


def quiet_logs() -> None:
    """Only warnings and errors: a million rows of progress lines would cost time of their own."""
    logging.disable(logging.INFO)
    for name in ("mcsf", "airflow", "great_expectations", "simple_salesforce", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)


def main(spec_path: str) -> int:
    spec: dict[str, Any] = json.loads(Path(spec_path).read_text())
    os.environ.update(spec.get("env", {}))
    quiet_logs()
    from bench import runs

    runner = runs.RUNNERS[(spec["scenario"], spec["contender"])]
    tree = TreeRss()
    started = time.perf_counter()
    cpu0 = time.process_time()
    outcome = runner(spec)
    wall = time.perf_counter() - started
    at_once = tree.stop()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = time.process_time() - cpu0 + children.ru_utime + children.ru_stime  # children: e.g. the Airbyte connector
    result = {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), **outcome,
              "peak_rss_mb": {**peak_rss_mb(), "at_once": at_once}}
    Path(spec["out"]).write_text(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
