"""Request budgets of the benchmark scenarios on a small sandbox: counts, which are deterministic.

The full benchmark (``make bench``) measures times and memory; here only how many HTTP requests
a run makes, against the lower bounds of :mod:`bench.lower_bound` and the brief's budgets, so a
change that adds requests fails ``make test``. Times are printed, never asserted.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pytest

from bench import lower_bound, setup_data
from bench.env import Sandbox
from bench.sizes import SIZES

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

SIZE = replace(SIZES["small"], name="test", members_per_audience=300, push_contacts=1_200)
WINDOWS = setup_data.windows()


class Run:
    """A sandbox with the bench's mappings, and mcsf pointed at it."""

    def __init__(self, root: Path) -> None:
        self.box = Sandbox.start(root, 0, SIZE)
        setup_data.write_mappings(self.box)
        self.audiences = setup_data.audience_sizes(self.box)
        self.saved = {k: os.environ.get(k) for k in self.box.env()}
        os.environ.update(self.box.env())

    def sync(self, window: str, **params: Any) -> tuple[list[dict[str, Any]], dict[str, int]]:
        """Run the hourly sync's steps for ``window``; the reports and requests per API."""
        from devtools.runner import run_sync

        self.box.reset_counts()
        started = time.perf_counter()
        reports = run_sync(*WINDOWS[window], **params)
        counts = {api: snap["total"] for api, snap in self.box.counts().items()}
        print(f"\nscenario {window}: {counts} requests in {time.perf_counter() - started:.1f} s (not asserted)")
        return reports, counts

    def close(self) -> None:
        for key, value in self.saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self.box.stop()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    bench = Run(tmp_path_factory.mktemp("bench"))
    try:
        yield bench
    finally:
        bench.close()


@pytest.fixture(scope="module")
def first(run: Run) -> tuple[list[dict[str, Any]], dict[str, int]]:
    return run.sync("1")


def _by_object(reports: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    merged: dict[str, dict[str, int]] = {}
    for report in reports:
        for name, counts in report["by_object"].items():
            for key, n in counts.items():
                merged.setdefault(name, {}).setdefault(key, 0)
                merged[name][key] += n
    return merged


def test_first_sync_reads_every_member_in_pages_of_1000(run: Run, first: tuple[list[dict[str, Any]], dict[str, int]]):
    reports, counts = first
    assert sum(r["extracted"] for r in reports) == sum(a["members"] for a in run.audiences.values())
    bound = lower_bound.audience_sync(run.audiences, {k: a["members"] for k, a in run.audiences.items()}, full=True,
                                      by_object=_by_object(reports), row_bytes={})
    print(f"first sync: {counts} vs lower bound {bound['total']}")
    assert counts["mailchimp"] <= bound["mailchimp"] + 4 * len(run.audiences) + 1  # preflight: list, merge fields
    assert counts["salesforce"] <= FIRST_SYNC_SALESFORCE, counts


#: Salesforce requests of the first sync at this size today (each audience's static segments' memberships
#: in Salesforce: one COUNT() for all of them, not a read per segment, which cost 91).
FIRST_SYNC_SALESFORCE = 82


#: What an hourly run with 1 % changed costs at this size today, per API. The brief's target is 1.1 ×
#: the lower bound (26 here); Mailchimp is within one request per audience of it, Salesforce is not:
#: every per-audience task logs in and looks people up on its own, which the bound counts once for
#: all audiences (docs/benchmarks.md); the describes are read once per run (was once per audience: 34).
#: A change that adds requests fails here.
HOURLY_BUDGET = {"mailchimp": 19, "salesforce": 28}


def test_hourly_run_with_one_percent_changed_stays_within_its_request_budget(run: Run, first: Any):
    changed = setup_data.change_members(run.box, SIZE)
    reports, counts = run.sync("2")
    assert sum(r["extracted"] for r in reports) == sum(changed.values())
    bound = lower_bound.audience_sync(run.audiences, changed, full=False, by_object=_by_object(reports), row_bytes={})
    print(f"1 % changed: {counts} = {sum(counts.values()) / bound['total']:.2f} × the lower bound {bound}")
    assert counts["mailchimp"] <= bound["mailchimp"] + len(run.audiences), (counts, bound)
    assert all(counts[api] <= most for api, most in HOURLY_BUDGET.items()), (counts, HOURLY_BUDGET)


def test_hourly_run_with_nothing_changed_costs_at_most_3_requests_per_audience(run: Run, first: Any):
    reports, counts = run.sync("3")
    assert sum(r["extracted"] for r in reports) == 0
    assert sum(counts.values()) <= 3 * len(run.audiences), counts


def test_hourly_run_with_nothing_changed_reads_one_page_per_collection(run: Run, first: Any):
    """One members page and one segments page per audience, the account's audiences with their
    stats, no Salesforce writes (the counts did not move), no Bulk jobs."""
    run.sync("3")
    counts = run.box.counts()
    mc, sf = counts["mailchimp"]["by_endpoint"], counts["salesforce"]["by_endpoint"]
    n = len(run.audiences)
    assert mc.get("GET /3.0/lists/{list_id}/members") == n and mc.get("GET /3.0/lists/{list_id}/segments") == n
    assert mc.get("GET /3.0/lists") == 1, mc  # every audience's stats, one request for all
    assert sum(mc.values()) == 2 * n + 1, mc  # the bound, exactly
    assert not [k for k in sf if k.startswith(("PATCH", "PUT", "DELETE")) or "/jobs/" in k], sf


def test_first_night_counts_what_it_would_read_instead_of_bulk_reading_it(run: Run, first: Any):
    """Nothing of the day in Salesforce yet and nothing past retention: a COUNT() each, no Bulk query job.

    Before the push test: the members it adds are in no hourly run, so their activity would be refused.
    """
    activity = setup_data.add_activity(run.box, SIZE)
    reports, counts = run.sync("4", activity=True)
    assert sum(r["extracted"] for r in reports) == activity["events"]
    assert sum(r["load_failed"] for r in reports) == 0
    sf = run.box.counts()["salesforce"]["by_endpoint"]
    assert not [k for k in sf if "/jobs/query" in k], sf
    written = _by_object(reports)["MC_Activity__c"]
    bound = lower_bound.activity(activity["campaigns"], len(run.audiences), events_written=written["created"],
                                 failed=False, row_bytes={})
    print(f"first night: {counts} vs lower bound {bound}")
    assert counts["mailchimp"] <= bound["mailchimp"] + 1, (counts, bound)  # + the account's audiences


def test_query_builder_push_batches_500_members_a_request(run: Run, first: Any):
    from mcsf import querybuilder

    push = setup_data.add_push_contacts(run.box, SIZE)
    run.box.reset_counts()
    summaries = querybuilder.run(*WINDOWS["2"])
    counts = {api: snap["total"] for api, snap in run.box.counts().items()}
    assert sum(s["matched"] for s in summaries) == push["contacts"]
    batches = math.ceil(push["contacts"] / 500)
    print(f"push of {push['contacts']}: {counts}")
    assert counts["mailchimp"] <= batches + 5  # the brief's budget: 200 batches + 5 for 100,000 Contacts

