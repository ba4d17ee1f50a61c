"""The two sizes of ``python -m bench``: ``full`` (the published figures) and ``small`` (≤ 2 minutes)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True)
class Size:
    name: str
    audiences: int
    members_per_audience: int  # the seed's --members (per audience)
    change_share: float  # scenario 2: share of every audience's members changed in the window
    activity_events: int  # scenario 4: events in one day's window, over all activity audiences
    activity_campaigns_per_audience: int
    push_contacts: int  # scenario 5: Contacts the Query Builder pushes
    core_rows: int  # scenario 6: rows through map + validate
    peer_b_records: int  # per-record REST upserts: what such a loader finishes in reasonable time
    peer_a_activity_cap: int  # peer (a) in scenario 4 holds its whole payload in memory: capped, extrapolated
    airbyte_records: int  # peer (c) reads the most recently changed members only (~10 records/s here)

    @property
    def members(self) -> int:
        return self.audiences * self.members_per_audience


SIZES = {
    "full": Size("full", 3, 333_334, 0.01, 5_000_000, 2, 100_000, 1_000_000, 2_000, 1_000_000, 3_000),
    "small": Size("small", 3, 2_000, 0.01, 20_000, 2, 2_000, 100_000, 100, 20_000, 300),
    # for profiling: big enough that per-row costs show, small enough to run in minutes
    "medium": Size("medium", 3, 50_000, 0.01, 500_000, 2, 20_000, 300_000, 200, 100_000, 1_000),
}
SEED = 7
#: The seed's "now". Scenario 1 syncs [ANCHOR-1h, ANCHOR) (a first load is always full), scenario 2
#: the next hour, scenario 3 the hour after, scenario 4 the day after the anchor's day.
ANCHOR = datetime(2026, 11, 20, 10, tzinfo=UTC)
