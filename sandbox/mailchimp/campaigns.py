"""Campaigns: stored form, rendering, ``GET /campaigns`` with its filters.

Report figures (opens, clicks, bounces, unsubscribes) are aggregated from ``sends``,
``activity`` and ``unsubscribes`` by :func:`refresh_stats` whenever those change, and kept in
the campaign's document, so listing campaigns never scans activity.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from sandbox.mailchimp.errors import not_found
from sandbox.mailchimp.links import collection_links, item_links
from sandbox.mailchimp.lookups import subscriber_hash
from sandbox.mailchimp.params import PAGING, PROJECTION
from sandbox.mailchimp.routing import Api, Call

if TYPE_CHECKING:
    import sqlite3

api = Api("/3.0")
TYPES = ("regular", "plaintext", "absplit", "rss", "variate", "sms")
STATUSES = ("save", "paused", "schedule", "sending", "sent", "canceled", "canceling", "archived")
SELECT = ("SELECT c.*, l.name AS list_name, l.id IS NOT NULL AS list_active FROM campaigns c "
          "LEFT JOIN lists l ON l.id = c.list_id")
EMPTY_STATS = {"emails_sent": 0, "opens_total": 0, "unique_opens": 0, "clicks_total": 0, "unique_clicks": 0,
               "unique_subscriber_clicks": 0, "hard_bounces": 0, "soft_bounces": 0, "unsubscribed": 0,
               "last_open": "", "last_click": "", "open_rate": 0, "click_rate": 0}


def campaign_doc(type_: str, title: str, subject: str, from_name: str, reply_to: str, preview_text: str = "",
                 segment_text: str = "", extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The parts of a campaign the API returns but the emulator does not query on."""
    doc: dict[str, Any] = {
        "content_type": "multichannel" if type_ == "sms" else "template",
        "segment_text": segment_text,
        "settings": {"subject_line": subject, "preview_text": preview_text, "title": title, "from_name": from_name,
                     "reply_to": reply_to, "use_conversation": False, "to_name": "*|FNAME|*", "folder_id": "",
                     "authenticate": True, "auto_footer": False, "inline_css": False, "auto_tweet": False,
                     "fb_comments": True, "timewarp": False, "template_id": 0, "drag_and_drop": True},
        "tracking": {"opens": True, "html_clicks": True, "text_clicks": type_ == "plaintext", "goal_tracking": False,
                     "ecomm360": False, "google_analytics": "", "clicktale": ""},
        "stats": dict(EMPTY_STATS),
    }
    doc.update(extra or {})
    return doc


def insert_campaign(conn: sqlite3.Connection, campaign_id: str, web_id: int, type_: str, status: str, list_id: str,
                    segment_id: int | None, create_time: str, send_time: str, doc: dict[str, Any]) -> int:
    return conn.execute(
        "INSERT INTO campaigns(id, web_id, type, status, list_id, segment_id, create_time, send_time, doc) "
        "VALUES(?,?,?,?,?,?,?,?,?)", (campaign_id, web_id, type_, status, list_id, segment_id, create_time, send_time,
                                      orjson.dumps(doc).decode())).lastrowid


def refresh_stats(conn: sqlite3.Connection, seq: int) -> None:
    """Recompute the report figures of one campaign from its sends and activity."""
    sent, hard, soft = conn.execute(
        "SELECT COUNT(*), COALESCE(SUM(status='hard'), 0), COALESCE(SUM(status='soft'), 0) FROM sends "
        "WHERE campaign_seq=?", (seq,)).fetchone()
    opens, unique_opens, last_open = conn.execute(
        "SELECT COUNT(*), COUNT(DISTINCT member_seq), COALESCE(MAX(timestamp), '') FROM activity "
        "WHERE campaign_seq=? AND action='open'", (seq,)).fetchone()
    clicks, unique_clicks, clickers, last_click = conn.execute(
        "SELECT COUNT(*), COUNT(DISTINCT member_seq || ' ' || url), COUNT(DISTINCT member_seq), "
        "COALESCE(MAX(timestamp), '') FROM activity WHERE campaign_seq=? AND action='click'", (seq,)).fetchone()
    unsubscribed = conn.execute("SELECT COUNT(*) FROM unsubscribes WHERE campaign_seq=?", (seq,)).fetchone()[0]
    delivered = max(sent - hard - soft, 0)
    stats = {"emails_sent": sent, "opens_total": opens, "unique_opens": unique_opens, "clicks_total": clicks,
             "unique_clicks": unique_clicks, "unique_subscriber_clicks": clickers, "hard_bounces": hard,
             "soft_bounces": soft, "unsubscribed": unsubscribed, "last_open": last_open, "last_click": last_click,
             "open_rate": round(unique_opens / delivered, 6) if delivered else 0,
             "click_rate": round(clickers / delivered, 6) if delivered else 0}
    conn.execute("UPDATE campaigns SET doc=json_set(doc, '$.stats', json(?)) WHERE seq=?",
                  (orjson.dumps(stats).decode(), seq))


def render_campaign(row: sqlite3.Row, base: str) -> dict[str, Any]:
    doc = orjson.loads(row["doc"])
    stats = doc["stats"]
    href = f"{base}/campaigns/{row['id']}"
    sent = row["status"] in ("sent", "sending")
    out: dict[str, Any] = {
        "id": row["id"], "web_id": row["web_id"], "parent_campaign_id": "", "type": row["type"],
        "create_time": row["create_time"], "archive_url": f"http://eepurl.com/{row['id'][:6]}",
        "long_archive_url": f"https://us1.campaign-archive.com/?u=sandbox&id={row['id']}",
        "status": row["status"], "emails_sent": stats["emails_sent"], "send_time": row["send_time"],
        "content_type": doc["content_type"], "needs_block_refresh": False, "resendable": row["status"] == "sent",
        "recipients": {"list_id": row["list_id"], "list_is_active": bool(row["list_active"]),
                       "list_name": row["list_name"] or "", "segment_text": doc["segment_text"],
                       "recipient_count": stats["emails_sent"]},
        "settings": doc["settings"], "tracking": doc["tracking"],
    }
    if row["segment_id"] is not None:
        out["recipients"]["segment_opts"] = {"saved_segment_id": row["segment_id"], "match": "all", "conditions": []}
    for key in ("rss_opts", "variate_settings", "ab_split_opts"):
        if key in doc:
            out[key] = doc[key]
    if sent:
        out["report_summary"] = {"opens": stats["opens_total"], "unique_opens": stats["unique_opens"],
                                 "open_rate": stats["open_rate"], "clicks": stats["clicks_total"],
                                 "subscriber_clicks": stats["unique_subscriber_clicks"],
                                 "click_rate": stats["click_rate"],
                                 "ecommerce": {"total_orders": 0, "total_spent": 0, "total_revenue": 0}}
    out["delivery_status"] = {"enabled": False}
    out["_links"] = item_links(href, f"{base}/campaigns", "Campaigns")
    return out


def find_campaign(conn: sqlite3.Connection, campaign_id: str) -> sqlite3.Row:
    row = conn.execute(f"{SELECT} WHERE c.id=?", (campaign_id,)).fetchone()
    if row is None:
        raise not_found()
    return row


@api.route("GET", "/campaigns", params=(*PAGING, "type", "status", "before_send_time", "since_send_time",
                                        "before_create_time", "since_create_time", "list_id", "folder_id",
                                        "member_id", "sort_field", "sort_dir", "include_resend_shortcut_eligibility"))
def list_campaigns(call: Call) -> dict[str, Any]:
    q = call.query
    conn = call.store.conn()
    count, offset = q.page()
    where, args = ["1=1"], []
    for param, column, choices in (("type", "c.type", TYPES), ("status", "c.status", STATUSES)):
        value = q.enum(param, choices)
        if value:
            where.append(f"{column}=?")
            args.append(value)
    for param, column, op in (("before_send_time", "send_time", "<"), ("since_send_time", "send_time", ">="),
                              ("before_create_time", "create_time", "<"), ("since_create_time", "create_time", ">=")):
        if q.time(param):
            where.append(f"c.{column}{op}? AND c.{column}<>''")
            args.append(q.time(param))
    if q.str("list_id"):
        where.append("c.list_id=?")
        args.append(q.str("list_id"))
    if q.str("folder_id"):
        where.append("json_extract(c.doc, '$.settings.folder_id')=?")
        args.append(q.str("folder_id"))
    member = q.str("member_id")
    if member:
        where.append("EXISTS(SELECT 1 FROM sends s JOIN members m ON m.seq=s.member_seq WHERE s.campaign_seq=c.seq "
                     "AND (m.unique_email_id=? OR m.hash=?))")
        args += [member, subscriber_hash(member) or member]
    sort = q.enum("sort_field", ("create_time", "send_time"))
    direction = q.enum("sort_dir", ("ASC", "DESC"), "ASC")
    order = f"c.{sort} {direction}, c.seq {direction}" if sort else "c.seq"
    clause = " AND ".join(where)
    total = conn.execute(f"SELECT COUNT(*) FROM campaigns c WHERE {clause}", args).fetchone()[0]
    rows = conn.execute(f"{SELECT} WHERE {clause} ORDER BY {order} LIMIT ? OFFSET ?", (*args, count, offset))
    return {"campaigns": [render_campaign(r, call.base) for r in rows], "total_items": total,
            "_links": collection_links(f"{call.base}/campaigns", call.base, "Campaigns")}


@api.route("GET", "/campaigns/{campaign_id}", params=(*PROJECTION, "include_resend_shortcut_eligibility"))
def get_campaign(call: Call) -> dict[str, Any]:
    return render_campaign(find_campaign(call.store.conn(), call.path["campaign_id"]), call.base)
