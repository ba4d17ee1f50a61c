"""The hourly audience sync end to end on the sandbox: idempotence, backfill order, full resync,
newly mapped fields, hostile values. Steps run in-process in DAG order (devtools.runner);
tests/integration/test_airflow_dags.py runs the same DAGs through real Airflow."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from tests.integration.conftest import SMALL, Env, mapping_yaml


def anchor() -> datetime:
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


def hour(offset: int) -> tuple[datetime, datetime]:
    start = anchor() + timedelta(hours=offset)
    return start, start + timedelta(hours=1)


def totals(reports, key):
    return sum(r.get(key, 0) for r in reports)


def change_members(env: Env, list_id: str, changes: list[dict]) -> None:
    env.mc_private("POST", f"/lists/{list_id}/members?skip_merge_validation=true", {"members": changes})


def member_emails(env: Env, list_id: str, n: int) -> list[str]:
    members = env.mailchimp().lists.get_list_members_info(list_id, count=n, status="subscribed")["members"]
    return [m["email_address"] for m in members]


@pytest.fixture(scope="module")
def loaded(env):
    """The first run of any audience is a full load (nothing of it is in Salesforce yet)."""
    reports = env.run(*hour(-1))
    return reports


def test_first_run_loads_every_member(env, loaded):
    assert {r["audience_id"] for r in loaded} == set(env.lists)
    with env.active():
        sf = env.salesforce()
        for report in loaded:
            total = env.mailchimp().lists.get_list_members_info(report["audience_id"], count=1)["total_items"]
            in_sf = sf.query_frame("SELECT MC_Subscriber_Key__c FROM MC_Subscriber__c WHERE "
                                   f"MC_Subscriber_Key__c LIKE '{report['audience_id']}:%'")
            assert report["extracted"] == total
            assert len(in_sf) == total - report["validate_rejected"]
            assert report["load_failed"] == 0


def test_same_interval_twice_changes_nothing(env, loaded):
    before = env.state()
    modstamps = env.state({"MC_Subscriber__c": ("MC_Subscriber_Key__c", ["SystemModstamp"]),
                           "Lead": ("Id", ["SystemModstamp"]), "Contact": ("Id", ["SystemModstamp"])})
    again = env.run(*hour(-1))
    assert totals(again, "created") == 0 and totals(again, "updated") == 0
    assert env.state() == before
    assert env.state({"MC_Subscriber__c": ("MC_Subscriber_Key__c", ["SystemModstamp"]),
                      "Lead": ("Id", ["SystemModstamp"]), "Contact": ("Id", ["SystemModstamp"])}) == modstamps


def test_nothing_changed_costs_few_requests(env, loaded):
    reports = env.run(*hour(40))  # a window far ahead: no member changed in it
    for report in reports:
        assert report["extracted"] == 0
        assert sum(report["requests"].values()) <= 4, report["requests"]


def test_dry_run_writes_nothing_but_counts(env, loaded):
    list_id = env.lists[0]
    start, end = hour(20)
    email = member_emails(env, list_id, 1)[0]
    change_members(env, list_id, [{"email_address": email, "merge_fields": {"FNAME": "Dry"},
                                   "last_changed": (start + timedelta(minutes=5)).isoformat()}])
    before = env.state()
    reports = env.run(start, end, dry_run=True)
    assert env.state() == before
    assert totals(reports, "updated") >= 1 and all(r["dry_run"] for r in reports)
    env.run(start, end)  # leave the change applied for the later tests


def assert_same_state(got: dict, want: dict) -> None:
    """Equal states; on a difference, show the differing rows of each object (a few)."""
    problems = []
    for obj in sorted(set(got) | set(want)):
        extra, missing = set(got.get(obj, [])) - set(want.get(obj, [])), set(want.get(obj, [])) - set(got.get(obj, []))
        if extra or missing:
            problems.append(f"{obj}: only in got {sorted(extra)[:3]}; only in want {sorted(missing)[:3]}")
    assert not problems, "\n".join(problems)


def apply_history(env: Env) -> list[tuple[datetime, datetime]]:
    """Changes spread over three hours ahead of the anchor (same on every sandbox of seed 11)."""
    windows = [hour(1), hour(2), hour(3)]
    list_a, list_b = env.lists
    a = member_emails(env, list_a, 6)
    b = member_emails(env, list_b, 4)
    at = [(w[0] + timedelta(minutes=10)).isoformat() for w in windows]
    change_members(env, list_a, [{"email_address": a[0], "merge_fields": {"FNAME": "Changed", "PHONE": "+47 1"},
                                  "last_changed": at[0]},
                                 {"email_address": a[1], "status": "unsubscribed", "last_changed": at[0]},
                                 {"email_address": "new.person+1@example.org", "status": "subscribed",
                                  "merge_fields": {"FNAME": "New", "LNAME": "Person"}, "last_changed": at[1]},
                                 {"email_address": a[2], "merge_fields": {"LNAME": "O'Brien \\ \"Q\""},
                                  "last_changed": at[2]}])
    change_members(env, list_b, [{"email_address": b[0], "status": "unsubscribed", "last_changed": at[1]},
                                 {"email_address": "NEW.PERSON+1@example.org ", "status": "subscribed",
                                  "merge_fields": {"FNAME": "New", "LNAME": "Person"}, "last_changed": at[2]}])
    return windows


def test_backfill_in_any_order_gives_the_same_end_state(env, loaded, tmp_path):
    windows = apply_history(env)
    for window in windows:
        env.run(*window)
    in_order = env.state()
    other = Env(tmp_path, *SMALL)
    try:
        other.run(*hour(-1))
        apply_history(other)
        for window in reversed(windows):
            other.run(*window)
        assert_same_state(other.state(), in_order)
    finally:
        other.close()
    with env.active():
        leads = env.salesforce().query_frame(
            "SELECT Id, LeadSource FROM Lead WHERE Email = 'new.person+1@example.org'")
    assert len(leads) == 1 and leads["LeadSource"][0] == "Mailchimp"  # one Lead for two audiences


def test_full_resync_matches_the_hourly_history(env, loaded):
    before = env.state()
    reports = env.run(*hour(3), full_resync=True)
    assert totals(reports, "created") == 0 and totals(reports, "updated") == 0
    assert env.state() == before


def test_a_newly_mapped_field_is_filled_for_existing_subscribers(env, loaded):
    list_id = env.lists[0]
    env.write_mapping(list_id, mapping_yaml(list_id, extra_fields="""  - merge_tag: COMPANY
    contact_field: Title
    overwrite: always
"""))
    try:
        reports = env.run(*hour(30))  # no member changed in this window: the mapping change alone
        mine = next(r for r in reports if r["audience_id"] == list_id)
        assert mine["updated"] > 0
        with env.active():
            sf = env.salesforce()
            titled = sf.query_frame("SELECT Id FROM Contact WHERE Title != null")
        assert len(titled) > 0
        assert totals(env.run(*hour(30)), "updated") == 0
    finally:
        env.write_mapping(list_id, mapping_yaml(list_id))


@pytest.mark.parametrize(
    ("offset", "merge", "email", "expect"),
    [
        (50, {"FNAME": "Ann", "LNAME": "Lee"}, "a" * 60 + "@" + "b" * 30 + ".example.org",
         "longer than the 80 characters"),
        (51, {"FNAME": "F" * 60, "LNAME": "Lee"}, "long.first@example.org", "longer than Lead.FirstName allows (40)"),
        (52, {"FNAME": "Ann", "LNAME": ""}, "no.last@example.org", "no value for LastName"),
    ],
)
def test_bad_rows_are_rejected_with_a_reason(env, loaded, offset, merge, email, expect):
    list_id = env.lists[1]
    start, end = hour(offset)
    at = (start + timedelta(minutes=1)).isoformat()
    good = [{"email_address": e, "merge_fields": {"FNAME": "Fine"}, "last_changed": at}
            for e in member_emails(env, list_id, 2)]  # under max_reject_share, so the rest loads
    change_members(env, list_id, [{"email_address": email, "status": "subscribed", "merge_fields": merge,
                                   "last_changed": at}, *good])
    reports = env.run(start, end, audiences=[list_id])
    assert any(expect in reason for reason in reports[0]["reject_reasons"]), reports[0]["reject_reasons"]
    assert "@" not in reports[0]["summary"]  # no email in the log line


def test_hostile_values_land_byte_exact(env, loaded):
    list_id = env.lists[1]
    start, end = hour(60)
    hostile = "=cmd|' /C calc'!A0, \"quoted\" \\ back\nnew line — Ω 🚀"
    change_members(env, list_id, [{"email_address": "hostile@example.org", "status": "subscribed",
                                   "merge_fields": {"FNAME": "Zoë", "LNAME": hostile},
                                   "last_changed": (start + timedelta(minutes=1)).isoformat()}])
    env.run(start, end, audiences=[list_id])
    with env.active():
        sf = env.salesforce()
        lead = sf.query_frame("SELECT LastName, FirstName FROM Lead WHERE Email = 'hostile@example.org'")
        sub = sf.query_frame("SELECT Last_Name__c FROM MC_Subscriber__c WHERE Email__c = 'hostile@example.org'")
    assert lead["LastName"].tolist() == [hostile.strip()]
    assert lead["FirstName"].tolist() == ["Zoë"]
    assert sub["Last_Name__c"].tolist() == [hostile.strip()]


def test_segment_members_without_a_synced_subscriber_are_skipped_not_refused(env, loaded):
    """A static segment can hold a member mcsf rejected (or one archived in Mailchimp): no subscriber
    exists for it, so its membership is counted and left out instead of being refused every run."""
    list_id = env.lists[1]
    start, end = hour(70)
    at = start + timedelta(minutes=5)
    env.mc_private("PUT", "/clock", {"now": at.isoformat()})
    try:
        rejected = "s" * 60 + "@" + "b" * 30 + ".example.org"  # too long for Salesforce: validation rejects it
        good = member_emails(env, list_id, 3)  # changed too, so the rejects stay under max_reject_share
        change_members(env, list_id, [{"email_address": e, "status": "subscribed", "last_changed": at.isoformat(),
                                       "merge_fields": {"FNAME": "Ann", "LNAME": "Lee"}} for e in [rejected, *good]])
        client = env.mailchimp()
        segment = client.lists.create_segment(list_id, {"name": "mcsf skipped members", "static_segment": []})
        client.lists.batch_segment_members({"members_to_add": [rejected, *good[:2]]}, list_id, segment["id"])
        reports = env.run(start, end, audiences=[list_id])
    finally:
        env.mc_private("PUT", "/clock", {"now": None})
    assert reports[0]["validate_rejected"] == 1
    assert reports[0]["load_failed"] == 0, reports[0]["reject_reasons"]
    with env.active():
        members = env.salesforce().query_frame(
            "SELECT MC_Segment_Member_Key__c FROM MC_Segment_Member__c "
            f"WHERE Segment__r.MC_Segment_Key__c = '{list_id}:{segment['id']}'")
    assert len(members) == 2


def test_a_member_leaving_a_static_segment_loses_only_that_membership(env, loaded):
    """Memberships of every changed static segment are read in one query; the one that ended is deleted,
    the rest (of that segment and of the other segment changed in the same hour) stay."""
    list_id = env.lists[1]
    start, end = hour(72)
    client = env.mailchimp()
    people = member_emails(env, list_id, 3)
    env.mc_private("PUT", "/clock", {"now": (start + timedelta(minutes=5)).isoformat()})
    try:
        first = client.lists.create_segment(list_id, {"name": "mcsf leavers", "static_segment": people[:2]})
        second = client.lists.create_segment(list_id, {"name": "mcsf stayers", "static_segment": people[1:]})
        env.run(start, end, audiences=[list_id])
    finally:
        env.mc_private("PUT", "/clock", {"now": None})
    start, end = hour(73)
    env.mc_private("PUT", "/clock", {"now": (start + timedelta(minutes=5)).isoformat()})
    try:
        client.lists.batch_segment_members({"members_to_remove": [people[0]]}, list_id, first["id"])
        client.lists.batch_segment_members({"members_to_add": [people[0]]}, list_id, second["id"])
        env.run(start, end, audiences=[list_id])
    finally:
        env.mc_private("PUT", "/clock", {"now": None})

    def held(segment: dict) -> int:
        with env.active():
            return len(env.salesforce().query_frame(
                "SELECT Id FROM MC_Segment_Member__c "
                f"WHERE Segment__r.MC_Segment_Key__c = '{list_id}:{segment['id']}'"))

    assert (held(first), held(second)) == (1, 3)


def test_an_hour_with_no_member_changed_still_follows_mailchimps_counts(env, loaded):
    """A member deleted for good changes its audience's counts, not any member's ``last_changed``:
    the next hour has nothing to extract, yet brings ``MC_Audience__c``'s counts in line with
    Mailchimp's (preflight reads every audience's stats, one request), and that hour again writes
    nothing."""
    import hashlib

    client = env.mailchimp()
    list_id = env.lists[-1]
    email = member_emails(env, list_id, 1)[0]
    client.lists.delete_list_member_permanent(list_id, hashlib.md5(email.lower().encode()).hexdigest())
    stats = client.lists.get_list(list_id)["stats"]
    start, end = hour(85)
    [report] = env.run(start, end, audiences=[list_id])
    assert report["extracted"] == 0
    assert report["by_object"]["MC_Audience__c"]["updated"] == 1, report["by_object"]
    with env.active():
        row = env.salesforce().query_frame("SELECT Member_Count__c FROM MC_Audience__c "
                                           f"WHERE MC_Audience_Id__c = '{list_id}'")
    assert float(row["Member_Count__c"][0]) == stats["member_count"]
    [again] = env.run(start, end, audiences=[list_id])
    assert again["by_object"].get("MC_Audience__c", {}).get("updated", 0) == 0, again["by_object"]
    assert again["requests"].get("salesforce", 0) == 0, again["requests"]  # no login: nothing to write


def test_changed_audiences_get_fresh_stats_and_one_gone_from_mailchimp_is_named(env, loaded):
    """An audience whose members changed gets Mailchimp's counts on ``MC_Audience__c``, and one deleted
    from Mailchimp since its last load fails its extract naming its mapping file (the others of the
    run go on: preflight reads the account's audiences for their stats only)."""
    from airflow.sdk.exceptions import AirflowFailException

    client = env.mailchimp()
    list_id = env.lists[0]
    start, end = hour(80)
    env.mc_private("PUT", "/clock", {"now": (start + timedelta(minutes=5)).isoformat()})
    try:
        change_members(env, list_id, [{"email_address": e, "status": "unsubscribed"}
                                      for e in member_emails(env, list_id, 2)])
        env.run(start, end, audiences=[list_id])
    finally:
        env.mc_private("PUT", "/clock", {"now": None})
    stats = client.lists.get_list(list_id)["stats"]
    with env.active():
        row = env.salesforce().query_frame("SELECT Member_Count__c, Unsubscribe_Count__c FROM MC_Audience__c "
                                           f"WHERE MC_Audience_Id__c = '{list_id}'")
    assert (float(row["Member_Count__c"][0]), float(row["Unsubscribe_Count__c"][0])) == \
        (stats["member_count"], stats["unsubscribe_count"])

    gone = client.lists.create_list({
        "name": "mcsf soon deleted", "permission_reminder": "You signed up.", "email_type_option": False,
        "contact": {"company": "mcsf", "address1": "1 Main St", "city": "Springfield", "state": "IL",
                    "zip": "62701", "country": "US"},
        "campaign_defaults": {"from_name": "mcsf", "from_email": "news@example.org", "subject": "News",
                              "language": "en"},
    })["id"]
    client.lists.batch_list_members(gone, {"members": [{"email_address": "gone.soon@example.org",
                                                        "status": "subscribed", "merge_fields": {"LNAME": "Soon"}}]})
    env.write_mapping(gone, mapping_yaml(gone))
    try:
        assert env.run(*hour(81), audiences=[gone])[0]["load_failed"] == 0  # its first load
        client.lists.delete_list(gone)
        start, end = hour(82)
        with pytest.raises(AirflowFailException, match=rf"a_{gone}\.yaml: audience {gone} is not in this Mailchimp"):
            env.run(start, end, audiences=[gone])
    finally:
        (env.mappings / f"a_{gone}.yaml").unlink()


def test_a_new_person_in_two_audiences_gets_one_lead_written_once_by_the_same_audience(env, loaded, monkeypatch):
    """Both audiences would create the Lead; the one with the smaller id creates it, whichever
    audience's load_people runs first (mapped tasks run side by side in Airflow), and the other
    links its subscriber to it afterwards, filling only what its policies allow (FirstName is
    ``if_blank``): one create, and field values that do not depend on task order. The link needs
    no read of Leads: the creating audience staged the Lead's Id and values."""
    from mcsf import audience, audience_load

    looked_up = []
    real = audience_load.lookup.fetch_by_values
    monkeypatch.setattr(audience_load.lookup, "fetch_by_values",
                        lambda sf, obj, *a, **k: looked_up.append(obj) or real(sf, obj, *a, **k))

    first, second = sorted(env.lists)
    email = "twice.new@example.org"
    start, end = hour(90)
    at = (start + timedelta(minutes=5)).isoformat()
    for list_id, name in ((first, "FromFirst"), (second, "FromSecond")):
        change_members(env, list_id, [{"email_address": email, "status": "subscribed", "last_changed": at,
                                       "merge_fields": {"FNAME": name, "LNAME": "Twice"}}])
    with env.active():
        ready = audience.preflight(start, end)
        for step in (audience.extract, audience.map_, audience.validate):
            ready = [step(a) for a in ready]
        ready = [audience.load_people(a) for a in reversed(ready)]  # the later audience first
        by_id = {a["audience_id"]: a["people"] for a in ready}
        looked_up.clear()  # the extracts' reads of Contacts and Leads are not the point
        ready = [audience.load_subscribers(a) for a in ready]
        sf = env.salesforce()
        leads = sf.query_frame(f"SELECT Id, FirstName FROM Lead WHERE MC_Email_Key__c = '{email}'")
        links = sf.query_frame(f"SELECT Lead__c FROM MC_Subscriber__c WHERE Email__c = '{email}'")
    assert leads["FirstName"].tolist() == ["FromFirst"]
    assert links["Lead__c"].tolist() == [leads["Id"][0]] * 2
    assert (by_id[first]["leads_created"], by_id[second]["leads_created"]) == (1, 0)
    assert by_id[second]["leads_created_by_another_audience"] == 1
    assert "Lead" not in looked_up


@pytest.mark.parametrize("order", ["by id", "reversed"])
def test_audiences_changing_one_persons_field_in_one_run_agree_on_the_latest_change(env, loaded, order):
    """Two audiences hold the same Lead and both change its ``overwrite: always`` first name in one
    hour: the later change wins, whichever audience's load_people runs last (mapped tasks run side
    by side, in any order), and the other audience leaves that field alone."""
    from mcsf import audience

    first, second = sorted(env.lists)
    offset = 92 if order == "by id" else 94
    people = {f"p.{order[:2]}@example.org": first, f"q.{order[:2]}@example.org": second}  # email -> changed later
    always = mapping_yaml("{list_id}").replace("    contact_field: FirstName\n",
                                               "    contact_field: FirstName\n    overwrite: always\n")
    for list_id in env.lists:
        env.write_mapping(list_id, always.replace("{list_id}", list_id))
    try:
        start, _ = hour(offset)
        seed = (start + timedelta(minutes=5)).isoformat()
        for list_id in env.lists:
            change_members(env, list_id, [{"email_address": e, "status": "subscribed", "last_changed": seed,
                                           "merge_fields": {"FNAME": "Seed", "LNAME": "Twice"}} for e in people])
        env.run(*hour(offset))  # the first audience creates both Leads, the second links to them
        start, end = hour(offset + 1)
        for list_id in env.lists:
            change_members(env, list_id, [
                {"email_address": e, "last_changed": (start + timedelta(minutes=40 if later == list_id else 10)
                                                      ).isoformat(),
                 "merge_fields": {"FNAME": f"From{'First' if list_id == first else 'Second'}", "LNAME": "Twice"}}
                for e, later in people.items()])
        with env.active():
            ready = audience.preflight(start, end)
            for step in (audience.extract, audience.map_, audience.validate):
                ready = [step(a) for a in ready]
            ready = [audience.load_people(a) for a in (ready if order == "by id" else reversed(ready))]
            for a in ready:
                audience.load_subscribers(a)
            leads = env.salesforce().query_frame(
                "SELECT MC_Email_Key__c, FirstName FROM Lead WHERE MC_Email_Key__c IN ('"
                + "', '".join(people) + "')")
        got = dict(zip(leads["MC_Email_Key__c"], leads["FirstName"], strict=True))
        assert got == {e: "FromFirst" if later == first else "FromSecond" for e, later in people.items()}
        assert totals(env.run(start, end), "updated") == 0  # the interval again: nothing moves
    finally:
        for list_id in env.lists:
            env.write_mapping(list_id, mapping_yaml(list_id))


def test_a_lead_found_by_its_key_links_every_audience_of_the_run(env, loaded):
    """A Lead whose Email was changed in Salesforce still carries its key: the first audience's
    create finds it (an update, not a second Lead), and the other audience, finding no Lead by
    email, links to it through the key."""
    first, second = sorted(env.lists)
    email = "rekeyed@example.org"
    with env.active():
        sf = env.salesforce()
        lead_id = sf.upsert("Lead", "MC_Email_Key__c", pd.DataFrame([{
            "MC_Email_Key__c": email, "Email": "sales.changed.it@example.org", "LastName": "Rekeyed",
            "Company": "Acme"}])).successes["sf__Id"].iloc[0]
    start, end = hour(96)
    at = (start + timedelta(minutes=5)).isoformat()
    for list_id in (first, second):
        change_members(env, list_id, [{"email_address": email, "status": "subscribed", "last_changed": at,
                                       "merge_fields": {"FNAME": "Re", "LNAME": "Keyed"}}])
    reports = env.run(start, end)
    with env.active():
        sf = env.salesforce()
        leads = sf.query_frame(f"SELECT Id FROM Lead WHERE MC_Email_Key__c = '{email}'")
        links = sf.query_frame(f"SELECT Lead__c FROM MC_Subscriber__c WHERE Email__c = '{email}'")
    assert leads["Id"].tolist() == [lead_id]
    assert links["Lead__c"].tolist() == [lead_id, lead_id]
    assert totals(reports, "leads_created") == 0
