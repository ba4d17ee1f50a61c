"""The Mailchimp emulator through the official ``mailchimp_marketing`` client.

Each test creates what it changes (its own emails, fields, segments) so tests stay
independent of each other and of the order they run in.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import TYPE_CHECKING, Any

import pytest
from mailchimp_marketing.api_client import ApiClientError

if TYPE_CHECKING:
    import requests


def _md5(email: str) -> str:
    return hashlib.md5(email.lower().encode()).hexdigest()


def _email(tag: str) -> str:
    return f"{tag}.{uuid.uuid4().hex[:8]}@example.com"


@pytest.fixture(scope="module")
def list_id(mailchimp_client: Any) -> str:
    return mailchimp_client.lists.get_all_lists()["lists"][0]["id"]


@pytest.fixture
def private(mailchimp_http: requests.Session, sandbox: dict[str, Any]) -> Any:
    """POST/PUT to the private ``/_sandbox`` API, asserting success."""
    root = sandbox["mailchimp_url"].removesuffix("/3.0") + "/_sandbox"

    def call(method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = mailchimp_http.request(method, root + path, json=body)
        assert response.status_code == 200, response.text
        return response.json()

    yield call
    call("PUT", "/clock", {"now": None})


def _error(exc: pytest.ExceptionInfo[ApiClientError]) -> dict[str, Any]:
    return json.loads(exc.value.text)


def test_offset_paging_returns_every_member_once_in_a_stable_order(mailchimp_client: Any, list_id: str) -> None:
    first = mailchimp_client.lists.get_list_members_info(list_id, count=1000, fields=["members.id", "total_items"])
    seen = [m["id"] for m in first["members"]]
    offset = len(seen)
    while offset < first["total_items"]:
        page = mailchimp_client.lists.get_list_members_info(list_id, count=1000, offset=offset,
                                                            fields=["members.id"])
        seen += [m["id"] for m in page["members"]]
        offset += 1000
    assert len(seen) == len(set(seen)) == first["total_items"] >= 2000
    again = mailchimp_client.lists.get_list_members_info(list_id, count=1000, fields=["members.id"])
    assert [m["id"] for m in again["members"]] == seen[:1000]
    assert set(first) == {"members", "total_items"}


def test_last_changed_window_is_half_open(mailchimp_client: Any, list_id: str, private: Any) -> None:
    stamps = ["2026-11-20T08:59:59+00:00", "2026-11-20T09:00:00+00:00", "2026-11-20T09:59:59+00:00",
              "2026-11-20T10:00:00+00:00"]
    emails = [_email(f"window{i}") for i in range(4)]
    window = {"since_last_changed": "2026-11-20T09:00:00+00:00", "before_last_changed": "2026-11-20T10:00:00+00:00"}
    before = mailchimp_client.lists.get_list_members_info(list_id, count=1000, **window)["total_items"]
    private("POST", f"/lists/{list_id}/members", {"members": [
        {"email_address": e, "status": "subscribed", "last_changed": t} for e, t in zip(emails, stamps, strict=True)]})
    page = mailchimp_client.lists.get_list_members_info(
        list_id, count=1000, fields=["members.email_address", "members.last_changed", "total_items"], **window)
    assert page["total_items"] == before + 2  # a write invalidates the remembered count
    found = {m["email_address"] for m in page["members"]}
    assert emails[1] in found and emails[2] in found
    assert emails[0] not in found and emails[3] not in found
    assert all("2026-11-20T09:00:00+00:00" <= m["last_changed"] < "2026-11-20T10:00:00+00:00" for m in page["members"])
    assert len(page["members"]) > 2  # the seed puts data in every hourly window too


def test_filters_status_sort_and_vip(mailchimp_client: Any, list_id: str) -> None:
    stats = mailchimp_client.lists.get_list(list_id)["stats"]
    subscribed = mailchimp_client.lists.get_list_members_info(list_id, status="subscribed", count=1)
    assert subscribed["total_items"] == stats["member_count"]
    cleaned = mailchimp_client.lists.get_list_members_info(list_id, status="cleaned", count=1000)
    assert {m["status"] for m in cleaned["members"]} == {"cleaned"}
    assert cleaned["total_items"] == stats["cleaned_count"]
    desc = mailchimp_client.lists.get_list_members_info(list_id, count=50, sort_field="last_changed", sort_dir="DESC")
    changed = [m["last_changed"] for m in desc["members"]]
    assert changed == sorted(changed, reverse=True)
    vips = mailchimp_client.lists.get_list_members_info(list_id, vip_only=True, count=1000)
    assert vips["members"] and all(m["vip"] for m in vips["members"])


def test_member_lifecycle_by_hash_email_and_case(mailchimp_client: Any, list_id: str, private: Any) -> None:
    email = _email("Life.Cycle").replace("life", "Life")
    private("PUT", "/clock", {"now": "2026-11-20T09:30:00+00:00"})
    created = mailchimp_client.lists.set_list_member(list_id, _md5(email), {
        "email_address": email, "status_if_new": "pending", "merge_fields": {"FNAME": "  Zoë ", "LNAME": "Ørsted"}})
    assert created["id"] == _md5(email) and created["email_address"] == email and created["status"] == "pending"
    assert created["merge_fields"]["FNAME"] == "  Zoë " and created["full_name"] == "Zoë  Ørsted"
    assert created["last_changed"] == "2026-11-20T09:30:00+00:00"
    for key in (_md5(email), email.upper(), created["contact_id"]):
        assert mailchimp_client.lists.get_list_member(list_id, key)["id"] == created["id"]
    private("PUT", "/clock", {"now": "2026-11-20T09:45:00+00:00"})
    patched = mailchimp_client.lists.update_list_member(list_id, email.lower(), {"status": "subscribed"})
    assert patched["status"] == "subscribed" and patched["last_changed"] == "2026-11-20T09:45:00+00:00"
    assert patched["timestamp_opt"] == "2026-11-20T09:45:00+00:00"
    with pytest.raises(ApiClientError) as exists:
        mailchimp_client.lists.add_list_member(list_id, {"email_address": email.lower(), "status": "subscribed"})
    assert exists.value.status_code == 400
    assert _error(exists) | {"instance": "x"} == {
        "type": "https://mailchimp.com/developer/marketing/docs/errors/", "title": "Member Exists", "status": 400,
        "detail": f"{email.lower()} is already a list member. Use PUT to insert or update list members.",
        "instance": "x"}
    mailchimp_client.lists.delete_list_member(list_id, _md5(email))
    assert mailchimp_client.lists.get_list_member(list_id, _md5(email))["status"] == "archived"
    mailchimp_client.lists.delete_list_member_permanent(list_id, _md5(email))
    with pytest.raises(ApiClientError) as gone:
        mailchimp_client.lists.get_list_member(list_id, _md5(email))
    assert gone.value.status_code == 404 and _error(gone)["title"] == "Resource Not Found"
    with pytest.raises(ApiClientError) as forgotten:
        mailchimp_client.lists.add_list_member(list_id, {"email_address": email, "status": "subscribed"})
    assert _error(forgotten)["title"] == "Forgotten Email Not Subscribed"


def test_batch_subscribe_reports_each_member(mailchimp_client: Any, list_id: str) -> None:
    existing = mailchimp_client.lists.get_list_members_info(list_id, count=1, status="subscribed")["members"][0]
    fresh = _email("batch")
    body = {"members": [
        {"email_address": fresh, "status": "subscribed", "merge_fields": {"FNAME": "Bá"}, "tags": ["Batch-tag"]},
        {"email_address": existing["email_address"].upper(), "status": "subscribed"},
        {"email_address": "not-an-email", "status": "subscribed"},
        {"email_address": _email("badphone"), "status": "subscribed", "merge_fields": {"BIRTHDAY": "13/45"}}]}
    result = mailchimp_client.lists.batch_list_members(list_id, body)
    assert result["total_created"] == 1 and result["total_updated"] == 0 and result["error_count"] == 3
    assert result["new_members"][0]["email_address"] == fresh
    assert result["new_members"][0]["tags"][0]["name"] == "Batch-tag"
    codes = [(e["error_code"], e["field"]) for e in result["errors"]]
    assert codes == [("ERROR_CONTACT_EXISTS", ""), ("ERROR_GENERIC", "email_address"), ("ERROR_GENERIC", "BIRTHDAY")]
    updated = mailchimp_client.lists.batch_list_members(list_id, {"update_existing": True, "members": [
        {"email_address": fresh, "merge_fields": {"LNAME": "Ünter"}}]})
    assert updated["total_updated"] == 1 and updated["updated_members"][0]["merge_fields"]["FNAME"] == "Bá"
    with pytest.raises(ApiClientError) as too_many:
        mailchimp_client.lists.batch_list_members(list_id, {"members": [
            {"email_address": f"bulk{i}@example.com", "status": "subscribed"} for i in range(501)]})
    assert too_many.value.status_code == 400


def test_merge_fields_tags_types_and_validation(mailchimp_client: Any, list_id: str) -> None:
    fields = mailchimp_client.lists.get_list_merge_fields(list_id, count=100)["merge_fields"]
    assert [f["tag"] for f in fields][:4] == ["FNAME", "LNAME", "ADDRESS", "PHONE"]
    name = f"Score {uuid.uuid4().hex[:4]}"
    score = mailchimp_client.lists.add_list_merge_field(list_id, {"name": name, "type": "number", "required": True})
    twin = mailchimp_client.lists.add_list_merge_field(list_id, {"name": name, "type": "text"})
    assert score["tag"] == name.upper().replace(" ", "")[:10] and len(twin["tag"]) <= 10
    assert twin["tag"] != score["tag"]
    email = _email("merge")
    with pytest.raises(ApiClientError) as bad:
        mailchimp_client.lists.set_list_member(list_id, email, {
            "email_address": email, "status_if_new": "subscribed", "merge_fields": {score["tag"]: "lots"}})
    problem = _error(bad)
    assert (problem["title"], problem["detail"]) == ("Invalid Resource", "Your merge fields were invalid.")
    assert problem["errors"] == [{"field": score["tag"], "message": "Please enter a number"}]
    with pytest.raises(ApiClientError) as missing:
        mailchimp_client.lists.set_list_member(list_id, email, {"email_address": email, "status_if_new": "subscribed"})
    assert _error(missing)["errors"][0]["field"] == score["tag"]
    ok = mailchimp_client.lists.set_list_member(list_id, email, {"email_address": email, "status_if_new": "subscribed"},
                                                skip_merge_validation=True)
    assert ok["merge_fields"][score["tag"]] == ""
    good = mailchimp_client.lists.update_list_member(list_id, email, {"merge_fields": {score["tag"]: "12.5"}})
    assert good["merge_fields"][score["tag"]] == 12.5
    mailchimp_client.lists.delete_list_merge_field(list_id, score["merge_id"])
    assert score["tag"] not in mailchimp_client.lists.get_list_member(list_id, email)["merge_fields"]


def test_static_and_saved_segments(mailchimp_client: Any, list_id: str) -> None:
    members = mailchimp_client.lists.get_list_members_info(list_id, status="subscribed", count=5)["members"]
    emails = [m["email_address"] for m in members]
    seg = mailchimp_client.lists.create_segment(list_id, {"name": f"Picked {uuid.uuid4().hex[:4]}",
                                                          "static_segment": emails[:3]})
    assert (seg["type"], seg["member_count"]) == ("static", 3)
    mailchimp_client.lists.create_segment_member(list_id, seg["id"], {"email_address": emails[3]})
    listed = mailchimp_client.lists.get_segment_members_list(list_id, seg["id"], count=100)
    assert sorted(m["email_address"] for m in listed["members"]) == sorted(emails[:4])
    assert mailchimp_client.lists.get_segment(list_id, seg["id"])["member_count"] == 4
    recent = mailchimp_client.lists.list_segments(list_id, since_created_at=seg["created_at"], type="static")
    assert seg["id"] in [s["id"] for s in recent["segments"]]
    saved = next(s for s in mailchimp_client.lists.list_segments(list_id, type="saved", count=100)["segments"]
                 if s["options"]["conditions"][0]["condition_type"] == "MemberRating")
    every = []
    offset = 0
    while True:
        page = mailchimp_client.lists.get_list_members_info(list_id, status="subscribed", count=1000, offset=offset,
                                                            fields=["members.member_rating"])["members"]
        every += page
        offset += 1000
        if len(page) < 1000:
            break
    assert saved["member_count"] == sum(1 for m in every if m["member_rating"] > 3)


def test_interests_and_interest_filter(mailchimp_client: Any, list_id: str) -> None:
    category = mailchimp_client.lists.create_list_interest_category(list_id, {"title": "Sports", "type": "checkboxes"})
    ski = mailchimp_client.lists.create_interest_category_interest(list_id, category["id"], {"name": "Ski"})
    golf = mailchimp_client.lists.create_interest_category_interest(list_id, category["id"], {"name": "Golf"})
    email = _email("sporty")
    member = mailchimp_client.lists.set_list_member(list_id, email, {
        "email_address": email, "status_if_new": "subscribed", "interests": {ski["id"]: True, golf["id"]: False}})
    assert member["interests"][ski["id"]] is True and member["interests"][golf["id"]] is False
    found = mailchimp_client.lists.get_list_members_info(
        list_id, interest_category_id=category["id"], interest_ids=ski["id"], interest_match="any", count=1000)
    assert [m["email_address"] for m in found["members"]] == [email]
    none = mailchimp_client.lists.get_list_members_info(
        list_id, interest_category_id=category["id"], interest_ids=f"{ski['id']},{golf['id']}", interest_match="all")
    assert none["total_items"] == 0
    got = mailchimp_client.lists.get_interest_category_interest(list_id, category["id"], ski["id"])
    assert got["subscriber_count"] == "1"


def test_member_tags_add_and_remove(mailchimp_client: Any, list_id: str) -> None:
    email = _email("tagged")
    mailchimp_client.lists.set_list_member(list_id, email, {"email_address": email, "status_if_new": "subscribed"})
    mailchimp_client.lists.update_list_member_tags(list_id, _md5(email), {"tags": [
        {"name": "Kunde · 2026", "status": "active"}, {"name": "Lead", "status": "active"}]})
    mailchimp_client.lists.update_list_member_tags(list_id, _md5(email),
                                                   {"tags": [{"name": "Lead", "status": "inactive"}]})
    tags = mailchimp_client.lists.get_list_member_tags(list_id, _md5(email))
    assert [t["name"] for t in tags["tags"]] == ["Kunde · 2026"] and tags["total_items"] == 1
    member = mailchimp_client.lists.get_list_member(list_id, email)
    assert member["tags_count"] == 1 and member["tags"][0]["name"] == "Kunde · 2026"


def test_campaigns_filters_and_types(mailchimp_client: Any, sandbox: dict[str, Any]) -> None:
    everything = mailchimp_client.campaigns.list(count=1000)["campaigns"]
    assert {c["type"] for c in everything} >= {"regular", "plaintext", "absplit", "rss", "variate", "sms"}
    sent = mailchimp_client.campaigns.list(status="sent", count=1000, sort_field="send_time", sort_dir="ASC")
    times = [c["send_time"] for c in sent["campaigns"]]
    assert times == sorted(times) and all(c["status"] == "sent" for c in sent["campaigns"])
    assert all("2026-11-13T10:00:00+00:00" <= t < sandbox["anchor"] for t in times)
    recent = mailchimp_client.campaigns.list(since_send_time="2026-11-17T00:00:00+00:00", count=1000)
    assert all(c["send_time"] >= "2026-11-17T00:00:00+00:00" for c in recent["campaigns"])
    assert recent["total_items"] < sent["total_items"] or recent["total_items"] == len(recent["campaigns"])
    rss = mailchimp_client.campaigns.list(type="rss", count=1000)["campaigns"]
    assert rss and all(c["type"] == "rss" and "rss_opts" in c for c in rss)
    one = mailchimp_client.campaigns.get(sent["campaigns"][0]["id"])
    assert one["report_summary"]["opens"] > 0


def test_email_activity_paging_and_since(mailchimp_client: Any) -> None:
    campaign = mailchimp_client.campaigns.list(status="sent", count=1)["campaigns"][0]
    report = mailchimp_client.reports.get_campaign_report(campaign["id"])
    events: list[dict[str, Any]] = []
    offset, total = 0, None
    while total is None or offset < total:
        page = mailchimp_client.reports.get_email_activity_for_campaign(campaign["id"], count=1000, offset=offset)
        total = page["total_items"]
        events += [a for e in page["emails"] for a in e["activity"]]
        offset += 1000
    assert total == report["emails_sent"]
    first = mailchimp_client.reports.get_email_activity_for_campaign(campaign["id"], count=21, offset=0)["emails"]
    pages = [mailchimp_client.reports.get_email_activity_for_campaign(campaign["id"], count=7, offset=o)["emails"]
             for o in (0, 7, 14)]
    assert [e["email_id"] for page in pages for e in page] == [e["email_id"] for e in first]
    actions = [e["action"] for e in events]
    assert actions.count("open") == report["opens"]["opens_total"]
    assert actions.count("click") == report["clicks"]["clicks_total"]
    assert actions.count("bounce") == report["bounces"]["hard_bounces"] + report["bounces"]["soft_bounces"]
    assert any(len(e.get("url", "")) > 255 for e in events) and any(not e.get("url", "a").isascii() for e in events)
    cut = sorted(e["timestamp"] for e in events)[len(events) // 2]
    later = mailchimp_client.reports.get_email_activity_for_campaign(campaign["id"], count=1000, since=cut)
    kept = [a for e in later["emails"] for a in e["activity"]]
    assert kept and all(a["timestamp"] >= cut for a in kept)
    assert len(kept) == sum(1 for e in events if e["timestamp"] >= cut)


def test_private_activity_shows_up_with_its_timestamps(mailchimp_client: Any, list_id: str, private: Any) -> None:
    email = _email("clicker")
    mailchimp_client.lists.set_list_member(list_id, email, {"email_address": email, "status_if_new": "subscribed"})
    campaign = private("POST", "/campaigns", {"list_id": list_id, "type": "regular", "recipients": [email],
                                              "send_time": "2026-11-19T23:00:00+00:00"})
    before = mailchimp_client.reports.get_email_activity_for_campaign(campaign["id"], since="2026-11-20T00:00:00+00:00")
    assert before["total_items"] == 0 and before["emails"] == []
    private("POST", f"/campaigns/{campaign['id']}/activity", {"events": [
        {"email_address": email, "action": "open", "timestamp": "2026-11-19T23:30:00+00:00", "ip": "10.0.0.1"},
        {"email_address": email, "action": "click", "timestamp": "2026-11-20T00:00:00+00:00",
         "url": "https://ex.com/ü"},
        {"email_address": email, "action": "unsubscribe", "timestamp": "2026-11-20T00:05:00+00:00"}]})
    since = mailchimp_client.reports.get_email_activity_for_campaign(campaign["id"], since="2026-11-20T00:00:00+00:00")
    assert since["emails"][0]["activity"] == [{"action": "click", "timestamp": "2026-11-20T00:00:00+00:00",
                                              "url": "https://ex.com/ü"}]
    unsub = mailchimp_client.reports.get_unsubscribed_list_for_campaign(campaign["id"])
    assert unsub["unsubscribes"][0]["email_address"] == email
    sent_to = mailchimp_client.reports.get_campaign_recipients(campaign["id"])
    assert sent_to["total_items"] == 1 and sent_to["sent_to"][0]["open_count"] == 1
    assert mailchimp_client.lists.get_list_member(list_id, email)["status"] == "unsubscribed"


def test_viewer_role_cannot_write(mailchimp_client: Any, list_id: str, private: Any) -> None:
    private("PUT", "/account", {"role": "viewer"})
    try:
        assert mailchimp_client.root.get_root()["role"] == "viewer"
        with pytest.raises(ApiClientError) as denied:
            mailchimp_client.lists.add_list_member(list_id, {"email_address": _email("viewer"), "status": "subscribed"})
        assert denied.value.status_code == 403 and _error(denied)["title"] == "Forbidden"
        assert mailchimp_client.lists.get_list(list_id)["id"] == list_id
    finally:
        private("PUT", "/account", {"role": "owner"})


def test_batch_operations_return_a_tarball_of_responses(mailchimp_client: Any, list_id: str) -> None:
    import io
    import tarfile
    import time

    import requests

    email = _email("batched")
    batch = mailchimp_client.batches.start({"operations": [
        {"method": "GET", "path": f"/lists/{list_id}/members", "params": {"count": 2, "fields": "members.id"},
         "operation_id": "page"},
        {"method": "PUT", "path": f"/lists/{list_id}/members/{_md5(email)}", "operation_id": "upsert",
         "body": json.dumps({"email_address": email, "status_if_new": "subscribed"})},
        {"method": "GET", "path": "/lists/nope", "operation_id": "missing"}]})
    assert batch["status"] == "pending" and batch["total_operations"] == 3
    deadline = time.monotonic() + 10
    while batch["status"] != "finished" and time.monotonic() < deadline:
        time.sleep(0.05)
        batch = mailchimp_client.batches.status(batch["id"])
    assert (batch["status"], batch["finished_operations"], batch["errored_operations"]) == ("finished", 3, 1)
    archive = requests.get(batch["response_body_url"], timeout=10)  # no API key: the URL is the secret
    assert archive.status_code == 200
    with tarfile.open(fileobj=io.BytesIO(archive.content), mode="r:gz") as tar:
        results = [r for m in tar.getmembers() if m.isfile() for r in json.load(tar.extractfile(m))]
    by_id = {r["operation_id"]: r for r in results}
    assert by_id["page"]["status_code"] == 200 and len(json.loads(by_id["page"]["response"])["members"]) == 2
    assert json.loads(by_id["upsert"]["response"])["email_address"] == email
    assert by_id["missing"]["status_code"] == 404
    assert json.loads(by_id["missing"]["response"])["title"] == "Resource Not Found"
    assert mailchimp_client.lists.get_list_member(list_id, email)["status"] == "subscribed"
    assert batch["id"] in [b["id"] for b in mailchimp_client.batches.list()["batches"]]


def test_every_recent_hour_holds_changed_members(mailchimp_client: Any, sandbox: dict[str, Any]) -> None:
    from datetime import datetime, timedelta

    anchor = datetime.fromisoformat(sandbox["anchor"])
    lists = [x["id"] for x in mailchimp_client.lists.get_all_lists()["lists"]]
    for hours_back in range(1, 25):
        start = anchor - timedelta(hours=hours_back)
        found = sum(mailchimp_client.lists.get_list_members_info(
            list_id, count=1, since_last_changed=start.isoformat(),
            before_last_changed=(start + timedelta(hours=1)).isoformat())["total_items"] for list_id in lists)
        assert found > 0, f"no member changed in [{start}, +1h)"
