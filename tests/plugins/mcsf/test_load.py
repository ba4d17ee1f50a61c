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
