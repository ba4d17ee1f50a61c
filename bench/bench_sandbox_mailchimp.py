"""Benchmark of the Mailchimp emulator: seeding speed and the latency of big member pages.

Seeds a fresh state dir (default 100,000 members in one audience), starts
``python -m sandbox serve --no-salesforce`` on it and times pages of 1000 members the way
the sync reads them. Server time is ``response.elapsed`` (request sent to headers received;
the emulator builds the whole body before it sends headers). Because wall time on a shared
machine says as much about the neighbours as about the emulator, the same cases are also run
in-process through the emulator's own handlers and timed in CPU time of the calling thread
(SQLite included). Prints a table and, with ``--json``, writes the figures as JSON.

    python bench/bench_sandbox_mailchimp.py --members 100000 --json bench-mailchimp.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from devtools.sandbox_proc import start_sandbox  # noqa: E402


def _seed(state: Path, members: int, audiences: int, events: int, anchor: datetime) -> float:
    from sandbox.mailchimp.seed import SeedSizes, seed_mailchimp
    from sandbox.mailchimp.store import Store

    start = time.perf_counter()
    seed_mailchimp(Store(state), 7, anchor, SeedSizes(audiences, members // audiences, 12, events))
    return time.perf_counter() - start


def _time(session: Any, url: str, params: dict[str, Any], repeat: int) -> dict[str, Any]:
    samples, size, items = [], 0, 0
    for _ in range(repeat):
        response = session.get(url, params=params)
        response.raise_for_status()
        samples.append(response.elapsed.total_seconds() * 1000)
        size, items = len(response.content), len(next(v for v in response.json().values() if isinstance(v, list)))
    return {"median_ms": round(statistics.median(samples), 1), "max_ms": round(max(samples), 1),
            "items": items, "bytes": size}


def _cpu_times(state_dir: Path, cases: dict[str, tuple[str, dict[str, Any]]], repeat: int) -> dict[str, float]:
    """Median CPU milliseconds per case, handlers called in-process (no HTTP, no scheduling noise)."""
    from sandbox.controls import Controls
    from sandbox.mailchimp.app import PUBLIC
    from sandbox.mailchimp.batches import Dispatcher
    from sandbox.mailchimp.routing import AppState
    from sandbox.mailchimp.store import Store

    state = AppState(Store(state_dir), "http://127.0.0.1/3.0", Controls())
    dispatcher = Dispatcher.of(list(PUBLIC))
    out = {}
    for name, (path, params) in cases.items():
        samples = []
        for _ in range(repeat + 1):
            start = time.thread_time()
            status, _ = dispatcher.run(state, "GET", path, params, None)
            samples.append((time.thread_time() - start) * 1000)
            assert status == 200, (name, status)
        out[name] = round(statistics.median(samples[1:]), 1)
    return out


def run(members: int, audiences: int, events: int, repeat: int) -> dict[str, Any]:
    import requests

    anchor = datetime(2026, 11, 20, 10, tzinfo=UTC)
    with tempfile.TemporaryDirectory(prefix="bench-mailchimp-") as tmp:
        state = Path(tmp)
        seed_s = _seed(state, members, audiences, events, anchor)
        with start_sandbox(state, "--no-salesforce", "--no-seed") as proc:
            base = proc.info["mailchimp_url"]
            session = requests.Session()
            session.auth = ("bench", proc.info["mailchimp_api_key"])
            list_id = session.get(f"{base}/lists").json()["lists"][0]["id"]
            total = session.get(f"{base}/lists/{list_id}/members", params={"count": 1}).json()["total_items"]
            target = f"{base}/lists/{list_id}/members"
            cases = {
                "page 1000, offset 0": {"count": 1000},
                f"page 1000, offset {total // 2}": {"count": 1000, "offset": total // 2},
                f"page 1000, offset {total - 1000}": {"count": 1000, "offset": total - 1000},
                "page 1000, exclude members._links": {"count": 1000, "exclude_fields": "members._links"},
                "page 1000, status=subscribed, deep": {"count": 1000, "status": "subscribed", "offset": total // 2},
                "1-hour window (last_changed)": {"count": 1000, "since_last_changed": "2026-11-20T09:00:00+00:00",
                                                 "before_last_changed": "2026-11-20T10:00:00+00:00"},
                "1-day window, sorted by last_changed": {
                    "count": 1000, "since_last_changed": "2026-11-19T10:00:00+00:00",
                    "before_last_changed": "2026-11-20T10:00:00+00:00", "sort_field": "last_changed"},
            }
            results = {name: _time(session, target, params, repeat) for name, params in cases.items()}
            campaign = session.get(f"{base}/campaigns", params={"status": "sent", "count": 1}).json()["campaigns"][0]
            activity = f"/reports/{campaign['id']}/email-activity"
            results["email-activity page 1000"] = _time(session, base + activity, {"count": 1000}, repeat)
            start = time.perf_counter()
            for offset in range(0, total, 1000):
                session.get(target, params={"count": 1000, "offset": offset,
                                            "exclude_fields": "members._links"}).raise_for_status()
            full_s = time.perf_counter() - start
        cpu = _cpu_times(state, {**{name: (f"/lists/{list_id}/members", params) for name, params in cases.items()},
                                 "email-activity page 1000": (activity, {"count": 1000})}, repeat)
    for name, ms in cpu.items():
        results[name]["cpu_ms"] = ms
    return {"members": members, "audiences": audiences, "activity_events": events, "seed_seconds": round(seed_s, 1),
            "seed_members_per_second": round(members / seed_s), "pages": results,
            "full_audience_read_seconds": round(full_s, 1), "full_audience_members": total}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=100_000, help="members in total (default 100000)")
    parser.add_argument("--audiences", type=int, default=1, help="audiences to spread them over (default 1)")
    parser.add_argument("--activity-events", type=int, default=100_000, help="activity events (default 100000)")
    parser.add_argument("--repeat", type=int, default=5, help="requests per case (default 5)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    figures = run(args.members, args.audiences, args.activity_events, args.repeat)
    print(f"seeded {figures['members']:,} members in {figures['seed_seconds']} s "
          f"({figures['seed_members_per_second']:,}/s); read the whole audience in "
          f"{figures['full_audience_read_seconds']} s")
    print(f"{'case':45} {'HTTP median ms':>14} {'max ms':>8} {'CPU ms':>7} {'items':>6} {'KiB':>7}")
    for name, row in figures["pages"].items():
        print(f"{name:45} {row['median_ms']:>14} {row['max_ms']:>8} {row['cpu_ms']:>7} {row['items']:>6} "
              f"{row['bytes'] // 1024:>7}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
