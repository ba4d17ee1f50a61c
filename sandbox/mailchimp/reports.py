"""Campaign reports: the summary, email activity, recipients (sent-to) and unsubscribes.

Email activity is paged by recipient, each with all of its events, as Mailchimp does. With
``since`` only recipients that have an event at or after that instant are listed, and only
those events; the upper bound of a window is the client's to cut.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from sandbox.mailchimp.campaigns import SELECT, TYPES, find_campaign
from sandbox.mailchimp.context import ListCtx, load_ctx
from sandbox.mailchimp.errors import ApiError, not_found
from sandbox.mailchimp.links import collection_links, item_links
from sandbox.mailchimp.lookups import subscriber_hash
from sandbox.mailchimp.params import PAGING, PROJECTION
from sandbox.mailchimp.routing import Api, Call

if TYPE_CHECKING:
    import sqlite3

api = Api("/3.0")
REPORTED = ("sent", "sending")


def _sent_campaign(conn: sqlite3.Connection, campaign_id: str) -> sqlite3.Row:
    row = find_campaign(conn, campaign_id)
    if row["status"] not in REPORTED:
        raise not_found()
    return row


def render_report(row: sqlite3.Row, base: str) -> dict[str, Any]:
    doc = orjson.loads(row["doc"])
    s = doc["stats"]
    href = f"{base}/reports/{row['id']}"
    return {
        "id": row["id"], "campaign_title": doc["settings"]["title"], "type": row["type"], "list_id": row["list_id"],
        "list_is_active": bool(row["list_active"]), "list_name": row["list_name"] or "",
        "subject_line": doc["settings"]["subject_line"], "preview_text": doc["settings"]["preview_text"],
        "emails_sent": s["emails_sent"], "abuse_reports": 0, "unsubscribed": s["unsubscribed"],
        "send_time": row["send_time"], "rss_last_send": doc.get("rss_opts", {}).get("last_sent", ""),
        "bounces": {"hard_bounces": s["hard_bounces"], "soft_bounces": s["soft_bounces"], "syntax_errors": 0},
        "forwards": {"forwards_count": 0, "forwards_opens": 0},
        "opens": {"opens_total": s["opens_total"], "unique_opens": s["unique_opens"], "open_rate": s["open_rate"],
                  "last_open": s["last_open"]},
        "clicks": {"clicks_total": s["clicks_total"], "unique_clicks": s["unique_clicks"],
                   "unique_subscriber_clicks": s["unique_subscriber_clicks"], "click_rate": s["click_rate"],
                   "last_click": s["last_click"]},
        "facebook_likes": {"recipient_likes": 0, "unique_likes": 0, "facebook_likes": 0},
        "list_stats": {"sub_rate": 0, "unsub_rate": 0, "open_rate": s["open_rate"], "click_rate": s["click_rate"]},
        "ecommerce": {"total_orders": 0, "total_spent": 0, "total_revenue": 0, "currency_code": "USD"},
        "delivery_status": {"enabled": False},
        "_links": item_links(href, f"{base}/reports", "Reports", methods=()),
    }


@api.route("GET", "/reports", params=(*PAGING, "type", "before_send_time", "since_send_time"))
def list_reports(call: Call) -> dict[str, Any]:
    q = call.query
    conn = call.store.conn()
    count, offset = q.page()
    where, args = ["c.status IN ('sent', 'sending')"], []
    if q.enum("type", TYPES):
        where.append("c.type=?")
        args.append(q.enum("type", TYPES))
    for param, op in (("before_send_time", "<"), ("since_send_time", ">=")):
        if q.time(param):
            where.append(f"c.send_time{op}?")
            args.append(q.time(param))
    clause = " AND ".join(where)
    total = conn.execute(f"SELECT COUNT(*) FROM campaigns c WHERE {clause}", args).fetchone()[0]
    rows = conn.execute(f"{SELECT} WHERE {clause} ORDER BY c.seq LIMIT ? OFFSET ?", (*args, count, offset))
    return {"reports": [render_report(r, call.base) for r in rows], "total_items": total,
            "_links": collection_links(f"{call.base}/reports", call.base, "Reports", create=False)}


@api.route("GET", "/reports/{campaign_id}", params=PROJECTION)
def get_report(call: Call) -> dict[str, Any]:
    return render_report(_sent_campaign(call.store.conn(), call.path["campaign_id"]), call.base)


def _ctx(conn: sqlite3.Connection, row: sqlite3.Row, base: str) -> ListCtx:
    try:
        return load_ctx(conn, row["list_id"], base)
    except ApiError:  # the audience was deleted: its members went with it
        return ListCtx(row["list_id"], "", [], [], f"{base}/lists/{row['list_id']}")


def _member_rows(conn: sqlite3.Connection, seqs: list[int]) -> dict[int, sqlite3.Row]:
    if not seqs:
        return {}
    return {r["seq"]: r for r in conn.execute(
        f"SELECT * FROM members WHERE seq IN ({','.join('?' * len(seqs))})", seqs)}


def _event(row: sqlite3.Row) -> dict[str, Any]:
    event: dict[str, Any] = {"action": row["action"]}
    if row["action"] == "bounce":
        event["type"] = row["type"]
    event["timestamp"] = row["timestamp"]
    if row["action"] == "click":
        event["url"] = row["url"]
    if row["ip"]:
        event["ip"] = row["ip"]
    return event


def _activity_page(call: Call, camp: sqlite3.Row, since: str | None, seqs: list[int]) -> list[dict[str, Any]]:
    conn = call.store.conn()
    members = _member_rows(conn, seqs)
    events: dict[int, list[dict[str, Any]]] = {s: [] for s in seqs}
    if seqs:
        # by member first: left to itself SQLite walks the campaign's whole (campaign, timestamp)
        # range for every page, which made paging through a big campaign quadratic
        sql = ("SELECT * FROM activity INDEXED BY activity_member_time "
               f"WHERE campaign_seq=? AND member_seq IN ({','.join('?' * len(seqs))})"
               + (" AND timestamp>=?" if since else "") + " ORDER BY timestamp, id")
        for row in conn.execute(sql, (camp["seq"], *seqs, *([since] if since else []))):
            events[row["member_seq"]].append(_event(row))
    href = f"{call.base}/reports/{camp['id']}/email-activity"
    return [{"campaign_id": camp["id"], "list_id": camp["list_id"], "list_is_active": bool(camp["list_active"]),
             "email_id": members[s]["hash"], "email_address": members[s]["email_address"], "activity": events[s],
             "_links": item_links(f"{href}/{members[s]['hash']}", href, "Reports/EmailActivity", methods=())}
            for s in seqs if s in members]


@api.route("GET", "/reports/{campaign_id}/email-activity", params=(*PAGING, "since"))
def email_activity(call: Call) -> dict[str, Any]:
    conn = call.store.conn()
    camp = _sent_campaign(conn, call.path["campaign_id"])
    count, offset = call.query.page()
    since = call.query.time("since")
    if since:
        base_sql = "SELECT DISTINCT member_seq FROM activity WHERE campaign_seq=? AND timestamp>=?"
        args: tuple[Any, ...] = (camp["seq"], since)
    else:
        base_sql, args = "SELECT member_seq FROM sends WHERE campaign_seq=?", (camp["seq"],)
    recipients = call.store.column(f"{base_sql} ORDER BY member_seq", args)
    total, seqs = len(recipients), recipients[offset:offset + count]
    href = f"{call.base}/reports/{camp['id']}"
    return {"emails": _activity_page(call, camp, since, seqs), "campaign_id": camp["id"], "total_items": total,
            "_links": collection_links(f"{href}/email-activity", href, "Reports/EmailActivity", create=False)}


def _recipient(call: Call, camp: sqlite3.Row, table: str) -> int:
    conn = call.store.conn()
    digest = subscriber_hash(call.path["subscriber_hash"]) or ""
    row = conn.execute(f"SELECT t.member_seq FROM {table} t JOIN members m ON m.seq=t.member_seq "
                       "WHERE t.campaign_seq=? AND m.hash=?", (camp["seq"], digest)).fetchone()
    if row is None:
        raise not_found()
    return row[0]


@api.route("GET", "/reports/{campaign_id}/email-activity/{subscriber_hash}", params=(*PROJECTION, "since"))
def member_activity(call: Call) -> dict[str, Any]:
    camp = _sent_campaign(call.store.conn(), call.path["campaign_id"])
    return _activity_page(call, camp, call.query.time("since"), [_recipient(call, camp, "sends")])[0]


def _sent_to_page(call: Call, camp: sqlite3.Row, sends: list[sqlite3.Row]) -> list[dict[str, Any]]:
    conn = call.store.conn()
    seqs = [s["member_seq"] for s in sends]
    members, ctx = _member_rows(conn, seqs), _ctx(conn, camp, call.base)
    opens = {r[0]: (r[1], r[2]) for r in conn.execute(
        f"SELECT member_seq, COUNT(*), MAX(timestamp) FROM activity WHERE campaign_seq=? AND action='open' "
        f"AND member_seq IN ({','.join('?' * len(seqs))}) GROUP BY member_seq", (camp["seq"], *seqs))} if seqs else {}
    href = f"{call.base}/reports/{camp['id']}/sent-to"
    out = []
    for send in sends:
        m = members.get(send["member_seq"])
        if m is None:
            continue
        stored = orjson.loads(m["merge_fields"])
        count, last = opens.get(send["member_seq"], (0, ""))
        out.append({"email_id": m["hash"], "email_address": m["email_address"],
                    "merge_fields": {t: stored.get(t, "") for t in ctx.tags}, "vip": bool(m["vip"]),
                    "status": send["status"], "open_count": count, "last_open": last,
                    "absplit_group": send["absplit_group"], "gmt_offset": 0, "campaign_id": camp["id"],
                    "list_id": camp["list_id"], "list_is_active": bool(camp["list_active"]),
                    "_links": item_links(f"{href}/{m['hash']}", href, "Reports/SentTo", methods=())})
    return out


@api.route("GET", "/reports/{campaign_id}/sent-to", params=PAGING)
def sent_to(call: Call) -> dict[str, Any]:
    conn = call.store.conn()
    camp = _sent_campaign(conn, call.path["campaign_id"])
    count, offset = call.query.page()
    total = conn.execute("SELECT COUNT(*) FROM sends WHERE campaign_seq=?", (camp["seq"],)).fetchone()[0]
    sends = conn.execute("SELECT * FROM sends WHERE campaign_seq=? ORDER BY member_seq LIMIT ? OFFSET ?",
                         (camp["seq"], count, offset)).fetchall()
    href = f"{call.base}/reports/{camp['id']}"
    return {"sent_to": _sent_to_page(call, camp, sends), "campaign_id": camp["id"], "total_items": total,
            "_links": collection_links(f"{href}/sent-to", href, "Reports/SentTo", create=False)}


@api.route("GET", "/reports/{campaign_id}/sent-to/{subscriber_hash}", params=PROJECTION)
def sent_to_member(call: Call) -> dict[str, Any]:
    conn = call.store.conn()
    camp = _sent_campaign(conn, call.path["campaign_id"])
    seq = _recipient(call, camp, "sends")
    send = conn.execute("SELECT * FROM sends WHERE campaign_seq=? AND member_seq=?", (camp["seq"], seq)).fetchone()
    return _sent_to_page(call, camp, [send])[0]


def _unsub_page(call: Call, camp: sqlite3.Row, unsubs: list[sqlite3.Row]) -> list[dict[str, Any]]:
    conn = call.store.conn()
    members, ctx = _member_rows(conn, [u["member_seq"] for u in unsubs]), _ctx(conn, camp, call.base)
    href = f"{call.base}/reports/{camp['id']}/unsubscribed"
    out = []
    for u in unsubs:
        m = members.get(u["member_seq"])
        if m is None:
            continue
        stored = orjson.loads(m["merge_fields"])
        out.append({"email_id": m["hash"], "email_address": m["email_address"],
                    "merge_fields": {t: stored.get(t, "") for t in ctx.tags}, "vip": bool(m["vip"]),
                    "timestamp": u["timestamp"], "reason": u["reason"], "campaign_id": camp["id"],
                    "list_id": camp["list_id"], "list_is_active": bool(camp["list_active"]),
                    "_links": item_links(f"{href}/{m['hash']}", href, "Reports/Unsubscribes", methods=())})
    return out


@api.route("GET", "/reports/{campaign_id}/unsubscribed", params=PAGING)
def unsubscribed(call: Call) -> dict[str, Any]:
    conn = call.store.conn()
    camp = _sent_campaign(conn, call.path["campaign_id"])
    count, offset = call.query.page()
    total = conn.execute("SELECT COUNT(*) FROM unsubscribes WHERE campaign_seq=?", (camp["seq"],)).fetchone()[0]
    rows = conn.execute("SELECT * FROM unsubscribes WHERE campaign_seq=? ORDER BY timestamp, member_seq "
                        "LIMIT ? OFFSET ?",
                        (camp["seq"], count, offset)).fetchall()
    href = f"{call.base}/reports/{camp['id']}"
    return {"unsubscribes": _unsub_page(call, camp, rows), "campaign_id": camp["id"], "total_items": total,
            "_links": collection_links(f"{href}/unsubscribed", href, "Reports/Unsubscribes", create=False)}


@api.route("GET", "/reports/{campaign_id}/unsubscribed/{subscriber_hash}", params=PROJECTION)
def unsubscribed_member(call: Call) -> dict[str, Any]:
    conn = call.store.conn()
    camp = _sent_campaign(conn, call.path["campaign_id"])
    seq = _recipient(call, camp, "unsubscribes")
    row = conn.execute("SELECT * FROM unsubscribes WHERE campaign_seq=? AND member_seq=?",
                       (camp["seq"], seq)).fetchone()
    return _unsub_page(call, camp, [row])[0]
