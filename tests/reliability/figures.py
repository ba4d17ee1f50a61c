"""Sum the figures the reliability tests append to ``$MCSF_RELIABILITY_FIGURES`` into Markdown tables.

``python -m tests.reliability.figures figures.jsonl`` prints the tables docs/reliability.md shows.
"""

from __future__ import annotations

import json
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any


def _table(head: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def summarize(records: list[dict[str, Any]]) -> str:
    by_kind: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        by_kind[record["kind"]].append(record)
    out = []
    faults = by_kind.get("faults", [])
    if faults:
        injected: Counter[str] = Counter()
        for f in faults:
            injected.update(f["faults_injected"])
        out.append(_table(
            ["fault seeds", "sync runs (hourly + nightly)", "requests (fault-free twin)", "faults injected",
             "records checked", "lost", "duplicated", "different", "requests retried (logged)",
             "rows re-submitted (logged)", "most retries of one request", "task-level retries", "wall time"],
            [[len(faults), f"{sum(f['runs'] for f in faults)} ({sum(f['hourly_runs'] for f in faults)} + "
              f"{sum(f['nightly_runs'] for f in faults)})",
              f"{sum(f['requests'] for f in faults)} ({sum(f['requests_fault_free'] for f in faults)})",
              ", ".join(f"{k}: {v}" for k, v in sorted(injected.items())),
              sum(f["records_checked"] for f in faults), sum(f["lost"] for f in faults),
              sum(f["duplicated"] for f in faults), sum(f["different"] for f in faults),
              sum(f["retried_requests_logged"] for f in faults), sum(f["retried_rows_logged"] for f in faults),
              max(f["highest_retry"] for f in faults), sum(f["task_retries"] or 0 for f in faults),
              f"{sum(f['seconds'] for f in faults) / 60:.0f} min"]]))
    crashes = by_kind.get("crash", [])
    if crashes:
        landed = Counter(f"{c['step']}: {c['landed']}" for c in crashes)
        out.append(_table(
            ["trials", "killed mid-run", "where the kills landed", "rows missing right after the kill",
             "records checked after the re-run", "lost", "duplicated", "different", "duplicate Leads",
             "duplicate subscribers"],
            [[len(crashes), sum(c["killed"] for c in crashes),
              "; ".join(f"{k} ×{v}" for k, v in sorted(landed.items())),
              sum(c["rows_missing_right_after_kill"] for c in crashes), sum(c["records_checked"] for c in crashes),
              sum(c["lost"] for c in crashes), sum(c["duplicated"] for c in crashes),
              sum(c["different"] for c in crashes), sum(c["duplicate_leads"] for c in crashes),
              sum(c["duplicate_subscribers"] for c in crashes)]]))
    for hostile in by_kind.get("hostile", []):
        out.append(_table(["records", *hostile["outcomes"], "loaded byte-exact", "loaded after documented cleaning"],
                          [[hostile["records"], *hostile["outcomes"].values(), hostile["exact"],
                            hostile["cleaned_only"]]]))
        out.append(_table(["category", "outcomes"], [[k, ", ".join(f"{o} {n}" for o, n in v.items())]
                                                     for k, v in sorted(hostile["by_category"].items())]))
    security = by_kind.get("security", []) + by_kind.get("security-airflow", [])
    if security:
        out.append(_table(["search", "artifacts", "leaked", "files holding emails (by design)"],
                          [[s["kind"], s["artifacts_searched"], s["leaked"], ", ".join(s["files_holding_emails"])]
                           for s in security]))
    for fuzz in by_kind.get("fuzz", []):
        out.append(_table(["schemathesis", "operations", "calls", "rounds", "5xx"],
                          [[fuzz["schemathesis"], fuzz["operations"], fuzz["calls"], fuzz["rounds"],
                            fuzz["server_errors"]]]))
    auth = by_kind.get("auth", [])
    if auth:
        out.append(_table(["emulator", "routes", "open without valid credentials"],
                          [[a["api"], a["routes"], a["open"]] for a in auth]))
    return "\n\n".join(out)


def main(argv: list[str]) -> int:
    records = [json.loads(line) for line in Path(argv[0]).read_text().splitlines() if line.strip()]
    sys.stdout.write(summarize(records) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
