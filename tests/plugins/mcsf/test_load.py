"""``mcsf.load``: streams of frames written side by side, and dry runs that stage every would-be row."""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

import pandas as pd
import pytest

from mcsf import load as writes
from mcsf.hooks.salesforce import McsfSalesforceHook
from mcsf.staging import Stage

if TYPE_CHECKING:
    from collections.abc import Iterator

SUBSCRIBER, KEY, AUDIENCE_REF = "MC_Subscriber__c", "MC_Subscriber_Key__c", "Audience__r.MC_Audience_Id__c"
COLUMNS = [KEY, "Name", "Email__c", "Status__c", AUDIENCE_REF, "_is_new"]


def frames(audience: str, count: int, rows: int) -> Iterator[pd.DataFrame]:
    """``count`` frames of ``rows`` subscribers; every 100th has a status Salesforce refuses."""
    for f in range(count):
        keys = range(f * rows, (f + 1) * rows)
        yield pd.DataFrame({KEY: [f"{audience}:{i}" for i in keys], "Name": [f"Person {i}" for i in keys],
                            "Email__c": [f"p{i}@example.com" for i in keys],
                            "Status__c": ["subscribed" if i % 100 else "no-such-status" for i in keys],
                            AUDIENCE_REF: audience, "_is_new": True})


@pytest.fixture
def hook(sandbox: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[McsfSalesforceHook]:
    monkeypatch.setenv("AIRFLOW_CONN_SALESFORCE_DEFAULT", json.dumps({"conn_type": "salesforce", "extra": {
        "instance_url": sandbox["salesforce_url"], "consumer_key": sandbox["salesforce_client_id"],
        "consumer_secret": sandbox["salesforce_client_secret"], "ca_bundle": sandbox["ca_bundle"]}}))
    hook = McsfSalesforceHook()
    yield hook
    hook.session.close()


def test_a_stream_is_written_in_full_two_frames_at_a_time(hook: McsfSalesforceHook):
    audience = f"ws{uuid.uuid4().hex[:8]}"
    hook.upsert("MC_Audience__c", "MC_Audience_Id__c", pd.DataFrame({"MC_Audience_Id__c": [audience],
                                                                     "Name": ["write_stream"]}))
    outcome = writes.write_stream(hook, SUBSCRIBER, frames(audience, 4, 1500), external_id=KEY, columns=COLUMNS)

    assert (outcome.created, outcome.updated, outcome.failed) == (5940, 0, 60)
    refused = outcome.rejects["key"].str.rsplit(":", n=1).str[-1].astype(int)
    assert len(refused) == 60 and (refused % 100 == 0).all()
    held = hook.query_frame(f"SELECT {KEY} FROM {SUBSCRIBER} WHERE {AUDIENCE_REF} = '{audience}'")
    assert len(held) == 5940 and held[KEY].is_unique
    again = writes.write_stream(hook, SUBSCRIBER, frames(audience, 4, 1500), external_id=KEY, columns=COLUMNS)
    assert (again.created, again.updated) == (0, 5940)  # an upsert: the re-run creates nothing


def test_a_dry_run_stages_every_frame_and_counts_it(tmp_path):
    stage = Stage(f"file://{tmp_path}/stage")
    outcome = writes.write_stream(None, SUBSCRIBER, frames("dry", 3, 700), external_id=KEY, columns=COLUMNS,
                                  stage=stage, dry_run=True)

    assert (outcome.created, outcome.updated, outcome.failed) == (2100, 0, 0)
    staged = stage.read(f"would_write_{SUBSCRIBER}")
    assert len(staged) == 2100 and "_is_new" not in staged.columns
    assert staged[KEY].tolist() == [f"dry:{i}" for i in range(2100)]


def test_a_stream_is_cut_into_one_bulk_upload_per_job(hook: McsfSalesforceHook, monkeypatch: pytest.MonkeyPatch):
    """Frames of 1,500 rows, an upload limit of about 2,500 of them: two full jobs and the last 1,002
    rows in 6 sObject Collections requests, 16 writing requests in all where a job per frame is 20."""
    from mcsf.hooks import salesforce

    audience = f"wj{uuid.uuid4().hex[:8]}"
    per_row = hook.bulk_rows_per_job(pd.DataFrame(next(frames(audience, 1, 1500))).drop(columns="_is_new"))
    monkeypatch.setattr(salesforce, "BULK_MAX_UPLOAD_BYTES", salesforce.BULK_MAX_UPLOAD_BYTES * 2_500 // per_row)
    hook.upsert("MC_Audience__c", "MC_Audience_Id__c", pd.DataFrame({"MC_Audience_Id__c": [audience],
                                                                     "Name": ["per_bulk_job"]}))
    before = dict(hook.requests_used)
    outcome = writes.write_stream(hook, SUBSCRIBER, frames(audience, 4, 1500), external_id=KEY, columns=COLUMNS)
    used = {k: n - before.get(k, 0) for k, n in hook.requests_used.items() if n > before.get(k, 0)}

    assert (outcome.created, outcome.failed) == (5940, 60)
    assert used.pop("GET /jobs/ingest/{id}") >= 2  # status polls: as many as the jobs take
    assert used == {"POST /jobs/ingest": 2, "PUT /jobs/ingest/{id}/batches": 2, "PATCH /jobs/ingest/{id}": 2,
                    "GET /jobs/ingest/{id}/successfulResults": 2, "GET /jobs/ingest/{id}/failedResults": 2,
                    "PATCH /composite/sobjects/{obj}/{field}": 6}


def test_per_bulk_job_keeps_every_row_in_order(monkeypatch: pytest.MonkeyPatch):
    from mcsf.hooks import salesforce

    sizes = [700, 0, 2500, 1, 999, 1800]
    stream = [frame.iloc[:n] for frame, n in zip(frames("cut", len(sizes), 2500), sizes, strict=True)]
    hook = McsfSalesforceHook()
    per_row = hook.bulk_rows_per_job(stream[0].drop(columns="_is_new"))
    monkeypatch.setattr(salesforce, "BULK_MAX_UPLOAD_BYTES", salesforce.BULK_MAX_UPLOAD_BYTES * 1_000 // per_row)
    size = hook.bulk_rows_per_job(stream[0].drop(columns="_is_new"))

    cut = list(writes.per_bulk_job(hook, iter(stream)))

    assert 990 <= size <= 1_000
    assert [len(c) for c in cut[:-1]] == [size] * (len(cut) - 1) and 0 < len(cut[-1]) <= size
    assert pd.concat(cut)[KEY].tolist() == pd.concat(stream)[KEY].tolist()
    assert list(writes.per_bulk_job(hook, iter([stream[1]]))) == []


def test_bulk_rows_per_job_fill_an_upload_with_room_to_spare():
    from mcsf.hooks.salesforce import BULK_MAX_UPLOAD_BYTES

    frame = pd.DataFrame({"A": ["x" * 97] * 20_000, "B": [7] * 20_000})  # x…x,7\n: 97 + 1 + 1 + 1 = 100 bytes
    rows = McsfSalesforceHook().bulk_rows_per_job(frame)

    assert rows * 100 <= BULK_MAX_UPLOAD_BYTES * 0.92 < (rows + 1) * 100


def test_two_writes_in_flight_take_turns_to_build_and_match_but_wait_together(
        hook: McsfSalesforceHook, monkeypatch: pytest.MonkeyPatch):
    """Memory: a write's CSV building and result matching never overlap another's (each is held up
    here for 0.3 s, so overlapping calls would show), while both jobs are in Salesforce at once."""
    import threading
    import time

    from mcsf.hooks import salesforce

    audience = f"wt{uuid.uuid4().hex[:8]}"
    hook.upsert("MC_Audience__c", "MC_Audience_Id__c", pd.DataFrame({"MC_Audience_Id__c": [audience],
                                                                     "Name": ["take turns"]}))
    per_row = hook.bulk_rows_per_job(pd.DataFrame(next(frames(audience, 1, 1500))).drop(columns="_is_new"))
    monkeypatch.setattr(salesforce, "BULK_MAX_UPLOAD_BYTES", salesforce.BULK_MAX_UPLOAD_BYTES * 1_500 // per_row)
    lock, active, most, waiting, most_waiting = threading.Lock(), [0], [0], [0], [0]
    csv_lines, wait_for_job = salesforce._csv_lines, hook._wait_for_job

    def counted(counter: list[int], top: list[int], call: Any, *args: Any, **kwargs: Any) -> Any:
        with lock:
            counter[0] += 1
            top[0] = max(top[0], counter[0])
        try:
            time.sleep(0.3)
            return call(*args, **kwargs)
        finally:
            with lock:
                counter[0] -= 1

    monkeypatch.setattr(salesforce, "_csv_lines", lambda *a, **k: counted(active, most, csv_lines, *a, **k))
    monkeypatch.setattr(hook, "_wait_for_job", lambda *a, **k: counted(waiting, most_waiting, wait_for_job, *a, **k))
    outcome = writes.write_stream(hook, SUBSCRIBER, frames(audience, 4, 1500), external_id=KEY, columns=COLUMNS)

    assert (outcome.created, outcome.failed) == (5940, 60)
    assert most[0] == 1  # never two at once
    assert most_waiting[0] == 2  # both jobs were in Salesforce together
