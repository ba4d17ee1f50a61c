"""What each scenario needs in the sandbox before it is timed: mappings, changes, activity, Contacts.

Everything here runs before the request counters are reset, through the sandbox's private
endpoints (never counted) or, for Salesforce set-up data, one Bulk 2.0 job.
"""

from __future__ import annotations

import math
import random
import sqlite3
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from bench.sizes import ANCHOR, SEED

if TYPE_CHECKING:
    from bench.env import Sandbox
    from bench.sizes import Size

PUSH_DEPARTMENT = "mcsf bench push"
PUSH_TAG = "SF: bench push"
URLS = ("https://www.example.com/pricing?utm_source=mailchimp", "https://blog.example.com/2026/11/release-notes",
        "https://shop.example.com/products/very-long-product-slug?ref=newsletter", "https://example.de/straße/größe")


def mapping_yaml(list_id: str) -> str:
    """A typical audience: members and activity, new Leads for strangers, a few mapped fields."""
    return f"""audience_id: "{list_id}"
sync_mode: activity
activity_retention_days: 365
max_reject_share: 0.2
leads:
  create: true
  defaults:
    LastName: "[not provided]"
    Company: "[not provided]"
  lead_source: Mailchimp
fields:
  - merge_tag: FNAME
    lead_field: FirstName
    contact_field: FirstName
  - merge_tag: LNAME
    lead_field: LastName
    contact_field: LastName
  - merge_tag: PHONE
    lead_field: Phone
    contact_field: Phone
  - merge_tag: COMPANY
    lead_field: Company
  - merge_tag: ADDRESS.city
    lead_field: City
    contact_field: MailingCity
"""


def write_mappings(box: Sandbox) -> None:
    for list_id in box.lists:
        (box.root / "mappings" / f"a_{list_id}.yaml").write_text(mapping_yaml(list_id))


def windows() -> dict[str, tuple[Any, Any]]:
    """The data interval of each timed run (see :data:`bench.sizes.ANCHOR`)."""
    hour = timedelta(hours=1)
    day = ANCHOR.replace(hour=0) + timedelta(days=1)
    return {"1": (ANCHOR - hour, ANCHOR), "2": (ANCHOR, ANCHOR + hour), "3": (ANCHOR + hour, ANCHOR + 2 * hour),
            "4": (day, day + timedelta(days=1))}


def _db(box: Sandbox) -> sqlite3.Connection:
    """The Mailchimp emulator's SQLite file, read-only (picking set-up data; never written here)."""
    return sqlite3.connect(f"file:{box.root / 'sandbox' / 'mailchimp.sqlite3'}?mode=ro", uri=True, timeout=60)


def change_members(box: Sandbox, size: Size) -> dict[str, int]:
    """Scenario 2: change ``size.change_share`` of every audience's members inside window 2, each
    with an explicit ``last_changed``: 90 % a new first name and phone, 10 % unsubscribed.

    :returns: members changed per audience
    """
    start, _ = windows()["2"]
    rng = random.Random(SEED)
    changed = {}
    with _db(box) as db:
        for list_id in box.lists:
            emails = [e for (e,) in db.execute(
                "SELECT email_address FROM members WHERE list_id=? AND status IN ('subscribed','pending') "
                "ORDER BY seq", (list_id,))]
            total = db.execute("SELECT count(*) FROM members WHERE list_id=?", (list_id,)).fetchone()[0]
            picked = rng.sample(emails, math.ceil(total * size.change_share))
            body = []
            for n, email in enumerate(picked):
                when = (start + timedelta(seconds=n * 3599 // max(1, len(picked)))).isoformat()
                if n % 10 == 9:
                    body.append({"email_address": email, "status": "unsubscribed", "last_changed": when})
                else:
                    body.append({"email_address": email, "merge_fields": {"FNAME": f"Changed{n}",
                                                                          "PHONE": f"+1 555 01{n % 100:02d}"},
                                 "last_changed": when})
            for i in range(0, len(body), 1000):
                box.mc("POST", f"/lists/{list_id}/members", body={"members": body[i:i + 1000]},
                       params={"skip_merge_validation": "true"}, private=True)
            changed[list_id] = len(picked)
    return changed


def add_activity(box: Sandbox, size: Size) -> dict[str, Any]:
    """Scenario 4: per audience, campaigns sent the evening before window 4 to every subscribed
    member, and ``size.activity_events`` opens, clicks and bounces spread over the window's day.

    Half of each campaign's recipients are active; events go round-robin over them with rising
    timestamps, so no two events of one member share a timestamp (each is a distinct record).
    :returns: events and active recipients per campaign
    """
    day, _ = windows()["4"]
    rng = random.Random(SEED + 4)
    per_campaign = size.activity_events // (len(box.lists) * size.activity_campaigns_per_audience)
    out: dict[str, Any] = {"campaigns": {}, "events": 0}
    with _db(box) as db:
        subscribed = {lst: [e for (e,) in db.execute(
            "SELECT email_address FROM members WHERE list_id=? AND status='subscribed' ORDER BY seq", (lst,))]
            for lst in box.lists}
    for list_id in box.lists:
        for c in range(size.activity_campaigns_per_audience):
            sent = day - timedelta(hours=6 - c)
            campaign = box.mc("POST", "/campaigns", private=True, body={
                "list_id": list_id, "type": "regular", "status": "sent", "title": f"Bench campaign {c + 1}",
                "subject_line": f"News {c + 1}", "create_time": (sent - timedelta(days=1)).isoformat(),
                "send_time": sent.isoformat(), "recipients": "all"})
            active = rng.sample(subscribed[list_id], len(subscribed[list_id]) // 2)
            events = []
            for i in range(per_campaign):
                email = active[i % len(active)]
                when = (day + timedelta(seconds=i * 86_000 // per_campaign)).isoformat()
                if i < len(active) and i % 100 == 0:
                    events.append({"email_address": email, "action": "bounce", "type": "soft", "timestamp": when})
                elif i % 10 < 3:
                    events.append({"email_address": email, "action": "click", "timestamp": when,
                                   "url": URLS[i % len(URLS)], "ip": f"203.0.113.{i % 250}"})
                else:
                    events.append({"email_address": email, "action": "open", "timestamp": when,
                                   "ip": f"198.51.100.{i % 250}"})
                if len(events) == 20_000:
                    box.mc("POST", f"/campaigns/{campaign['id']}/activity", body={"events": events}, private=True)
                    events = []
            if events:
                box.mc("POST", f"/campaigns/{campaign['id']}/activity", body={"events": events}, private=True)
            out["campaigns"][campaign["id"]] = {"list_id": list_id, "events": per_campaign,
                                                "active": min(len(active), per_campaign)}
            out["events"] += per_campaign
    return out


def add_push_contacts(box: Sandbox, size: Size) -> dict[str, Any]:
    """Scenario 5: ``size.push_contacts`` new Contacts the bench query selects, and its definition."""
    rows = ([f"Bench{i}", f"Pusher{i}", f"bench.push.{i}@example-push.com", PUSH_DEPARTMENT]
            for i in range(size.push_contacts))
    info = box.sf_bulk_insert("Contact", ["FirstName", "LastName", "Email", "Department"], rows)
    list_id = box.lists[0]
    (box.root / "queries" / "bench_push.yaml").write_text(f"""object: Contact
where: Department = '{PUSH_DEPARTMENT}'
audience_id: "{list_id}"
status_if_new: subscribed
tags: ["{PUSH_TAG}"]
fields:
  FirstName: FNAME
  LastName: LNAME
""")
    return {"contacts": int(info["numberRecordsProcessed"]) - int(info["numberRecordsFailed"]), "list_id": list_id}


def audience_sizes(box: Sandbox) -> dict[str, dict[str, Any]]:
    """Per audience, from the API (before the counters are reset): members of every status, the
    members of every status of each static segment (tags included: saved segments are rules whose
    membership a sync does not copy), interest categories."""
    every = {"count": 1, "include_cleaned": "true", "include_transactional": "true", "include_unsubscribed": "true"}
    out = {}
    for list_id in box.lists:
        members = box.mc("GET", f"/lists/{list_id}/members", params={"count": 1, "fields": "total_items"})
        static = box.mc("GET", f"/lists/{list_id}/segments", params={"count": 1000, "type": "static"})["segments"]
        categories = box.mc("GET", f"/lists/{list_id}/interest-categories", params={"count": 1000})
        out[list_id] = {"members": members["total_items"],
                        "segment_members": [box.mc("GET", f"/lists/{list_id}/segments/{s['id']}/members",
                                                   params=every)["total_items"] for s in static],
                        "interest_categories": categories["total_items"]}
    return out


def recent_members(box: Sandbox, n: int) -> tuple[str, int]:
    """``(start_date, members)``: the Airbyte start date that selects about the ``n`` members changed last."""
    with _db(box) as db:
        row = db.execute("SELECT last_changed FROM members ORDER BY last_changed DESC LIMIT 1 OFFSET ?",
                         (max(0, n - 1),)).fetchone()
        since = row[0] if row else "2000-01-01T00:00:00+00:00"
        count = db.execute("SELECT count(*) FROM members WHERE last_changed >= ?", (since,)).fetchone()[0]
    return since[:19] + ".000Z", count
