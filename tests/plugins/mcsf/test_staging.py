"""Staging: column reads, the run's shared stage, JSON that is absent or replaced whole, and what one
audience of a run reads of another's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from mcsf.staging import Stage, Window

START = datetime(2026, 11, 28, 9, tzinfo=UTC)
WINDOW = Window(START, START + timedelta(hours=1))


@pytest.fixture
def stage(tmp_path, monkeypatch) -> Stage:
    monkeypatch.setenv("MCSF_STAGING_URL", f"file://{tmp_path}")
    return Stage.for_run("dag", WINDOW, "aaa")


def test_reads_only_the_columns_asked_for_that_exist(stage):
    stage.write("valid", pd.DataFrame({"key": ["a", "b"], "email": ["x@y.z", None], "big": ["…", "…"]}))
    assert stage.read("valid", ["key", "email", "missing"]).columns.tolist() == ["key", "email"]
    assert stage.read("valid").columns.tolist() == ["key", "email", "big"]
    assert stage.read("never", ["key"]).columns.tolist() == ["key"] and stage.read("never").empty


def test_the_shared_stage_is_not_an_audience(stage):
    stage.write_json("audience", {})
    Stage.for_run("dag", WINDOW, "bbb").write_json("audience", {})
    shared = Stage.shared("dag", WINDOW)
    shared.write_json("lists", {"aaa": {"name": "A"}})
    assert [s.url.rsplit("/", 1)[1] for s in stage.siblings()] == ["bbb"]
    assert shared.read_json("lists") == {"aaa": {"name": "A"}}


def test_json_absent_reads_as_the_default_and_clearing_twice_is_fine(stage):
    assert stage.read_json("lists", None) is None
    with pytest.raises(FileNotFoundError):
        stage.read_json("lists")
    stage.write_json("lists", {"v": 1})
    stage.write_json("lists", {"v": 2})
    assert stage.read_json("lists", None) == {"v": 2}
    assert not [p for p in stage.path.iterdir() if p.name.startswith(".")]  # no temp file left behind
    stage.clear()
    stage.clear()
    assert stage.read_json("lists", None) is None


def test_a_lead_another_audience_of_the_run_failed_to_create_is_unlinked(stage):
    from mcsf.audience_load import _unlink_leads_refused_elsewhere
    from mcsf.config import AudienceMapping
    from mcsf.leads import LEAD_REF

    stage.run_shared().write_json("audiences", {"aaa": "a.yaml", "bbb": "b.yaml"})
    stage.write("valid", pd.DataFrame({"MC_Subscriber_Key__c": ["aaa:1", "aaa:2", "aaa:3"],
                                       "_email_norm": ["refused@x.io", "fine@x.io", "plan@x.io"]}))
    stage.write("rejects_people", pd.DataFrame({
        "object": ["Lead", "Lead", "Lead"], "key": ["aaa:1", "aaa:3", "00Q000000000001"],
        "step": ["load", "leads", "load"], "reason": ["Salesforce refused: X", "no LastName", "refused update"]}))
    links = pd.DataFrame({"Lead__c": [None] * 3, "Contact__c": [None] * 3,
                          LEAD_REF: ["refused@x.io", "fine@x.io", "plan@x.io"]}, dtype=object)
    later = Stage.for_run("dag", WINDOW, "bbb")
    _unlink_leads_refused_elsewhere(later, AudienceMapping.model_validate({"audience_id": "bbb"}), links)
    # refused by Salesforce when aaa wrote it: gone; aaa's own planning reject (it never meant to create it) is not
    assert links[LEAD_REF].tolist() == [None, "fine@x.io", "plan@x.io"]
    untouched = links.assign(**{LEAD_REF: ["refused@x.io", None, None]})
    _unlink_leads_refused_elsewhere(stage, AudienceMapping.model_validate({"audience_id": "aaa"}), untouched)
    assert untouched[LEAD_REF].iloc[0] == "refused@x.io"  # only earlier audiences count
