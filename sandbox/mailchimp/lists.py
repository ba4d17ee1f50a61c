"""Audiences (``/lists``): listing with Mailchimp's filters, creation, stats.

Stats are computed from the members and campaigns tables on each read (one GROUP BY over
the ``(list_id, status)`` index), so they can never drift from what the member endpoints
return.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

import orjson

from sandbox.mailchimp.errors import VALIDATION_DETAIL, invalid
from sandbox.mailchimp.links import collection_links, item_links, link
from sandbox.mailchimp.lookups import email_hash, new_hex_id, require_list
from sandbox.mailchimp.mergefields import add_default_fields
from sandbox.mailchimp.params import PAGING, PROJECTION
from sandbox.mailchimp.routing import Api, Call

if TYPE_CHECKING:
    import sqlite3

api = Api("/3.0")
REQUIRED_CONTACT = ("company", "address1", "city", "country")
REQUIRED_DEFAULTS = ("from_name", "from_email", "subject", "language")
DOC_KEYS = ("contact", "permission_reminder", "use_archive_bar", "campaign_defaults", "notify_on_subscribe",
            "notify_on_unsubscribe", "list_rating", "email_type_option", "subscribe_url_short",
            "subscribe_url_long", "beamer_address", "visibility", "double_optin", "has_welcome",
            "marketing_permissions", "modules")


def new_list_doc(body: dict[str, Any], list_id: str, web_id: int) -> dict[str, Any]:
    """The stored part of an audience, with Mailchimp's defaults for what the body leaves out."""
    contact = {"company": "", "address1": "", "address2": "", "city": "", "state": "", "zip": "", "country": "US",
               "phone": "", **body.get("contact", {})}
    return {
        "contact": contact, "permission_reminder": body.get("permission_reminder", ""),
        "use_archive_bar": bool(body.get("use_archive_bar", True)),
        "campaign_defaults": dict(body.get("campaign_defaults", {})),
        "notify_on_subscribe": body.get("notify_on_subscribe", ""),
        "notify_on_unsubscribe": body.get("notify_on_unsubscribe", ""), "list_rating": 0,
        "email_type_option": bool(body.get("email_type_option", False)),
        "subscribe_url_short": f"http://eepurl.com/{list_id[:6]}",
        "subscribe_url_long": f"https://example.us1.list-manage.com/subscribe?u=sandbox&id={list_id}",
        "beamer_address": f"us1-{list_id}@inbound.mailchimp.com", "visibility": body.get("visibility", "pub"),
        "double_optin": bool(body.get("double_optin", False)), "has_welcome": False,
        "marketing_permissions": bool(body.get("marketing_permissions", False)), "modules": [],
    }


def _stats(conn: sqlite3.Connection, row: sqlite3.Row, doc: dict[str, Any], total_contacts: bool) -> dict[str, Any]:
    list_id = row["id"]
    by_status = dict(conn.execute("SELECT status, COUNT(*) FROM members WHERE list_id=? GROUP BY status", (list_id,)))
    _, last_sent, open_rate, click_rate = conn.execute(
        "SELECT COUNT(*), MAX(send_time), AVG(json_extract(doc, '$.stats.open_rate')), "
        "AVG(json_extract(doc, '$.stats.click_rate')) FROM campaigns WHERE list_id=? AND status='sent'",
        (list_id,)).fetchone()
    since: dict[str, int] = {}
    if last_sent:
        since = dict(conn.execute("SELECT status, COUNT(*) FROM members WHERE list_id=? AND last_changed>=? "
                                  "GROUP BY status", (list_id, last_sent)))
    campaigns = conn.execute("SELECT COUNT(*) FROM campaigns WHERE list_id=?", (list_id,)).fetchone()[0]
    fields = conn.execute("SELECT COUNT(*) FROM merge_fields WHERE list_id=?", (list_id,)).fetchone()[0]
    stats = {
        "member_count": by_status.get("subscribed", 0), "unsubscribe_count": by_status.get("unsubscribed", 0),
        "cleaned_count": by_status.get("cleaned", 0),
        "member_count_since_send": since.get("subscribed", 0),
        "unsubscribe_count_since_send": since.get("unsubscribed", 0),
        "cleaned_count_since_send": since.get("cleaned", 0),
        "campaign_count": campaigns, "campaign_last_sent": last_sent or "", "merge_field_count": fields + 1,
        "avg_sub_rate": 0, "avg_unsub_rate": 0, "target_sub_rate": 0,
        "open_rate": round(open_rate or 0, 4), "click_rate": round(click_rate or 0, 4),
        "last_sub_date": doc.get("stats_last_sub_date", ""), "last_unsub_date": doc.get("stats_last_unsub_date", ""),
    }
    if total_contacts:
        stats["total_contacts"] = sum(n for s, n in by_status.items() if s != "archived")
    return stats


def render_list(conn: sqlite3.Connection, row: sqlite3.Row, base: str, total_contacts: bool = False) -> dict[str, Any]:
    doc = orjson.loads(row["doc"])
    href = f"{base}/lists/{row['id']}"
    out: dict[str, Any] = {"id": row["id"], "web_id": row["web_id"], "name": row["name"]}
    out.update({k: doc[k] for k in DOC_KEYS if k in doc})
    out["date_created"] = row["date_created"]
    out["stats"] = _stats(conn, row, doc, total_contacts)
    children = (("members", "Members"), ("merge_fields", "MergeFields"), ("segments", "Segments"),
                ("interest_categories", "InterestCategories"))
    out["_links"] = [*item_links(href, f"{base}/lists", "Lists"),
                     *(link(rel, f"{href}/{rel.replace('_', '-')}",
                            target=f"Definitions/Lists/{name}/CollectionResponse.json") for rel, name in children)]
    return out


@api.route("GET", "/lists", params=(*PAGING, "before_date_created", "since_date_created",
                                    "before_campaign_last_sent", "since_campaign_last_sent", "email", "sort_field",
                                    "sort_dir", "has_ecommerce_store", "include_total_contacts"))
def get_lists(call: Call) -> dict[str, Any]:
    q = call.query
    conn = call.store.conn()
    count, offset = q.page()
    where, args = ["1=1"], []
    for param, op in (("before_date_created", "<"), ("since_date_created", ">=")):
        if q.time(param):
            where.append(f"date_created{op}?")
            args.append(q.time(param))
    if q.str("email"):
        where.append("EXISTS(SELECT 1 FROM members m WHERE m.list_id=lists.id AND m.hash=?)")
        args.append(email_hash(q.str("email") or ""))
    if q.bool("has_ecommerce_store"):
        where.append("0")
    q.enum("sort_field", ("date_created",))
    order = "date_created DESC, seq DESC" if q.enum("sort_dir", ("ASC", "DESC")) == "DESC" else "seq"
    rows = conn.execute(f"SELECT * FROM lists WHERE {' AND '.join(where)} ORDER BY {order}", args).fetchall()
    lists = [render_list(conn, r, call.base, q.bool("include_total_contacts")) for r in rows]
    for param, keep in (("before_campaign_last_sent", lambda v, t: v and v < t),
                        ("since_campaign_last_sent", lambda v, t: v and v >= t)):
        bound = q.time(param)
        if bound:
            lists = [x for x in lists if keep(x["stats"]["campaign_last_sent"], bound)]
    total = conn.execute("SELECT COUNT(*) FROM lists").fetchone()[0]
    return {"lists": lists[offset:offset + count], "total_items": len(lists),
            "constraints": {"may_create": True, "max_instances": 100, "current_total_instances": total},
            "_links": collection_links(f"{call.base}/lists", call.base, "Lists")}


def _missing(body: dict[str, Any]) -> list[dict[str, str]]:
    errors = []
    for key in ("name", "permission_reminder"):
        if not isinstance(body.get(key), str) or not body[key].strip():
            errors.append({"field": key, "message": "This value should not be blank."})
    for group, keys in (("contact", REQUIRED_CONTACT), ("campaign_defaults", REQUIRED_DEFAULTS)):
        value = body.get(group)
        if not isinstance(value, dict):
            errors.append({"field": group, "message": "This value should not be blank."})
            continue
        errors += [{"field": f"{group}.{k}", "message": "This value should not be blank."}
                   for k in keys if not isinstance(value.get(k), str) or not value[k].strip()]
    if not isinstance(body.get("email_type_option"), bool):
        errors.append({"field": "email_type_option", "message": "This value should be of type boolean."})
    return errors


@api.route("POST", "/lists", body=True)
def create_list(call: Call) -> dict[str, Any]:
    errors = _missing(call.body)
    if errors:
        raise invalid(VALIDATION_DETAIL, errors)
    list_id, web_id = new_hex_id(10), secrets.randbelow(900_000) + 100_000
    now = call.store.clock.now_text()
    with call.store.write() as conn:
        doc = new_list_doc(call.body, list_id, web_id)
        conn.execute("INSERT INTO lists(id, web_id, name, date_created, doc) VALUES(?,?,?,?,?)",
                     (list_id, web_id, call.body["name"], now, orjson.dumps(doc).decode()))
        add_default_fields(conn, list_id)
    conn = call.store.conn()
    return render_list(conn, require_list(conn, list_id), call.base)


@api.route("GET", "/lists/{list_id}", params=(*PROJECTION, "include_total_contacts"))
def get_list(call: Call) -> dict[str, Any]:
    conn = call.store.conn()
    return render_list(conn, require_list(conn, call.path["list_id"]), call.base,
                       call.query.bool("include_total_contacts"))


@api.route("DELETE", "/lists/{list_id}")
def delete_list(call: Call) -> None:
    """Delete an audience and its members; its campaigns stay, with ``list_is_active`` false."""
    with call.store.write() as conn:
        list_id = require_list(conn, call.path["list_id"])["id"]
        conn.execute("DELETE FROM segment_members WHERE segment_id IN (SELECT id FROM segments WHERE list_id=?)",
                     (list_id,))
        for table in ("members", "merge_fields", "segments", "interests", "interest_categories", "forgotten"):
            conn.execute(f"DELETE FROM {table} WHERE list_id=?", (list_id,))
        conn.execute("DELETE FROM lists WHERE id=?", (list_id,))
