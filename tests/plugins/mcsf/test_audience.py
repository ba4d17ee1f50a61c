"""The nightly sync's wait for the hourly one (``awaiting_members``): read from the staged reports."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mcsf.audience import DAG_ID, awaiting_members
from mcsf.staging import Stage, Window

MIDNIGHT = datetime(2026, 11, 28, tzinfo=UTC)


def nightly(*audience_ids: str) -> list[dict]:
    window = [(MIDNIGHT - timedelta(days=1)).isoformat(), MIDNIGHT.isoformat()]
    return [{"audience_id": a, "name": f"name-{a}", "window": window} for a in audience_ids]


def hourly_report(audience_id: str, end: datetime, *, dry_run: bool = False) -> None:
    window = Window(end - timedelta(hours=1), end)
    Stage.for_run(DAG_ID, window, audience_id).write_json(
        "summary", {"audience_id": audience_id, "name": f"name-{audience_id}",
                    "window": [window.start.isoformat(), end.isoformat()], "dry_run": dry_run})


def test_waits_until_an_hourly_run_ending_at_or_after_midnight_finished(tmp_path, monkeypatch):
    monkeypatch.setenv("MCSF_STAGING_URL", f"file://{tmp_path}")
    hourly_report("aaa", MIDNIGHT - timedelta(hours=1))  # synced up to 23:00 only
    hourly_report("bbb", MIDNIGHT)  # the run of [23:00, 00:00)
    hourly_report("ccc", MIDNIGHT + timedelta(hours=2))  # a later run (catchup off, or a gap)
    hourly_report("ddd", MIDNIGHT, dry_run=True)  # a dry run wrote nothing

    assert awaiting_members(nightly("aaa", "bbb", "ccc", "ddd", "eee")) == ["name-aaa", "name-ddd", "name-eee"]

    hourly_report("aaa", MIDNIGHT)
    hourly_report("ddd", MIDNIGHT + timedelta(hours=1))
    hourly_report("eee", MIDNIGHT + timedelta(hours=1))
    assert awaiting_members(nightly("aaa", "bbb", "ccc", "ddd", "eee")) == []


def test_nothing_to_wait_for_without_audiences(tmp_path, monkeypatch):
    monkeypatch.setenv("MCSF_STAGING_URL", f"file://{tmp_path}")
    assert awaiting_members([]) == []
