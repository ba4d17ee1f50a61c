"""Private ``/_sandbox`` endpoints: test set-up the real API cannot express.

They let a test write members with an explicit ``last_changed`` (to fill an exact hourly
window), add campaigns and activity events with explicit timestamps, freeze the clock that
stamps ordinary writes, and switch the account role (to test a read-only key). They need
the API key like every other path. See ``sandbox/mailchimp/README.md``.
"""

from __future__ import annotations

import secrets
from typing import Any

from sandbox.mailchimp import timeutil
from sandbox.mailchimp.account import ROLES
from sandbox.mailchimp.campaigns import (
    TYPES,
    campaign_doc,
    find_campaign,
    insert_campaign,
    refresh_stats,
    render_campaign,
)
from sandbox.mailchimp.context import load_ctx
from sandbox.mailchimp.errors import VALIDATION_DETAIL, invalid
from sandbox.mailchimp.lookups import email_hash, find_member, new_hex_id, require_list
from sandbox.mailchimp.members import render_rows, write_member
from sandbox.mailchimp.routing import Api, Call, body_field

api = Api("/_sandbox", check_role=False)
ACTIONS = ("sent", "open", "click", "bounce", "unsubscribe")


def _time(value: Any, field: str) -> str:
    try:
        return timeutil.normalize(str(value))
    except ValueError:
        raise invalid(VALIDATION_DETAIL, [{"field": field, "message": "Expected an ISO 8601 time."}]) from None


@api.route("PUT", "/account", body=True)
def set_account(call: Call) -> dict[str, Any]:
    """Change account fields, e.g. ``{"role": "viewer"}`` to make every write answer 403."""
    account = dict(call.store.meta("account"))
    role = body_field(call, "role", str, default=account["role"])
    if role not in ROLES:
        raise invalid(f"role must be one of {', '.join(ROLES)}")
    account.update({k: v for k, v in call.body.items() if k in ("account_timezone", "account_name", "email")})
    account["role"] = role
    call.store.set_meta("account", account)
    return account


@api.route("PUT", "/clock", body=True)
def set_clock(call: Call) -> dict[str, Any]:
    """``{"now": ISO}`` freezes the time that writes stamp; ``{"now": null}`` follows the wall clock."""
    now = call.body.get("now")
    call.store.clock.freeze(timeutil.parse(_time(now, "now")) if now else None)
    return {"now": call.store.clock.now_text(), "frozen": call.store.clock.frozen is not None}


@api.route("POST", "/lists/{list_id}/members", params=("skip_merge_validation",), body=True)
def upsert_members(call: Call) -> dict[str, Any]:
    """Upsert members, each with its own ``last_changed`` (default: now)."""
    members = body_field(call, "members", list, required=True)
    seqs = []
    with call.store.write() as conn:
        ctx = load_ctx(conn, call.path["list_id"], call.base)
        now = call.store.clock.now_text()
        for item in members:
            if not isinstance(item, dict) or "email_address" not in item:
                raise invalid("Each member needs an email_address.")
            changed = _time(item["last_changed"], "last_changed") if item.get("last_changed") else None
            existing = find_member(conn, ctx.id, str(item["email_address"]))
            body = {k: v for k, v in item.items() if k != "last_changed"}
            seqs.append(write_member(conn, ctx, body, existing, status_if_new=item.get("status") or "subscribed",
                                     now=changed or now, last_changed=changed,
                                     skip_merge_validation=call.query.bool("skip_merge_validation")))
        rows = [conn.execute("SELECT * FROM members WHERE seq=?", (s,)).fetchone() for s in seqs]
        return {"members": render_rows(conn, ctx, rows), "total_items": len(rows)}


@api.route("POST", "/campaigns", body=True)
def add_campaign(call: Call) -> dict[str, Any]:
    """Create a campaign: ``{list_id, type, status, title, subject_line, create_time, send_time,
    recipients: "all" | [emails]}``. A sent campaign gets one send per recipient."""
    list_id = body_field(call, "list_id", str, required=True)
    type_ = body_field(call, "type", str, default="regular")
    if type_ not in TYPES:
        raise invalid(f"type must be one of {', '.join(TYPES)}")
    status = body_field(call, "status", str, default="sent")
    now = call.store.clock.now_text()
    send_time = _time(call.body["send_time"], "send_time") if call.body.get("send_time") else (
        now if status in ("sent", "sending") else "")
    create_time = _time(call.body["create_time"], "create_time") if call.body.get("create_time") else (send_time or now)
    title = body_field(call, "title", str, default=f"Sandbox {type_} campaign")
    with call.store.write() as conn:
        require_list(conn, list_id)
        campaign_id = new_hex_id(10)
        doc = campaign_doc(type_, title, body_field(call, "subject_line", str, default=title), "mcsf Sandbox",
                           "news@sandbox.example.com")
        seq = insert_campaign(conn, campaign_id, secrets.randbelow(10**6), type_, status, list_id, None,
                              create_time, send_time, doc)
        if status in ("sent", "sending"):
            recipients = call.body.get("recipients", "all")
            if recipients == "all":
                conn.execute("INSERT INTO sends SELECT ?, seq, 'sent', '' FROM members WHERE list_id=? "
                             "AND status='subscribed'", (seq, list_id))
            else:
                for email in recipients:
                    member = find_member(conn, list_id, str(email))
                    if member is None:
                        raise invalid(f"{email} is not a member of list {list_id}.")
                    conn.execute("INSERT OR IGNORE INTO sends VALUES(?,?,'sent','')", (seq, member["seq"]))
            refresh_stats(conn, seq)
    return render_campaign(find_campaign(call.store.conn(), campaign_id), call.base)


@api.route("POST", "/campaigns/{campaign_id}/activity", body=True)
def add_activity(call: Call) -> dict[str, Any]:
    """Add events ``{email_address, action: sent|open|click|bounce|unsubscribe, timestamp, url,
    type (hard|soft), ip, reason}``; a recipient is added when the member had no send yet.

    All or nothing: a bad event refuses the whole request. Members are looked up in one query per
    500 events and rows are written with ``executemany`` (the benchmark adds millions of events).
    """
    events = body_field(call, "events", list, required=True)
    for i, event in enumerate(events):
        if not isinstance(event, dict) or event.get("action") not in ACTIONS:
            raise invalid(f"events[{i}].action must be one of {', '.join(ACTIONS)}")
    hashes = [email_hash(str(event.get("email_address", ""))) for event in events]
    with call.store.write() as conn:
        camp = find_campaign(conn, call.path["campaign_id"])
        seqs: dict[str, int] = {}
        distinct = list(dict.fromkeys(hashes))
        for at in range(0, len(distinct), 500):
            chunk = distinct[at:at + 500]
            seqs.update(conn.execute(f"SELECT hash, seq FROM members WHERE list_id=? AND hash IN "
                                     f"({','.join('?' * len(chunk))})", (camp["list_id"], *chunk)).fetchall())
        sends, bounces, unsubscribes, left, activity = {}, [], [], [], []
        for i, (event, digest) in enumerate(zip(events, hashes, strict=True)):
            if digest not in seqs:  # not by hash: the slow path (contact ids), or refused
                member = find_member(conn, camp["list_id"], digest)
                if member is None:
                    raise invalid(f"events[{i}]: {event.get('email_address')} is not a member of the campaign's list.")
                seqs[digest] = member["seq"]
            member_seq = seqs[digest]
            stamp = _time(event.get("timestamp") or call.store.clock.now_text(), f"events[{i}].timestamp")
            action = event["action"]
            sends.setdefault(member_seq, (camp["seq"], member_seq))
            if action == "bounce":
                bounces.append((event.get("type", "hard"), camp["seq"], member_seq))
            if action == "unsubscribe":
                unsubscribes.append((camp["seq"], member_seq, stamp, str(event.get("reason", ""))))
                left.append((stamp, member_seq))
            elif action != "sent":
                activity.append((camp["seq"], member_seq, action, event.get("type", "") if action == "bounce" else "",
                                 stamp, str(event.get("url", "")), str(event.get("ip", ""))))
        conn.executemany("INSERT OR IGNORE INTO sends VALUES(?,?,'sent','')", list(sends.values()))
        conn.executemany("UPDATE sends SET status=? WHERE campaign_seq=? AND member_seq=?", bounces)
        conn.executemany("INSERT OR REPLACE INTO unsubscribes VALUES(?,?,?,?)", unsubscribes)
        conn.executemany("UPDATE members SET status='unsubscribed', last_changed=? WHERE seq=?", left)
        conn.executemany("INSERT INTO activity(campaign_seq, member_seq, action, type, timestamp, url, ip) "
                         "VALUES(?,?,?,?,?,?,?)", activity)
        refresh_stats(conn, camp["seq"])
    return {"campaign_id": camp["id"], "inserted": len(events)}


@api.route("GET", "/summary")
def summary(call: Call) -> dict[str, Any]:
    """Row counts per table, the API key's account and the clock: a quick look at the state."""
    conn = call.store.conn()
    tables = ("lists", "members", "merge_fields", "segments", "segment_members", "interest_categories",
              "interests", "campaigns", "sends", "activity", "unsubscribes")
    counts = {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in tables}
    return {"counts": counts, "account": call.store.meta("account"), "now": call.store.clock.now_text(),
            "seed": call.store.meta("seed")}
