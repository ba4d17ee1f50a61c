"""Table-driven tests of the pure mapping core (mcsf.mapping, mcsf.extract.flatten_member)."""

from __future__ import annotations

import pandas as pd
import pytest

from mcsf.config import AudienceMapping
from mcsf.extract import flatten_member, members_frame
from mcsf.mapping import canonical, diff, person_values, to_subscribers


@pytest.mark.parametrize(
    ("value", "sf_type", "expected"),
    [
        ("  Ada ", "string", "Ada"),
        ("a\x00b", "string", "ab"),
        ("", "string", None),
        (None, "string", None),
        (True, "boolean", "true"),
        ("False", "boolean", "false"),
        ("5", "double", "5"),
        (5.0, "double", "5"),
        ("1,234.50", "double", "1234.5"),
        ("2026-11-20T09:12:00+00:00", "datetime", "2026-11-20T09:12:00.000Z"),
        ("2026-11-20T10:12:00.000+0100", "datetime", "2026-11-20T09:12:00.000Z"),
        ("2026-11-20T09:12:00.000Z", "datetime", "2026-11-20T09:12:00.000Z"),
        ("11/20/2026", "date", "2026-11-20"),
        ("2026-11-20", "date", "2026-11-20"),
    ],
)
def test_canonical_forms(value, sf_type, expected):
    assert canonical(value, sf_type) == expected


@pytest.mark.parametrize(
    ("value", "sf_type", "message"),
    [
        ("abc", "double", "not a number"),
        ("nan", "double", "finite"),
        ("maybe", "boolean", "true or false"),
        ("12/31", "date", "without a year"),
        ("31.31.2026x", "date", "not a date"),
        ("yesterday", "datetime", "ISO 8601"),
    ],
)
def test_canonical_rejects_with_reason(value, sf_type, message):
    with pytest.raises(ValueError, match=message):
        canonical(value, sf_type)


def member(email="Ada@Example.com", **merge):
    return {
        "id": "h" + email.lower().strip(),
        "list_id": "L1",
        "email_address": email,
        "status": "subscribed",
        "merge_fields": {"FNAME": "Ada", "LNAME": "Lovelace", **merge},
        "interests": {"i1": True, "i2": False},
        "tags": [{"id": 1, "name": "vip"}],
        "member_rating": 3,
        "last_changed": "2026-11-20T09:15:00+00:00",
        "timestamp_opt": "",
        "vip": False,
        "language": "",
    }


MAPPING = AudienceMapping.model_validate({
    "audience_id": "L1",
    "fields": [
        {"merge_tag": "FNAME", "lead_field": "FirstName", "contact_field": "FirstName"},
        {"merge_tag": "PHONE", "lead_field": "Phone"},
        {"merge_tag": "SCORE", "lead_field": "NumberOfEmployees"},
        {"merge_tag": "ADDRESS.city", "contact_field": "MailingCity"},
    ],
})
DESCRIBES = {"Lead": {"FirstName": {"type": "string"}, "Phone": {"type": "phone"},
                      "NumberOfEmployees": {"type": "int"}},
             "Contact": {"FirstName": {"type": "string"}, "MailingCity": {"type": "string"}}}


def test_flatten_member_merges_address_parts_and_interests():
    row = flatten_member(member(ADDRESS={"addr1": "1 Main", "city": "Oslo", "zip": ""}))
    assert row["merge.ADDRESS.city"] == "Oslo"
    assert row["merge.ADDRESS.zip"] is None
    assert row["interests"] == "i1"
    assert row["tags"] == "vip"


def test_to_subscribers_keys_and_links_audience():
    frame = members_frame([[member(), member("bob@example.com")]])
    subs = to_subscribers(frame, MAPPING)
    assert subs["MC_Subscriber_Key__c"].tolist() == ["L1:hada@example.com", "L1:hbob@example.com"]
    assert set(subs["Audience__r.MC_Audience_Id__c"]) == {"L1"}
    assert subs.loc[0, "_email_norm"] == "ada@example.com"
    assert subs.loc[0, "Interests__c"] == "L1:i1"
    assert subs.loc[0, "Last_Changed__c"] == "2026-11-20T09:15:00.000Z"
    assert subs.loc[0, "Opted_In_At__c"] is None
    assert subs.loc[0, "VIP__c"] == "false"


def test_person_values_coerce_and_reject_per_field():
    frame = members_frame([[member(PHONE=" +47 22 ", SCORE="12"), member("x@y.no", SCORE="lots")]])
    people = person_values(frame, MAPPING, DESCRIBES)
    assert people.loc[0, "Lead.Phone"] == "+47 22"
    assert people.loc[0, "Lead.NumberOfEmployees"] == "12"
    assert people.loc[1, "Lead.NumberOfEmployees"] is None
    assert "merge field SCORE -> Lead.NumberOfEmployees" in people.loc[1, "_reasons"]
    assert people.loc[0, "_reasons"] == ""
    assert "Contact.FirstName" in people and "Lead.MailingCity" not in people


def test_inputs_are_not_mutated():
    frame = members_frame([[member()]])
    before = frame.copy()
    to_subscribers(frame, MAPPING)
    person_values(frame, MAPPING, DESCRIBES)
    pd.testing.assert_frame_equal(frame, before)


def test_diff_compares_canonical_forms():
    desired = pd.DataFrame({"K": ["a", "b", "c"], "N": ["5", "6", None],
                            "T": ["2026-11-20T09:15:00.000Z"] * 3})
    existing = pd.DataFrame({"K": ["a", "b"], "N": [5.0, 7.0],
                             "T": ["2026-11-20T09:15:00.000+0000", "2026-11-20T09:15:00.000+0000"]})
    changed = diff(desired, existing, "K", {"N": "double", "T": "datetime"})
    assert changed["K"].tolist() == ["b", "c"]
    assert changed["_is_new"].tolist() == [False, True]


def test_diff_of_identical_state_is_empty():
    desired = pd.DataFrame({"K": ["a"], "N": ["5"]})
    assert diff(desired, desired, "K", {"N": "double"}).empty


def test_one_tag_into_a_lead_and_a_contact_field_gets_a_reason_for_each():
    mapping = AudienceMapping.model_validate({"audience_id": "L1", "fields": [
        {"merge_tag": "FNAME", "lead_field": "FirstName", "contact_field": "FirstName"},
        {"merge_tag": "SCORE", "lead_field": "NumberOfEmployees", "contact_field": "Score__c"}]})
    describes = {"Lead": {**DESCRIBES["Lead"]}, "Contact": {**DESCRIBES["Contact"], "Score__c": {"type": "int"}}}
    frame = members_frame([[member(FNAME=" Ada ", SCORE="12"), member("x@y.no", FNAME="Bo", SCORE="lots")]])
    people = person_values(frame, mapping, describes)
    assert people["Lead.FirstName"].tolist() == people["Contact.FirstName"].tolist() == ["Ada", "Bo"]
    assert people["Contact.Score__c"].tolist() == ["12", None]
    assert people.loc[1, "_reasons"] == ("merge field SCORE -> Lead.NumberOfEmployees: 'lots' is not a number; "
                                         "merge field SCORE -> Contact.Score__c: 'lots' is not a number")


def test_mapped_rows_join_the_reasons_of_both_halves():
    from mcsf.mapping import mapped_rows

    subscribers = pd.DataFrame({"MC_Subscriber_Key__c": ["a", "b", "c", "d"],
                                "_reasons": ["", "bad status", "", "bad status"]})
    people = pd.DataFrame({"Lead.LastName": ["A", "B", None, None],
                           "_reasons": ["", "", "LNAME too long", "LNAME too long"]})
    mapped = mapped_rows(subscribers, people)
    assert mapped.columns.tolist() == ["MC_Subscriber_Key__c", "_reasons", "Lead.LastName"]
    assert mapped["_reasons"].tolist() == ["", "bad status", "LNAME too long", "bad status; LNAME too long"]


def test_isin_matches_pandas_on_text_keys_and_keeps_the_index():
    from mcsf.mapping import isin

    column = pd.Series(["a@x.com", None, "B@x.com", "c@x.com", "a@x.com"], index=[10, 11, 12, 13, 14])
    for wanted in ({"a@x.com", "B@x.com"}, pd.Series(["c@x.com", None]), ["nobody"], set()):
        got = isin(column, wanted)
        assert got.index.tolist() == column.index.tolist() and got.dtype == bool
        expected = column.isin([w for w in wanted if pd.notna(w)])  # missing values match nothing
        assert got.tolist() == expected.tolist(), wanted
    assert isin(column, {"b@x.com"}).sum() == 0  # exact, as pandas: case is the caller's business
    assert isin(pd.Series([1, 2, 3]), {2}).tolist() == [False, True, False]  # not text: pandas decides
    assert isin(pd.Series([], dtype=str), {"a"}).tolist() == []
