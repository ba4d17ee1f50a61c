"""What the logs say: progress of long reads and writes, and the one-line summary per audience.

Only counts, names of audiences and fields, and reasons go to logs — never emails, merge values,
keys or tokens. The summary is also returned as a small dict for XCom and the status page.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any

log = logging.getLogger("mcsf")

PROGRESS_EVERY_S = 30.0


class Progress:
    """A ``progress(done, total)`` callback that logs at most every ``every`` seconds.

    Logs rows done of the total, the rate and the time left, so a log read mid-run tells how
    far a long extract or load is.
    """

    def __init__(self, label: str, every: float = PROGRESS_EVERY_S) -> None:
        self.label = label
        self.every = every
        self.started = time.monotonic()
        self.last = self.started

    def __call__(self, done: int, total: int | None = None) -> None:
        now = time.monotonic()
        if now - self.last < self.every and (total is None or done < total):
            return
        self.last = now
        elapsed = max(now - self.started, 1e-6)
        rate = done / elapsed
        if total:
            left = (total - done) / rate if rate else float("inf")
            log.info("%s: %s of %s (%.0f%%), %.0f/s, about %.0f s left",
                     self.label, done, total, 100 * done / total, rate, left)
        else:
            log.info("%s: %s so far, %.0f/s", self.label, done, rate)


def top_reasons(reasons: Counter[str] | dict[str, int], n: int = 3) -> str:
    counted = Counter(reasons)
    return ", ".join(f"{reason} ×{count}" for reason, count in counted.most_common(n)) or "none"


def summary_line(title: str, counts: dict[str, Any]) -> str:
    """The analyst's line, e.g.
    ``SUMMARY Newsletter (a1b2c3) [2026-11-20 09:00, 10:00): extracted 120 · rejected 3 (invalid email ×2) · …``.
    """
    parts = [f"extracted {counts.get('extracted', 0)}"]
    if "rejected" in counts:
        parts.append(f"rejected {counts['rejected']} ({top_reasons(counts.get('reject_reasons', {}))})")
    for key, label in (
        ("leads_created", "leads created"),
        ("contacts_linked", "contacts linked"),
        ("leads_linked", "leads linked"),
        ("created", "records created"),
        ("updated", "records updated"),
        ("unchanged", "unchanged"),
        ("deleted", "deleted"),
        ("load_failed", "refused by Salesforce"),
    ):
        if key in counts:
            parts.append(f"{label} {counts[key]}")
    requests = counts.get("requests", {})
    if requests:
        parts.append("requests " + ", ".join(f"{api} {n}" for api, n in sorted(requests.items())))
    if counts.get("dry_run"):
        parts.append("DRY RUN: nothing written")
    return f"SUMMARY {title}: " + " · ".join(parts)


def log_summary(title: str, counts: dict[str, Any]) -> str:
    line = summary_line(title, counts)
    log.info("%s", line)
    return line
