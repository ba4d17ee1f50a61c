"""Where leads are decided: matching, creation, updates and opt-outs (pure, table-driven)."""

from __future__ import annotations

import pandas as pd
import pytest

from mcsf.config import AudienceMapping
from mcsf.leads import LEAD_REF, best_match, new_lead_emails, opt_out_updates, outranked, plan_people

TYPES = {"Lead": {"FirstName": "string", "LastName": "string", "Phone": "phone"},
         "Contact": {"FirstName": "string", "LastName": "string", "Phone": "phone"}}


def mapping(**overrides):
    base = {
        "audience_id": "L1",
        "leads": {"create": True, "defaults": {"Company": "[not provided]"}},
        "fields": [
            {"merge_tag": "FNAME", "lead_field": "FirstName", "contact_field": "FirstName", "overwrite": "always"},
            {"merge_tag": "LNAME", "lead_field": "LastName", "contact_field": "LastName"},
            {"merge_tag": "PHONE", "lead_field": "Phone", "contact_field": "Phone", "overwrite": "if_blank"},
        ],
    }
    base.update(overrides)
    return AudienceMapping.model_validate(base)


def subs(*rows):
    frame = pd.DataFrame([
        {"MC_Subscriber_Key__c": f"L1:{i}", "Email__c": email, "_email_norm": email.strip().lower(),
         "Status__c": status, "Last_Changed__c": f"2026-11-20T09:{i:02d}:00.000Z"}
        for i, (email, status, _) in enumerate(rows)
    ])
    people = pd.DataFrame([
        {f"{obj}.{k}": v for obj in ("Lead", "Contact") for k, v in values.items()}
        for _, _, values in rows
    ], index=frame.index)
    return frame, people


def records(*rows):
    return pd.DataFrame([
        {"Id": rid, "Email": email, "LastModifiedDate": modified, "HasOptedOutOfEmail": False, **extra}
        for rid, email, modified, extra in rows
    ]) if rows else pd.DataFrame(columns=["Id", "Email", "LastModifiedDate", "HasOptedOutOfEmail"])


NONE = records()
NO_OTHERS = pd.DataFrame(columns=["Email__c", "Status__c"])
ADA = {"FirstName": "Ada", "LastName": "Lovelace", "Phone": "123"}


def test_contact_beats_lead_and_case_is_ignored():
    s, p = subs(("ADA@example.com ", "subscribed", ADA))
    plan = plan_people(s, p, records(("003C", "ada@EXAMPLE.com", "2026-01-01T00:00:00.000Z", {})),
                       records(("00QL", "ada@example.com", "2026-11-01T00:00:00.000Z", {})), mapping(), TYPES)
    assert plan.links.loc[0, "Contact__c"] == "003C"
    assert pd.isna(plan.links.loc[0, "Lead__c"])
    assert plan.lead_creates.empty


def test_most_recently_modified_wins_a_tie():
    best = best_match(records(("003A", "a@x.io", "2026-01-01T00:00:00.000Z", {}),
                              ("003B", "A@x.io", "2026-02-01T00:00:00.000+0000", {})))
    assert best["Id"].tolist() == ["003B"]


@pytest.mark.parametrize(("status", "creates"), [("subscribed", 1), ("pending", 1), ("unsubscribed", 0),
                                                  ("cleaned", 0), ("archived", 0), ("transactional", 0)])
def test_only_prospects_become_leads(status, creates):
    s, p = subs(("new@x.io", status, ADA))
    plan = plan_people(s, p, NONE, NONE, mapping(), TYPES)
    assert len(plan.lead_creates) == creates


def test_new_lead_gets_defaults_source_and_key_and_link():
    s, p = subs(("New@X.io", "subscribed", {"FirstName": "N", "LastName": "Ew"}))
    plan = plan_people(s, p, NONE, NONE, mapping(), TYPES)
    lead = plan.lead_creates.iloc[0]
    assert (lead["MC_Email_Key__c"], lead["Company"], lead["LeadSource"], lead["Email"]) == \
        ("new@x.io", "[not provided]", "Mailchimp", "new@x.io")
    assert plan.links.loc[0, LEAD_REF] == "new@x.io"


def test_one_lead_per_email_even_when_it_appears_twice():
    s, p = subs(("dup@x.io", "subscribed", ADA), (" DUP@x.io", "subscribed", {**ADA, "FirstName": "Later"}))
    plan = plan_people(s, p, NONE, NONE, mapping(), TYPES)
    assert len(plan.lead_creates) == 1
    assert plan.lead_creates.iloc[0]["FirstName"] == "Later"  # latest-changed row wins
    assert plan.links[LEAD_REF].tolist() == ["dup@x.io", "dup@x.io"]


def test_missing_last_name_is_rejected_with_the_fix():
    s, p = subs(("nolast@x.io", "subscribed", {"FirstName": "N", "LastName": None}))
    plan = plan_people(s, p, NONE, NONE, mapping(), TYPES)
    assert plan.lead_creates.empty
    assert "LastName" in plan.rejects.loc[0, "_reason"] and "leads.defaults" in plan.rejects.loc[0, "_reason"]
    assert pd.isna(plan.links.loc[0, LEAD_REF])


def test_leads_not_created_when_the_audience_does_not_allow_it():
    s, p = subs(("new@x.io", "subscribed", ADA))
    plan = plan_people(s, p, NONE, NONE, mapping(leads={"create": False}), TYPES)
    assert plan.lead_creates.empty and plan.rejects.empty


def test_overwrite_policies_and_blank_never_clears():
    s, p = subs(("c@x.io", "subscribed", {"FirstName": "New", "LastName": None, "Phone": "999"}))
    contact = records(("003C", "c@x.io", "2026-01-01T00:00:00.000Z",
                       {"FirstName": "Old", "LastName": "Kept", "Phone": "111"}))
    plan = plan_people(s, p, contact, NONE, mapping(), TYPES)
    assert plan.contact_updates.to_dict("records") == [{"Id": "003C", "FirstName": "New"}]


def test_if_blank_fills_an_empty_field():
    s, p = subs(("c@x.io", "subscribed", {"FirstName": "Old", "Phone": "999"}))
    contact = records(("003C", "c@x.io", "2026-01-01T00:00:00.000Z", {"FirstName": "Old", "Phone": None}))
    plan = plan_people(s, p, contact, NONE, mapping(), TYPES)
    assert plan.contact_updates.to_dict("records") == [{"Id": "003C", "Phone": "999"}]


def test_nothing_changed_means_no_update():
    s, p = subs(("c@x.io", "subscribed", ADA))
    contact = records(("003C", "c@x.io", "2026-01-01T00:00:00.000Z", dict(ADA)))
    plan = plan_people(s, p, contact, NONE, mapping(), TYPES)
    assert plan.contact_updates.empty


@pytest.mark.parametrize(
    ("policy", "other_status", "opted_out"),
    [("any_audience", "subscribed", True), ("all_audiences", "subscribed", False),
     ("all_audiences", "unsubscribed", True), ("never", "unsubscribed", False)],
)
def test_opt_out_policy(policy, other_status, opted_out):
    s, _ = subs(("c@x.io", "unsubscribed", ADA))
    contact = records(("003C", "c@x.io", "2026-01-01T00:00:00.000Z", dict(ADA)))
    links = pd.DataFrame({"Lead__c": [None], "Contact__c": ["003C"]}, index=s.index)
    others = pd.DataFrame([{"Email__c": "C@x.io", "Status__c": other_status}])
    updates = opt_out_updates(s, links, contact, NONE, others, mapping(opt_out_policy=policy))
    assert (updates["Contact"]["Id"].tolist() == ["003C"]) is opted_out
    assert updates["Lead"].empty


def test_opt_out_is_not_sent_twice():
    s, _ = subs(("c@x.io", "unsubscribed", ADA))
    contact = records(("003C", "c@x.io", "2026-01-01T00:00:00.000Z", {"HasOptedOutOfEmail": True}))
    links = pd.DataFrame({"Lead__c": [None], "Contact__c": ["003C"]}, index=s.index)
    updates = opt_out_updates(s, links, contact, NONE, NO_OTHERS, mapping(opt_out_policy="any_audience"))
    assert updates["Contact"].empty


def test_a_lead_another_audience_creates_is_linked_not_created_again():
    s, p = subs(("both@x.io", "subscribed", ADA), ("mine@x.io", "subscribed", ADA),
                ("nolast@x.io", "subscribed", {"LastName": None}), ("gone@x.io", "unsubscribed", ADA))
    assert sorted(new_lead_emails(s, p, NONE, NONE, mapping())) == ["both@x.io", "mine@x.io"]
    plan = plan_people(s, p, NONE, NONE, mapping(), TYPES, created_elsewhere=pd.Series(["both@x.io", "x@y.z"]))
    assert plan.lead_creates["MC_Email_Key__c"].tolist() == ["mine@x.io"]
    assert plan.links[LEAD_REF].tolist()[1] == "mine@x.io"
    assert pd.isna(plan.links[LEAD_REF][0])  # linked in phase 2, to the Lead the other audience made
    assert plan.counts["leads_created_by_another_audience"] == 1
    assert new_lead_emails(s, p, NONE, NONE, mapping(leads={"create": False})).empty


def rivals(*rows):
    """Other audiences' rows: (audience, email, changed minute, {field: value})."""
    return pd.DataFrame([
        {"_audience": audience, "_email_norm": email, "Last_Changed__c": f"2026-11-20T09:{minute:02d}:00.000Z",
         **{f"Lead.{k}": v for k, v in values.items()}}
        for audience, email, minute, values in rows
    ])


def test_the_latest_changed_audience_offers_a_field_and_ties_go_to_the_smaller_id():
    # subs() stamps row i at minute i: ada at 09:00, bob at 09:01, cy at 09:02
    s, p = subs(("ada@x.io", "subscribed", ADA), ("bob@x.io", "subscribed", ADA), ("cy@x.io", "subscribed", ADA))
    beaten = outranked(s, p, rivals(("L0", "ada@x.io", 0, {"FirstName": "Tie"}),      # same time, smaller id
                                    ("L9", "bob@x.io", 5, {"FirstName": "Later"}),    # changed later
                                    ("L9", "bob@x.io", 5, {"Phone": None}),           # holds no value: no claim
                                    ("L0", "cy@x.io", 1, {"FirstName": "Earlier"}),   # changed earlier
                                    ("L0", "nobody@x.io", 9, {"FirstName": "X"})), "L1")
    assert beaten["Lead.FirstName"].tolist() == [True, True, False]
    assert not beaten["Lead.Phone"].any() and not beaten["Contact.FirstName"].any()
    assert beaten.index.equals(p.index)
    # the same tie seen from the smaller id: it keeps the field
    assert not outranked(s, p, rivals(("L5", "ada@x.io", 0, {"FirstName": "Tie"})), "L1")["Lead.FirstName"].any()
    assert not outranked(s, p, None, "L1").to_numpy().any()


def test_an_outranked_field_is_left_to_the_other_audience_and_the_rest_still_updates():
    s, p = subs(("ada@x.io", "subscribed", {**ADA, "FirstName": "Mine"}))
    lead = records(("00QL", "ada@x.io", "2026-11-01T00:00:00.000Z",
                    {"FirstName": "Old", "LastName": "Lovelace", "Phone": None}))
    alone = plan_people(s, p, NONE, lead, mapping(), TYPES)
    assert alone.lead_updates.to_dict("records") == [{"Id": "00QL", "FirstName": "Mine", "Phone": "123"}]
    shared = plan_people(s, p, NONE, lead, mapping(), TYPES,
                         rivals=rivals(("L7", "ada@x.io", 30, {"FirstName": "Theirs", "LastName": "Lovelace"})))
    assert shared.lead_updates.to_dict("records") == [{"Id": "00QL", "Phone": "123"}]
    # a new Lead keeps its creating audience's values (the winner updates it after)
    s2, p2 = subs(("new@x.io", "subscribed", {**ADA, "FirstName": "Mine"}))
    made = plan_people(s2, p2, NONE, NONE, mapping(), TYPES,
                       rivals=rivals(("L7", "new@x.io", 30, {"FirstName": "Theirs"})))
    assert made.lead_creates["FirstName"].tolist() == ["Mine"]
