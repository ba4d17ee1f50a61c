"""The pure core of the Query Builder: SOQL it builds, records -> members, and the push's accounting."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone

import pandas as pd
import pytest

from mcsf.config import AudienceMapping, FieldMap
from mcsf.hooks.mailchimp import BatchUpsertResult
from mcsf.queries import QueryDefinition
from mcsf.querybuilder import (
    MergeTarget,
    build_soql,
    email_hash,
    merge_map,
    merge_value,
    redact,
    select_list,
    soql_condition,
    soql_datetime,
    summary_line,
    tally,
    to_members,
)
from mcsf.staging import Window

WINDOW = Window(datetime(2026, 11, 20, 9, tzinfo=UTC), datetime(2026, 11, 20, 10, tzinfo=UTC))


def _md5(email: str) -> str:
    return hashlib.md5(email.lower().encode()).hexdigest()


# --- SOQL -------------------------------------------------------------------------------------------


def test_soql_datetimes_are_utc_whole_seconds():
    assert soql_datetime(datetime(2026, 11, 20, 11, 0, tzinfo=timezone(timedelta(hours=2)))) == "2026-11-20T09:00:00Z"
    assert soql_datetime(datetime(2026, 11, 20, 9, 0, 59, 999_999, tzinfo=UTC)) == "2026-11-20T09:00:59Z"
    with pytest.raises(ValueError, match="no time zone"):
        soql_datetime(datetime(2026, 11, 20, 9))


def test_the_window_is_anded_with_the_whole_clause_in_parentheses():
    soql = build_soql("Contact", ["FirstName"], "LeadSource = 'Web' OR LeadSource = 'Other'", WINDOW)
    assert soql == ("SELECT Id, Email, SystemModstamp, FirstName FROM Contact WHERE "
                    "(LeadSource = 'Web' OR LeadSource = 'Other') "
                    "AND SystemModstamp >= 2026-11-20T09:00:00Z AND SystemModstamp < 2026-11-20T10:00:00Z")


def test_a_full_read_has_no_window_and_the_clause_is_never_rewritten():
    where = "LastName = 'O\\'Brien \\\\ Jr' AND Title LIKE '%(x%'"
    assert build_soql("Lead", [], where, None) == f"SELECT Id, Email, SystemModstamp FROM Lead WHERE ({where})"


def test_consecutive_windows_tile_on_the_same_literal():
    later = Window(WINDOW.end, WINDOW.end + timedelta(hours=1))
    assert soql_condition("x = 1", WINDOW).endswith("SystemModstamp < 2026-11-20T10:00:00Z")
    assert "SystemModstamp >= 2026-11-20T10:00:00Z " in soql_condition("x = 1", later)


def test_each_field_is_selected_once_whatever_its_case():
    assert select_list(["email", "FirstName", "firstname", "Account.Name", "Id"]) == \
        ["Id", "Email", "SystemModstamp", "FirstName", "Account.Name"]


# --- merge map and values -----------------------------------------------------------------------------


def _query(**kw):
    base = {"object": "Lead", "where": "Email != null", "audience_id": "a1", "status_if_new": "subscribed"}
    return QueryDefinition(**{**base, **kw})


MAPPING = AudienceMapping(audience_id="a1", fields=[
    FieldMap(merge_tag="FNAME", lead_field="FirstName", contact_field="FirstName", direction="both"),
    FieldMap(merge_tag="LNAME", lead_field="LastName", contact_field="LastName", direction="salesforce_to_mailchimp"),
    FieldMap(merge_tag="PHONE", lead_field="Phone", contact_field="Phone"),  # towards Salesforce only
    FieldMap(merge_tag="COMPANY", lead_field="Company", direction="both"),  # Lead only
])


def test_the_audience_map_adds_its_fields_towards_mailchimp_for_the_object():
    assert merge_map(_query(use_audience_map=True), MAPPING) == \
        {"FNAME": "FirstName", "LNAME": "LastName", "COMPANY": "Company"}
    assert merge_map(_query(object="Contact", use_audience_map=True), MAPPING) == \
        {"FNAME": "FirstName", "LNAME": "LastName"}


def test_the_query_fields_win_over_the_audience_map_and_stand_alone_without_it():
    query = _query(use_audience_map=True, fields={"Nickname__c": "FNAME", "Title": "JOBTITLE"})
    assert merge_map(query, MAPPING) == {"FNAME": "Nickname__c", "LNAME": "LastName", "COMPANY": "Company",
                                         "JOBTITLE": "Title"}
    assert merge_map(_query(fields={"Title": "JOBTITLE"}), MAPPING) == {"JOBTITLE": "Title"}


@pytest.mark.parametrize(("value", "merge_type", "expected"), [
    ("1,200.50", "number", 1200.5),
    ("12", "number", 12),
    (12.0, "number", 12),
    (7, "number", 7),
    ("2026-11-20", "date", "2026-11-20"),
    ("2026-11-20T09:12:00.000+0000", "date", "2026-11-20"),
    ("1990-04-07", "birthday", "04/07"),
    (True, "text", "true"),
    (50.0, "text", "50"),
    ("  O'Brien \\ Jr  ", "text", "O'Brien \\ Jr"),
    ("+49 30 1234", "phone", "+49 30 1234"),
    (None, "text", None),
    (float("nan"), "number", None),
    (pd.NA, "date", None),
    ("   ", "text", None),
])
def test_merge_values_take_the_form_mailchimp_wants(value, merge_type, expected):
    assert merge_value(value, merge_type) == expected


@pytest.mark.parametrize(("value", "merge_type", "fragment"), [
    ("abc", "number", "not a number"),
    (True, "number", "not a number"),
    ("Infinity", "number", "not a number"),
    ("next week", "date", "not a date"),
])
def test_merge_values_that_cannot_fit_say_why(value, merge_type, fragment):
    with pytest.raises(ValueError, match=fragment):
        merge_value(value, merge_type)


# --- records -> members ---------------------------------------------------------------------------------

TARGETS = [MergeTarget("FirstName", "FNAME"), MergeTarget("LastName", "LNAME"),
           MergeTarget("NumberOfEmployees", "EMPLOYEES", "number"),
           MergeTarget("Street", "ADDRESS.addr1"), MergeTarget("City", "ADDRESS.city"),
           MergeTarget("State", "ADDRESS.state"), MergeTarget("PostalCode", "ADDRESS.zip")]


def _rows() -> pd.DataFrame:
    return pd.DataFrame([
        {"Id": "00Q1", "Email": " Ann@Example.com ", "SystemModstamp": "2026-11-20T09:10:00.000+0000",
         "FirstName": "Ann", "LastName": "O'Brien \\ Jr", "NumberOfEmployees": "12", "Street": "1 Main St",
         "City": "Springfield", "State": "IL", "PostalCode": "62701"},
        {"Id": "00Q2", "Email": "ann@example.com", "SystemModstamp": "2026-11-20T09:05:00.000+0000",
         "FirstName": "Old Ann", "LastName": "X", "NumberOfEmployees": None, "Street": None, "City": None,
         "State": None, "PostalCode": None},
        {"Id": "00Q3", "Email": None, "SystemModstamp": "2026-11-20T09:20:00.000+0000", "FirstName": "No",
         "LastName": "Mail", "NumberOfEmployees": None, "Street": None, "City": None, "State": None,
         "PostalCode": None},
        {"Id": "00Q4", "Email": "bob@example.com", "SystemModstamp": "2026-11-20T09:30:00.000+0000",
         "FirstName": "Bob", "LastName": None, "NumberOfEmployees": "many", "Street": None, "City": None,
         "State": None, "PostalCode": None},
        {"Id": "00Q5", "Email": "cy@example.com", "SystemModstamp": "2026-11-20T09:40:00.000+0000",
         "FirstName": None, "LastName": "Cy", "NumberOfEmployees": 3.0, "Street": "2 Side St", "City": "Paris",
         "State": None, "PostalCode": "75001"},
    ])


def test_records_become_one_member_per_email_the_newest_record_winning():
    rows = _rows()
    before = rows.copy()
    batch = to_members(rows, TARGETS, object_name="Lead", status_if_new="subscribed", tags=["SF: Leads"])
    pd.testing.assert_frame_equal(rows, before)  # inputs are not changed
    assert batch.members == [
        {"email_address": "Ann@Example.com", "status_if_new": "subscribed", "tags": ["SF: Leads"],
         "merge_fields": {"FNAME": "Ann", "LNAME": "O'Brien \\ Jr", "EMPLOYEES": 12,
                          "ADDRESS": {"addr1": "1 Main St", "city": "Springfield", "state": "IL", "zip": "62701"}}},
        # no state: Mailchimp refuses a partial address, so the member goes without one
        {"email_address": "cy@example.com", "status_if_new": "subscribed", "tags": ["SF: Leads"],
         "merge_fields": {"LNAME": "Cy", "EMPLOYEES": 3}},
    ]
    assert batch.records.to_dict("list") == {
        "record_id": ["00Q1", "00Q2", "00Q3", "00Q4", "00Q5"],
        "email_hash": [_md5("ann@example.com"), _md5("ann@example.com"), None, _md5("bob@example.com"),
                       _md5("cy@example.com")],
        "outcome": ["push", "duplicate", "rejected", "rejected", "push"],
    }
    assert batch.rejects.to_dict("records") == [
        {"object": "Lead", "key": "Lead:00Q3", "step": "map", "reason": "no email address", "record_id": "00Q3"},
        {"object": "Lead", "key": _md5("bob@example.com"), "step": "map",
         "reason": "Lead.NumberOfEmployees -> EMPLOYEES: 'many' is not a number", "record_id": "00Q4"},
    ]
    assert batch.matched_hashes == {_md5("ann@example.com"), _md5("bob@example.com"), _md5("cy@example.com")}
    assert "bob@example.com" not in batch.rejects.to_string()


def test_columns_are_found_whatever_case_the_api_returns_and_missing_ones_are_blank():
    rows = pd.DataFrame({"ID": ["003A"], "email": ["a@b.co"], "systemmodstamp": ["x"], "account.name": ["Acme"]})
    batch = to_members(rows, [MergeTarget("Account.Name", "COMPANY"), MergeTarget("Title", "JOB")],
                       object_name="Contact", status_if_new="pending", tags=[])
    assert batch.members == [{"email_address": "a@b.co", "status_if_new": "pending",
                              "merge_fields": {"COMPANY": "Acme"}}]


def test_no_records_make_no_members():
    batch = to_members(pd.DataFrame(columns=["Id", "Email", "SystemModstamp"]), TARGETS, object_name="Lead",
                       status_if_new="subscribed", tags=[])
    assert batch.members == [] and len(batch.records) == 0 and len(batch.rejects) == 0


# --- accounting ---------------------------------------------------------------------------------------


def test_tally_counts_what_mailchimp_did_and_keeps_its_refusals_without_emails():
    batch = to_members(_rows(), TARGETS, object_name="Lead", status_if_new="subscribed", tags=[])
    result = BatchUpsertResult(
        created=[],
        updated=[{"id": _md5("ann@example.com"), "status": "unsubscribed"}],
        errors=[{"email_address": "cy@example.com", "error": "cy@example.com looks fake or invalid, please enter "
                 "a real email address.", "error_code": "ERROR_GENERIC", "field": "", "field_message": ""}],
    )
    counts, rejects, records = tally(batch, result, "Lead")
    assert counts == {"matched": 5, "pushed": 2, "duplicates": 1, "created": 0, "updated": 1, "kept_status": 1,
                      "rejected": 3}
    assert records["outcome"].tolist() == ["kept_status", "duplicate", "rejected", "rejected", "refused"]
    last = rejects.iloc[-1].to_dict()
    assert last == {"object": "Lead", "key": _md5("cy@example.com"), "step": "push", "record_id": "00Q5",
                    "reason": "Mailchimp refused: <email> looks fake or invalid, please enter a real email address."}
    assert "@" not in rejects["reason"].str.cat()


def test_a_field_error_names_the_field_and_a_dry_run_counts_nothing_as_written():
    batch = to_members(_rows(), TARGETS, object_name="Lead", status_if_new="subscribed", tags=[])
    result = BatchUpsertResult(created=[{"id": _md5("cy@example.com"), "status": "subscribed"}], errors=[
        {"email_address": "Ann@Example.com", "error": "Your merge fields were invalid.", "field": "EMPLOYEES",
         "field_message": "Please enter a number"}])
    counts, rejects, _ = tally(batch, result, "Lead")
    assert (counts["created"], counts["kept_status"], counts["rejected"]) == (1, 0, 3)
    assert rejects.iloc[-1]["reason"] == "Mailchimp refused: Your merge fields were invalid. (EMPLOYEES: Please " \
                                         "enter a number)"
    dry, _, records = tally(batch, None, "Lead")
    assert (dry["pushed"], dry["created"], dry["updated"]) == (2, 0, 0)
    assert records["outcome"].tolist().count("push") == 2


def test_redact_masks_every_address():
    assert redact("a.b+c@x.co and o'reilly@y.org, exist") == "<email> and <email>, exist"
    assert redact("quoted 'o'reilly@y.org' too") == "quoted <email>' too"  # more masked rather than less
    assert email_hash(" Ann@Example.com ") == _md5("ann@example.com")


def test_the_summary_line_reads_like_a_sentence_and_names_no_one():
    line = summary_line({
        "query": "partner_leads", "audience_id": "a1", "object": "Lead", "mode": "mirror", "full_reason": None,
        "window": ["2026-11-20T09:00:00+00:00", "2026-11-20T10:00:00+00:00"], "matched": 5, "pushed": 2,
        "duplicates": 1, "created": 1, "updated": 1, "kept_status": 1, "untagged": 4, "archived": 0, "rejected": 3,
        "reject_reasons": {"no email address": 2, "Mailchimp refused: <email> looks fake": 1},
        "requests": {"mailchimp": 3, "salesforce": 2}, "dry_run": False})
    assert line == ("SUMMARY query partner_leads -> a1 (Lead, mirror) [2026-11-20T09:00:00+00:00, "
                    "2026-11-20T10:00:00+00:00): matched 5 · pushed 2 · created 1 · updated 1 · kept status 1 "
                    "(already unsubscribed/cleaned) · duplicate emails 1 · untagged 4 · archived 0 · rejected 3 "
                    "(no email address ×2, Mailchimp refused: <email> looks fake ×1) · requests mailchimp 3, "
                    "salesforce 2")
