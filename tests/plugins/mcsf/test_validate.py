"""Great Expectations verdicts: every failing row gets every reason; values never leak into reasons."""

from __future__ import annotations

import pandas as pd
import pytest

from mcsf.config import AudienceMapping
from mcsf.validate import Rule, subscriber_rules, validate_rows


@pytest.mark.parametrize(
    ("email", "ok"),
    [("ada@example.com", True), ("a.b+tag@sub.example.co.uk", True), ("bad", False), ("a@b", False),
     ("a b@example.com", False), ("ünï@example.com", False), ("@example.com", False), ("a@-x.com", False)],
)
def test_email_rule(email, ok):
    verdict = validate_rows(pd.DataFrame({"Email__c": [email]}), [Rule("Email__c", "email", "invalid email")])
    assert (len(verdict.passed) == 1) is ok


def test_rows_collect_all_reasons_and_earlier_problems():
    frame = pd.DataFrame({
        "MC_Subscriber_Key__c": ["L:1", "L:2", "L:3"],
        "Email__c": ["ok@x.io", "bad", "ok2@x.io"],
        "Status__c": ["subscribed", "weird", "subscribed"],
        "Lead.FirstName": ["Ada", "x" * 41, None],
        "_reasons": ["", "", "merge field SCORE -> Lead.X: 'lots' is not a number"],
    })
    mapping = AudienceMapping.model_validate(
        {"audience_id": "L", "fields": [{"merge_tag": "FNAME", "lead_field": "FirstName"}]})
    rules = subscriber_rules(mapping, {"Lead": {"FirstName": {"type": "string", "length": 40}}})
    verdict = validate_rows(frame, rules)
    assert verdict.passed["MC_Subscriber_Key__c"].tolist() == ["L:1"]
    reasons = dict(zip(verdict.rejected["MC_Subscriber_Key__c"], verdict.rejected["_reason"], strict=True))
    assert "invalid email address" in reasons["L:2"]
    assert "unknown member status" in reasons["L:2"]
    assert "merge field FNAME longer than Lead.FirstName allows (40)" in reasons["L:2"]
    assert "is not a number" in reasons["L:3"]
    assert verdict.failures["merge field SCORE -> Lead.X: invalid value"] == 1  # counted without the value
    assert verdict.reject_share == pytest.approx(2 / 3)


def test_restricted_picklist_rule():
    mapping = AudienceMapping.model_validate(
        {"audience_id": "L", "fields": [{"merge_tag": "TIER", "lead_field": "Rating"}]})
    describe = {"Lead": {"Rating": {"type": "picklist", "restrictedPicklist": True,
                                    "picklistValues": [{"value": "Hot", "active": True},
                                                       {"value": "Old", "active": False}]}}}
    frame = pd.DataFrame({"Lead.Rating": ["Hot", "Old", "Cold", None]})
    verdict = validate_rows(frame, subscriber_rules(mapping, describe))
    assert verdict.passed["Lead.Rating"].fillna("-").tolist() == ["Hot", "-"]


def test_empty_frame_passes():
    verdict = validate_rows(pd.DataFrame(columns=["Email__c"]), [Rule("Email__c", "email", "x")])
    assert verdict.total == 0 and verdict.reject_share == 0.0


def test_padding_of_short_columns_is_never_a_failing_row():
    # Columns of few distinct values share one GX frame, padded with nulls to the longest column.
    frame = pd.DataFrame({"Status__c": ["subscribed", None, "weird"] * 4,
                          "Lead.City": [f"City {i}" for i in range(12)]})
    rules = [Rule("Status__c", "not_null", "no status"), Rule("Status__c", "in_set", "unknown status", {"subscribed"}),
             Rule("Lead.City", "max_length", "city too long", 6)]
    verdict = validate_rows(frame, rules)
    assert verdict.failures == {"no status": 4, "unknown status": 4, "city too long": 2}
    assert verdict.rejected.index.tolist() == [1, 2, 4, 5, 7, 8, 10, 11]


def test_unique_and_value_rules_on_one_column_of_distinct_values():
    keys = [f"k{i:05d}" for i in range(6_000)] + ["k00001", "toolong-key"]  # every row its own value
    verdict = validate_rows(pd.DataFrame({"K": keys}), [Rule("K", "unique", "twice"),
                                                        Rule("K", "max_length", "too long", 6)])
    assert verdict.failures == {"twice": 2, "too long": 1}
    assert verdict.rejected.index.tolist() == [1, 6_000, 6_001]
