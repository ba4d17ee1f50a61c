"""The nightly activity sync end to end on the sandbox: days are exact, re-runs are no-ops,
duplicates collapse, odd URLs survive, retention deletes, unknown members are rejected."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest


def day(midnight: datetime) -> tuple[datetime, datetime]:
    return midnight - timedelta(days=1), midnight


@pytest.fixture(scope="module")
def campaign(env):
    """A regular campaign of the first audience, with the audience loaded into Salesforce."""
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    env.run(now - timedelta(hours=1), now)
    created = env.mc_private("POST", "/campaigns", {
        "list_id": env.lists[0], "type": "regular", "status": "sent", "title": "Test send",
        "subject_line": "Hello", "send_time": "2026-10-01T08:00:00+00:00", "recipients": "all"})
    return created["id"]


def members(env, n):
    page = env.mailchimp().lists.get_list_members_info(env.lists[0], count=n, status="subscribed")
    return [m["email_address"] for m in page["members"]]


def add(env, campaign, events):
    env.mc_private("POST", f"/campaigns/{campaign}/activity", {"events": events})


def activity_count(env, where: str = "") -> int:
    with env.active():
        return len(env.salesforce().query_frame(f"SELECT Id FROM MC_Activity__c {where}"))


def test_a_day_lands_once_and_a_rerun_changes_nothing(env, campaign):
    a, b = members(env, 2)
    add(env, campaign, [
        {"email_address": a, "action": "open", "timestamp": "2026-10-02T23:59:59+00:00"},
        {"email_address": a, "action": "open", "timestamp": "2026-10-02T23:59:59+00:00"},  # duplicate event
        {"email_address": b, "action": "open", "timestamp": "2026-10-03T00:00:00+00:00"},
        {"email_address": b, "action": "click", "timestamp": "2026-10-02T10:00:00+00:00",
         "url": "https://example.com/ünï/" + "x" * 400},
        {"email_address": a, "action": "bounce", "type": "soft", "timestamp": "2026-10-02T11:00:00+00:00"},
    ])
    oct2 = day(datetime(2026, 10, 3, tzinfo=UTC))
    first = env.run(*oct2, activity=True, audiences=[env.lists[0]])
    assert first[0]["created"] >= 3  # the campaign + open + click + bounce (the duplicate collapses)
    window = "WHERE Occurred_At__c >= 2026-10-02T00:00:00Z AND Occurred_At__c < 2026-10-03T00:00:00Z"
    assert activity_count(env, window) == 3
    again = env.run(*oct2, activity=True, audiences=[env.lists[0]])
    assert again[0]["created"] == 0 and again[0]["updated"] == 0
    env.run(*day(datetime(2026, 10, 4, tzinfo=UTC)), activity=True, audiences=[env.lists[0]])
    assert activity_count(env, "WHERE Occurred_At__c = 2026-10-03T00:00:00Z") == 1  # the midnight open, once
    with env.active():
        click = env.salesforce().query_frame("SELECT URL__c, Full_URL__c FROM MC_Activity__c WHERE Action__c = 'click' "
                                             "AND Occurred_At__c = 2026-10-02T10:00:00Z")
    assert click["Full_URL__c"][0] == "https://example.com/ünï/" + "x" * 400
    assert len(click["URL__c"][0]) == 255


def test_days_in_reverse_order_change_nothing_more(env, campaign):
    before = env.state({"MC_Activity__c": ("MC_Activity_Key__c", ["Action__c", "Occurred_At__c"])})
    for midnight in (datetime(2026, 10, 4, tzinfo=UTC), datetime(2026, 10, 3, tzinfo=UTC)):
        env.run(*day(midnight), activity=True, audiences=[env.lists[0]])
    assert env.state({"MC_Activity__c": ("MC_Activity_Key__c", ["Action__c", "Occurred_At__c"])}) == before


def test_activity_of_someone_not_in_salesforce_is_rejected_with_a_reason(env, campaign):
    # A member whose change fell in an interval that was never synced: Mailchimp has them, Salesforce not.
    env.mc_private("POST", f"/lists/{env.lists[0]}/members", {"members": [
        {"email_address": "ghost.member@example.org", "status": "subscribed",
         "merge_fields": {"FNAME": "Ghost", "LNAME": "Member"}, "last_changed": "2026-09-01T00:00:00+00:00"}]})
    add(env, campaign, [{"email_address": "ghost.member@example.org", "action": "open",
                         "timestamp": "2026-10-05T09:00:00+00:00"}])
    reports = env.run(*day(datetime(2026, 10, 6, tzinfo=UTC)), activity=True, audiences=[env.lists[0]])
    assert reports[0]["rejected"] == 1, reports[0]
    reasons = reports[0]["reject_reasons"]
    assert any("MC_Subscriber" in r or "not found" in r.lower() for r in reasons), reasons


def test_retention_deletes_old_activity(env, campaign):
    assert activity_count(env, "WHERE Occurred_At__c < 2026-10-04T00:00:00Z") > 0
    # 30 days of retention, measured from the end of a day two months later
    reports = env.run(*day(datetime(2026, 12, 10, tzinfo=UTC)), activity=True, audiences=[env.lists[0]])
    assert reports[0]["deleted"] > 0
    assert activity_count(env, "WHERE Occurred_At__c < 2026-10-04T00:00:00Z") == 0


def test_the_campaigns_param_must_name_campaigns_of_the_synced_audiences(env, campaign):
    from airflow.sdk.exceptions import AirflowFailException

    window = day(datetime(2026, 10, 3, tzinfo=UTC))
    with pytest.raises(AirflowFailException, match=r"no-such-campaign \(no such campaign\); nothing was written"):
        env.run(*window, activity=True, campaigns=["no-such-campaign"])
    with pytest.raises(AirflowFailException, match=rf"{campaign} \(sent to audience {env.lists[0]}, not one"):
        env.run(*window, activity=True, audiences=[env.lists[1]], campaigns=[campaign])
    reports = env.run(*window, activity=True, audiences=[env.lists[0]], campaigns=[campaign])
    assert [r["audience_id"] for r in reports] == [env.lists[0]] and reports[0]["load_failed"] == 0
