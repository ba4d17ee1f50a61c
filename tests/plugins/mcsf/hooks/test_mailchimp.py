"""MailchimpHook against the Mailchimp sandbox over real HTTP, through the official client."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
import requests

from mcsf.hooks.mailchimp import MailchimpApiError, MailchimpHook

if TYPE_CHECKING:
    from collections.abc import Iterator

MEMBERS = "GET /lists/{list_id}/members"


def _connection(sandbox: dict[str, Any], **overrides: Any) -> str:
    conn = {
        "conn_type": "mailchimp",
        "password": sandbox["mailchimp_api_key"],
        "host": sandbox["mailchimp_url"],
    }
    return json.dumps({**conn, **overrides})


@pytest.fixture
def hook(sandbox: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> MailchimpHook:
    monkeypatch.setenv("AIRFLOW_CONN_MAILCHIMP_DEFAULT", _connection(sandbox))
    return MailchimpHook()


class Controls:
    """The sandbox's private knobs (faults, latency, request counts)."""

    def __init__(self, sandbox: dict[str, Any]) -> None:
        self.base = sandbox["mailchimp_url"].removesuffix("/3.0")
        self.auth = ("user", sandbox["mailchimp_api_key"])

    def set(self, **body: Any) -> None:
        requests.post(
            f"{self.base}/_sandbox/controls", json=body, auth=self.auth, timeout=10
        ).raise_for_status()

    def reset_counts(self) -> None:
        requests.post(f"{self.base}/_sandbox/requests/reset", auth=self.auth, timeout=10).raise_for_status()

    def counts(self) -> dict[str, Any]:
        response = requests.get(f"{self.base}/_sandbox/requests", auth=self.auth, timeout=10)
        response.raise_for_status()
        return response.json()


@pytest.fixture
def controls(sandbox: dict[str, Any]) -> Iterator[Controls]:
    knobs = Controls(sandbox)
    yield knobs
    knobs.set(faults="", latency_ms=0)


@pytest.fixture(scope="module")
def audience(sandbox: dict[str, Any]) -> dict[str, Any]:
    """The seeded audience with the most members (only read, never written)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_CONN_MAILCHIMP_DEFAULT", _connection(sandbox))
        hook = MailchimpHook()
        lists = [
            x
            for page in hook.iter_pages("GET /lists", hook.client.lists.get_all_lists, "lists")
            for x in page
        ]
    return max(lists, key=lambda x: x["stats"]["member_count"])


@pytest.fixture
def scratch_list(hook: MailchimpHook) -> Iterator[str]:
    """A new, empty audience for write tests, deleted afterwards (seeded audiences stay as seeded)."""
    body = {
        "name": f"hook test {uuid.uuid4().hex[:6]}",
        "permission_reminder": "You signed up on our site.",
        "email_type_option": False,
        "contact": {
            "company": "mcsf",
            "address1": "1 Main St",
            "city": "Springfield",
            "state": "IL",
            "zip": "62701",
            "country": "US",
        },
        "campaign_defaults": {
            "from_name": "mcsf",
            "from_email": "news@example.com",
            "subject": "Hi",
            "language": "en",
        },
    }
    list_id = hook.call("POST /lists", hook.client.lists.create_list, body)["id"]
    yield list_id
    hook.call("DELETE /lists/{list_id}", hook.client.lists.delete_list, list_id)


def _serial_member_ids(hook: MailchimpHook, list_id: str) -> list[str]:
    """Reference read: the raw client, one page after the other."""
    ids, offset = [], 0
    while True:
        page = hook.client.lists.get_list_members_info(
            list_id, count=1000, offset=offset, fields=["members.id"]
        )
        ids += [m["id"] for m in page["members"]]
        offset += 1000
        if not page["members"]:
            return ids


@pytest.mark.parametrize("page_size", [1000, 150])
def test_iter_members_yields_every_member_once_in_api_order(
    hook: MailchimpHook, audience: dict[str, Any], page_size: int
) -> None:
    progress: list[tuple[int, int]] = []
    if page_size == 1000:  # the wrapper's default
        pages = list(
            hook.iter_members(audience["id"], progress=lambda done, total: progress.append((done, total)))
        )
    else:  # small pages: many offsets fetched concurrently with look-ahead
        fn = hook.client.lists.get_list_members_info
        pages = list(hook.iter_pages(MEMBERS, fn, "members", list_id=audience["id"], page_size=page_size))
    ids = [m["id"] for page in pages for m in page]

    expected = _serial_member_ids(hook, audience["id"])
    assert len(expected) > 1000  # the seed must make paging matter
    assert ids == expected
    assert len(set(ids)) == len(ids)
    assert all(len(page) == page_size for page in pages[:-1])
    assert "_links" not in pages[0][0] and "email_address" in pages[0][0]
    assert hook.requests_used[MEMBERS] == -(-len(expected) // page_size)
    if progress:
        assert progress[-1] == (len(expected), len(expected))


def test_iter_pages_look_ahead_is_bounded(
    sandbox: dict[str, Any], monkeypatch: pytest.MonkeyPatch, audience: dict[str, Any]
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_MAILCHIMP_DEFAULT", _connection(sandbox))
    hook = MailchimpHook(max_connections=3)
    fn = hook.client.lists.get_list_members_info
    pages = hook.iter_pages(MEMBERS, fn, "members", list_id=audience["id"], page_size=100, fields=["id"])
    next(pages)
    time.sleep(0.5)  # give the look-ahead every chance to run further than it may
    assert hook.requests_used[MEMBERS] == 1 + 3  # the first page, then three in flight or waiting
    assert 100 + sum(len(page) for page in pages) == len(_serial_member_ids(hook, audience["id"]))


def test_iter_members_fields_and_window_filters(hook: MailchimpHook, audience: dict[str, Any]) -> None:
    everyone = [m for page in hook.iter_members(audience["id"], fields=["id", "last_changed"]) for m in page]
    assert set(everyone[0]) == {"id", "last_changed"}
    changed = sorted({datetime.fromisoformat(m["last_changed"]) for m in everyone})
    # Window bounds on seconds that no member has, so inclusive and exclusive readings agree.
    free = [t + timedelta(seconds=1) for t in changed if t + timedelta(seconds=1) not in changed]
    start, end = free[len(free) // 4], free[3 * len(free) // 4]
    expected = {m["id"] for m in everyone if start <= datetime.fromisoformat(m["last_changed"]) < end}
    assert 0 < len(expected) < len(everyone)

    window = hook.iter_members(
        audience["id"], since_last_changed=start, before_last_changed=end, fields=["id"]
    )
    assert {m["id"] for page in window for m in page} == expected

    subscribed = [
        m for p in hook.iter_members(audience["id"], status="subscribed", fields=["status"]) for m in p
    ]
    assert subscribed and {m["status"] for m in subscribed} == {"subscribed"}
    assert len(subscribed) == audience["stats"]["member_count"]

    with pytest.raises(ValueError, match="time zone"):
        next(hook.iter_members(audience["id"], since_last_changed=datetime(2026, 1, 1)))


def test_campaign_and_report_wrappers(
    hook: MailchimpHook, audience: dict[str, Any], sandbox: dict[str, Any]
) -> None:
    anchor = datetime.fromisoformat(sandbox["anchor"])
    campaigns = [c for p in hook.iter_campaigns(before_send_time=anchor + timedelta(days=1)) for c in p]
    assert campaigns and {c["status"] for c in campaigns} == {"sent"}
    last_week = [c for p in hook.iter_campaigns(since_send_time=anchor - timedelta(days=7)) for c in p]
    assert all(datetime.fromisoformat(c["send_time"]) >= anchor - timedelta(days=7) for c in last_week)

    busiest = max(campaigns, key=lambda c: c["emails_sent"])
    sent_to = [r for p in hook.iter_sent_to(busiest["id"]) for r in p]
    assert len(sent_to) == busiest["emails_sent"]
    activity = [e for p in hook.iter_email_activity(busiest["id"]) for e in p]
    assert activity and all(e["campaign_id"] == busiest["id"] for e in activity)
    since = anchor - timedelta(days=3)
    recent = [e for p in hook.iter_email_activity(busiest["id"], since=since) for e in p]
    assert all(datetime.fromisoformat(a["timestamp"]) > since for e in recent for a in e["activity"])
    list(hook.iter_unsubscribed(busiest["id"]))

    segments = [s for p in hook.iter_segments(audience["id"]) for s in p]
    if segments:
        segment = hook.get_segment(audience["id"], segments[0]["id"])
        members = [m for p in hook.iter_segment_members(audience["id"], segment["id"]) for m in p]
        assert len(members) == segment["member_count"]
        ids = [m for p in hook.iter_segment_members(audience["id"], segment["id"], fields=["id"]) for m in p]
        assert ids == [{"id": m["id"]} for m in members]  # membership alone: a fraction of the bytes
    categories = hook.list_interest_categories(audience["id"])
    for category in categories:
        assert all(
            i["category_id"] == category["id"] for i in hook.list_interests(audience["id"], category["id"])
        )
    assert hook.requests_used["GET /reports/{campaign_id}/sent-to"] >= 1


def test_concurrency_stays_within_the_connection_limit(
    hook: MailchimpHook, sandbox: dict[str, Any], audience: dict[str, Any], controls: Controls
) -> None:
    controls.set(latency_ms=40)  # long enough that 20 threads overlap
    bounded = MailchimpHook(max_connections=10)

    def hammer(call: Any) -> None:
        for _ in range(5):
            call()

    def run(call: Any) -> dict[str, Any]:
        controls.reset_counts()
        threads = [threading.Thread(target=hammer, args=(call,)) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return controls.counts()

    counts = run(lambda: bounded.get_list(audience["id"]))
    assert counts["rejected_over_connection_limit"] == 0
    assert not bounded.retries
    assert bounded.requests_used["GET /lists/{list_id}"] == 100

    # The same load without the hook's bound does hit the limit, so the check above can fail.
    def unbounded() -> None:
        with contextlib.suppress(Exception):  # the 429s are the point
            hook.client.lists.get_list(audience["id"])

    assert run(unbounded)["rejected_over_connection_limit"] > 0


def test_max_connections_from_extra_is_capped(
    hook: MailchimpHook, sandbox: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_MC_WIDE", _connection(sandbox, extra={"max_connections": 25}))
    monkeypatch.setenv("AIRFLOW_CONN_MC_NARROW", _connection(sandbox, extra={"max_connections": 3}))
    assert MailchimpHook("mc_wide").max_connections == 10
    assert MailchimpHook("mc_narrow").max_connections == 3
    assert MailchimpHook("mc_narrow", max_connections=5).max_connections == 5
    assert hook.max_connections == 8


def test_transient_failures_are_retried_to_a_complete_result(
    hook: MailchimpHook, audience: dict[str, Any], controls: Controls
) -> None:
    expected = _serial_member_ids(hook, audience["id"])
    controls.set(faults="429:0.2,503:0.1,drop:0.05")
    controls.reset_counts()
    hook.max_attempts = 12  # ~32 % of requests fail here; 12 attempts make a spurious give-up negligible
    pages = hook.iter_pages(
        MEMBERS,
        hook.client.lists.get_list_members_info,
        "members",
        list_id=audience["id"],
        page_size=100,  # 20+ requests: some certainly meet a fault
        fields=["id"],
    )
    ids = [m["id"] for page in pages for m in page]
    injected = controls.counts()["faults_injected"]

    assert ids == expected
    assert sum(hook.retries.values()) == sum(injected.values()) > 0
    assert hook.requests_used[MEMBERS] == -(-len(expected) // 100) + sum(hook.retries.values())
    assert set(hook.retries) <= {"429", "503", "connection"}


def test_client_errors_are_not_retried_and_carry_the_problem_document(
    hook: MailchimpHook, audience: dict[str, Any]
) -> None:
    with pytest.raises(MailchimpApiError) as missing:
        hook.get_list("0000000000")
    assert missing.value.status == 404
    assert missing.value.title == "Resource Not Found"
    assert not missing.value.transient

    with pytest.raises(MailchimpApiError) as invalid:
        hook.create_merge_field(audience["id"], {"name": "Bad", "type": "no-such-type", "tag": "BADTYPE"})
    assert invalid.value.status == 400
    assert invalid.value.title and invalid.value.detail
    assert "400" in str(invalid.value) and invalid.value.title in str(invalid.value)
    assert hook.requests_used["POST /lists/{list_id}/merge-fields"] == 1
    assert not hook.retries


def test_batch_upsert_members_reports_per_member_errors(hook: MailchimpHook, scratch_list: str) -> None:
    run = uuid.uuid4().hex[:8]
    good = [
        {
            "email_address": f"person{i}.{run}@example.com",
            "status": "subscribed",
            "merge_fields": {"FNAME": f"P{i}"},
        }
        for i in range(620)
    ]
    bad = [
        {"email_address": f"not-an-email-{run}", "status": "subscribed"},
        {"email_address": f"x{run}@example.com", "status": "no-such-status"},
    ]

    first = hook.batch_upsert_members(scratch_list, good[:300] + bad + good[300:])
    summary = (
        len(first.created),
        len(first.updated),
        first.errors,
        dict(hook.retries),
        dict(hook.requests_used),
    )
    assert len(first.created) == 620 and not first.updated, summary
    assert sorted(e["email_address"] for e in first.errors) == sorted(b["email_address"] for b in bad), (
        summary
    )
    assert all(e["error_code"] and e["error"] for e in first.errors)
    assert hook.requests_used["POST /lists/{list_id}"] == 2, summary  # 622 members in chunks of 500

    renamed = [{**m, "merge_fields": {"FNAME": "Renamed"}} for m in good]
    second = hook.batch_upsert_members(scratch_list, renamed)
    assert len(second.updated) == 620 and not second.created and not second.errors
    names = {
        m["merge_fields"]["FNAME"]
        for p in hook.iter_members(scratch_list, fields=["merge_fields"])
        for m in p
    }
    assert names == {"Renamed"}

    refused = hook.batch_upsert_members(scratch_list, good[:3], update_existing=False)
    assert {e["error_code"] for e in refused.errors} == {"ERROR_CONTACT_EXISTS"}


def test_ensure_merge_fields_creates_only_missing_tags(hook: MailchimpHook, scratch_list: str) -> None:
    declared = [
        {"tag": "FNAME", "name": "First Name", "type": "text"},
        {"tag": "LTV", "name": "Lifetime value", "type": "number"},
        {"tag": "PLAN", "name": "Plan", "type": "dropdown", "options": {"choices": ["free", "pro"]}},
    ]
    created = hook.ensure_merge_fields(scratch_list, declared)
    assert sorted(f["tag"] for f in created) == ["LTV", "PLAN"]
    assert hook.ensure_merge_fields(scratch_list, declared) == []
    tags = [f["tag"] for f in hook.list_merge_fields(scratch_list)]
    assert tags.count("LTV") == tags.count("PLAN") == 1
    with pytest.raises(ValueError, match="tag"):
        hook.ensure_merge_fields(scratch_list, [{"name": "No tag", "type": "text"}])


def test_test_connection(
    hook: MailchimpHook, sandbox: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    ok, message = hook.test_connection()
    assert ok, message
    assert "role" in message and sandbox["mailchimp_api_key"] not in message

    wrong_key = "0123456789abcdef0123456789abcdef-us1"
    monkeypatch.setenv("AIRFLOW_CONN_MC_WRONG", _connection(sandbox, password=wrong_key))
    wrong = MailchimpHook("mc_wrong")
    ok, message = wrong.test_connection()
    assert not ok
    assert "401" in message and wrong_key not in message
    assert not wrong.retries


def test_connection_forms(sandbox: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    port = sandbox["mailchimp_url"].split(":")[-1].split("/")[0]
    monkeypatch.setenv(
        "AIRFLOW_CONN_MC_PARTS", _connection(sandbox, host="127.0.0.1", port=int(port), schema="3.0")
    )
    monkeypatch.setenv("AIRFLOW_CONN_MC_NOKEY", json.dumps({"conn_type": "mailchimp"}))
    parts = MailchimpHook("mc_parts")
    assert parts.client.api_client.host == f"https://127.0.0.1:{port}/3.0"
    with pytest.raises(ValueError, match="neither an API key"):
        _ = MailchimpHook("mc_nokey").client
    behaviour = MailchimpHook.get_ui_field_behaviour()
    assert behaviour["relabeling"]["password"] == "API key"
    assert {"port", "schema", "login"} <= set(behaviour["hidden_fields"])
