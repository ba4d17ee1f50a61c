"""Segments: static ones (which are also tags, as in Mailchimp) and saved ones.

A saved segment keeps its conditions and is evaluated in SQL on every read, so it always
matches the members as they are now. Supported condition types: ``EmailAddress``,
``TextMerge``, ``MemberRating``, ``Interests`` and ``StaticSegment``; any other is a 400.
Counts and member lists hold subscribed members only unless ``include_*`` says otherwise.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import orjson

from sandbox.mailchimp.context import load_ctx
from sandbox.mailchimp.errors import VALIDATION_DETAIL, ApiError, invalid, not_found
from sandbox.mailchimp.links import collection_links, item_links
from sandbox.mailchimp.lookups import email_hash, find_member, require_list, require_member
from sandbox.mailchimp.members import page_rows, render_rows
from sandbox.mailchimp.params import PAGING, PROJECTION
from sandbox.mailchimp.routing import Api, Call, body_field

if TYPE_CHECKING:
    import sqlite3

api = Api("/3.0")
SEGMENTS = "/lists/{list_id}/segments"
INCLUDE = ("include_cleaned", "include_transactional", "include_unsubscribed")
_TEXT_OPS = {"is": "{c} = ?", "not": "{c} <> ?", "contains": "instr(lower({c}), lower(?)) > 0",
             "notcontain": "instr(lower({c}), lower(?)) = 0", "starts": "lower({c}) LIKE lower(?) || '%'",
             "ends": "lower({c}) LIKE '%' || lower(?)", "greater": "{c} > ?", "less": "{c} < ?",
             "blank": "COALESCE({c}, '') = ''", "blank_not": "COALESCE({c}, '') <> ''"}
_RATING_OPS = {"is": "=", "not": "<>", "greater": ">", "less": "<"}


def condition_sql(cond: dict[str, Any]) -> tuple[str, list[Any]]:
    """One Mailchimp segment condition as a SQL predicate over ``members``."""
    if not isinstance(cond, dict):  # a list or a string here was a 500 (found by fuzzing); Mailchimp says 400
        raise invalid(VALIDATION_DETAIL, [{"field": "options.conditions", "message": "Schema describes object"}])
    kind, op, value = cond.get("condition_type"), cond.get("op"), cond.get("value")
    if kind in ("EmailAddress", "TextMerge") and op in _TEXT_OPS:
        tag = str(cond.get("field", "")).upper()
        if kind == "EmailAddress" or tag in ("EMAIL", "MERGE0"):
            column = "email_address"
        elif re.fullmatch(r"[A-Z0-9_]{1,10}", tag):
            column = f"json_extract(merge_fields, '$.{tag}')"
        else:
            raise invalid(f"Unknown merge field '{tag}' in a segment condition.")
        sql = _TEXT_OPS[op].format(c=column)
        return sql, [] if op.startswith("blank") else [str(value)]
    if kind == "MemberRating" and op in _RATING_OPS:
        return f"member_rating {_RATING_OPS[op]} ?", [_integer(value)]
    if kind == "Interests" and op in ("interestcontains", "interestcontainsall", "interestnotcontains"):
        ids = value if isinstance(value, list) else [value]
        joiner = " AND " if op == "interestcontainsall" else " OR "
        sql = "(" + joiner.join("instr(interests, ?) > 0" for _ in ids) + ")"
        return (f"NOT {sql}" if op == "interestnotcontains" else sql), [f",{i}," for i in ids]
    if kind == "StaticSegment" and op in ("static_is", "static_not"):
        sql = "seq IN (SELECT member_seq FROM segment_members WHERE segment_id = ?)"
        return (sql if op == "static_is" else f"NOT {sql}"), [_integer(value)]
    raise invalid(VALIDATION_DETAIL, [{"field": "options.conditions",
                                       "message": f"Unsupported condition {kind!r} with op {op!r}."}])


def _integer(value: Any) -> int:
    """A condition's number; anything else is the 400 Mailchimp gives (``int()`` alone made a 500)."""
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        raise invalid(VALIDATION_DETAIL, [{"field": "options.conditions.value",
                                           "message": "This value should be a number."}]) from None


def _membership(seg: sqlite3.Row) -> tuple[str, list[Any]]:
    if seg["type"] == "static":
        return "seq IN (SELECT member_seq FROM segment_members WHERE segment_id = ?)", [seg["id"]]
    options = orjson.loads(seg["options"])
    parts = [condition_sql(c) for c in options.get("conditions", [])]
    if not parts:
        return "1=1", []
    joiner = " OR " if options.get("match") == "any" else " AND "
    return "(" + joiner.join(p for p, _ in parts) + ")", [a for _, args in parts for a in args]


def _statuses(call: Call) -> list[str]:
    statuses = ["subscribed"]
    for flag, status in zip(INCLUDE, ("cleaned", "transactional", "unsubscribed"), strict=True):
        if call.query.bool(flag):
            statuses.append(status)
    return statuses


def _member_where(seg: sqlite3.Row, statuses: list[str]) -> tuple[str, list[Any]]:
    sql, args = _membership(seg)
    return (f"list_id = ? AND status IN ({','.join('?' * len(statuses))}) AND {sql}",
            [seg["list_id"], *statuses, *args])


def render_segment(conn: sqlite3.Connection, seg: sqlite3.Row, base: str, statuses: list[str]) -> dict[str, Any]:
    where, args = _member_where(seg, statuses)
    count = conn.execute(f"SELECT COUNT(*) FROM members WHERE {where}", args).fetchone()[0]
    href = f"{base}/lists/{seg['list_id']}/segments/{seg['id']}"
    doc: dict[str, Any] = {"id": seg["id"], "name": seg["name"], "member_count": count, "type": seg["type"],
                           "created_at": seg["created_at"], "updated_at": seg["updated_at"]}
    if seg["type"] == "saved":
        doc["options"] = orjson.loads(seg["options"])
    doc["list_id"] = seg["list_id"]
    doc["_links"] = item_links(href, f"{base}/lists/{seg['list_id']}/segments", "Lists/Segments")
    return doc


def _segment(conn: sqlite3.Connection, call: Call) -> sqlite3.Row:
    require_list(conn, call.path["list_id"])
    seg = conn.execute("SELECT * FROM segments WHERE list_id=? AND id=?",
                       (call.path["list_id"], call.path["segment_id"])).fetchone()
    if seg is None:
        raise not_found()
    return seg


@api.route("GET", SEGMENTS, params=(*PAGING, "type", "since_created_at", "before_created_at", "since_updated_at",
                                    "before_updated_at", *INCLUDE))
def list_segments(call: Call) -> dict[str, Any]:
    q = call.query
    conn = call.store.conn()
    list_id = require_list(conn, call.path["list_id"])["id"]
    count, offset = q.page()
    where, args = ["list_id=?"], [list_id]
    kind = q.enum("type", ("saved", "static", "fuzzy"))
    if kind:
        where.append("type=?")
        args.append(kind)
    for param, column, op in (("since_created_at", "created_at", ">="), ("before_created_at", "created_at", "<"),
                              ("since_updated_at", "updated_at", ">="), ("before_updated_at", "updated_at", "<")):
        if q.time(param):
            where.append(f"{column}{op}?")
            args.append(q.time(param))
    clause = " AND ".join(where)
    total = conn.execute(f"SELECT COUNT(*) FROM segments WHERE {clause}", args).fetchone()[0]
    rows = conn.execute(f"SELECT * FROM segments WHERE {clause} ORDER BY id LIMIT ? OFFSET ?",
                        (*args, count, offset)).fetchall()
    statuses = _statuses(call)
    href = f"{call.base}/lists/{list_id}/segments"
    return {"segments": [render_segment(conn, r, call.base, statuses) for r in rows], "list_id": list_id,
            "total_items": total, "_links": collection_links(href, f"{call.base}/lists/{list_id}", "Lists/Segments")}


def _options(body: dict[str, Any]) -> dict[str, Any] | None:
    options = body.get("options")
    if options is None:
        return None
    if not isinstance(options, dict) or not isinstance(options.get("conditions", []), list):
        raise invalid(VALIDATION_DETAIL, [{"field": "options", "message": "Schema describes object"}])
    options = {"match": options.get("match", "all"), "conditions": options.get("conditions", [])}
    for cond in options["conditions"]:
        condition_sql(cond)
    return options


def _set_static(conn: sqlite3.Connection, seg_id: int, list_id: str, emails: list[Any], now: str,
                replace: bool) -> None:
    if replace:
        conn.execute("DELETE FROM segment_members WHERE segment_id=?", (seg_id,))
    for email in emails:
        if isinstance(email, str):
            row = find_member(conn, list_id, email_hash(email))
            if row:
                conn.execute("INSERT OR IGNORE INTO segment_members VALUES(?,?,?)", (seg_id, row[0], now))


@api.route("POST", SEGMENTS, body=True)
def create_segment(call: Call) -> dict[str, Any]:
    name = body_field(call, "name", str, required=True)
    emails = body_field(call, "static_segment", list)
    options = _options(call.body)
    if emails is not None and options is not None:
        raise invalid("A segment is either static (static_segment) or saved (options), not both.")
    now = call.store.clock.now_text()
    with call.store.write() as conn:
        list_id = require_list(conn, call.path["list_id"])["id"]
        kind = "saved" if options is not None else "static"
        seg_id = conn.execute("INSERT INTO segments(list_id, name, type, created_at, updated_at, options) "
                              "VALUES(?,?,?,?,?,?)", (list_id, name, kind, now, now,
                                                      orjson.dumps(options or {}).decode())).lastrowid
        _set_static(conn, seg_id, list_id, emails or [], now, replace=False)
    call.path["segment_id"] = str(seg_id)
    conn = call.store.conn()
    return render_segment(conn, _segment(conn, call), call.base, ["subscribed"])


@api.route("GET", SEGMENTS + "/{segment_id}", params=(*PROJECTION, *INCLUDE))
def get_segment(call: Call) -> dict[str, Any]:
    conn = call.store.conn()
    return render_segment(conn, _segment(conn, call), call.base, _statuses(call))


@api.route("PATCH", SEGMENTS + "/{segment_id}", body=True)
def update_segment(call: Call) -> dict[str, Any]:
    name = body_field(call, "name", str, required=True)
    emails = body_field(call, "static_segment", list)
    options = _options(call.body)
    now = call.store.clock.now_text()
    with call.store.write() as conn:
        seg = _segment(conn, call)
        if (emails is not None and seg["type"] != "static") or (options is not None and seg["type"] != "saved"):
            raise invalid("static_segment applies to static segments and options to saved segments only.")
        conn.execute("UPDATE segments SET name=?, updated_at=? WHERE id=?", (name, now, seg["id"]))
        if options is not None:
            conn.execute("UPDATE segments SET options=? WHERE id=?", (orjson.dumps(options).decode(), seg["id"]))
        if emails is not None:
            _set_static(conn, seg["id"], seg["list_id"], emails, now, replace=True)
    conn = call.store.conn()
    return render_segment(conn, _segment(conn, call), call.base, ["subscribed"])


@api.route("DELETE", SEGMENTS + "/{segment_id}")
def delete_segment(call: Call) -> None:
    with call.store.write() as conn:
        seg = _segment(conn, call)
        conn.execute("DELETE FROM segment_members WHERE segment_id=?", (seg["id"],))
        conn.execute("DELETE FROM segments WHERE id=?", (seg["id"],))


@api.route("POST", SEGMENTS + "/{segment_id}", body=True)
def batch_segment_members(call: Call) -> dict[str, Any]:
    """Add and remove up to 500 emails each on a static segment."""
    adds = body_field(call, "members_to_add", list, default=[])
    removes = body_field(call, "members_to_remove", list, default=[])
    if len(adds) > 500 or len(removes) > 500:
        raise invalid("You can add or remove up to 500 members in one request.")
    now = call.store.clock.now_text()
    added, removed, missing = [], [], []
    with call.store.write() as conn:
        seg = _segment(conn, call)
        if seg["type"] != "static":
            raise invalid("Members can only be added to or removed from static segments.")
        for emails, target, add in ((adds, added, True), (removes, removed, False)):
            for email in emails:
                row = conn.execute("SELECT seq FROM members WHERE list_id=? AND hash=?",
                                   (seg["list_id"], email_hash(str(email)))).fetchone()
                if row is None:
                    missing.append(str(email))
                    continue
                if add:
                    cur = conn.execute("INSERT OR IGNORE INTO segment_members VALUES(?,?,?)", (seg["id"], row[0], now))
                else:
                    cur = conn.execute("DELETE FROM segment_members WHERE segment_id=? AND member_seq=?",
                                       (seg["id"], row[0]))
                if cur.rowcount:
                    target.append(row[0])
                    conn.execute("UPDATE members SET last_changed=? WHERE seq=?", (now, row[0]))
        if added or removed:
            conn.execute("UPDATE segments SET updated_at=? WHERE id=?", (now, seg["id"]))
        ctx = load_ctx(conn, seg["list_id"], call.base)
        rows = {r["seq"]: r for r in conn.execute(
            f"SELECT * FROM members WHERE seq IN ({','.join('?' * len(added + removed))})", added + removed)}
        rendered = dict(zip(rows, render_rows(conn, ctx, list(rows.values())), strict=True))
    errors = [{"email_addresses": missing, "error": "Email addresses do not belong to this list."}] if missing else []
    return {"members_added": [rendered[s] for s in added], "members_removed": [rendered[s] for s in removed],
            "errors": errors, "total_added": len(added), "total_removed": len(removed), "error_count": len(missing),
            "_links": collection_links(f"{call.base}/lists/{seg['list_id']}/segments/{seg['id']}",
                                       f"{call.base}/lists/{seg['list_id']}/segments", "Lists/Segments", create=False)}


@api.route("GET", SEGMENTS + "/{segment_id}/members", params=(*PAGING, *INCLUDE))
def segment_members(call: Call) -> dict[str, Any]:
    conn = call.store.conn()
    seg = _segment(conn, call)
    ctx = load_ctx(conn, seg["list_id"], call.base)
    count, offset = call.query.page()
    where, args = _member_where(seg, _statuses(call))
    total = conn.execute(f"SELECT COUNT(*) FROM members WHERE {where}", args).fetchone()[0]
    rows = page_rows(conn, where, args, "seq", count, offset)
    href = f"{call.base}/lists/{seg['list_id']}/segments/{seg['id']}"
    return {"members": render_rows(conn, ctx, rows), "total_items": total,
            "_links": collection_links(f"{href}/members", href, "Lists/Segments/Members")}


@api.route("POST", SEGMENTS + "/{segment_id}/members", body=True)
def add_segment_member(call: Call) -> dict[str, Any]:
    email = body_field(call, "email_address", str, required=True)
    now = call.store.clock.now_text()
    with call.store.write() as conn:
        seg = _segment(conn, call)
        if seg["type"] != "static":
            raise invalid("Members can only be added to static segments.")
        row = find_member(conn, seg["list_id"], email_hash(email))
        if row is None:
            raise ApiError(400, f"{email} is not a member of this list.", title="Invalid Resource")
        conn.execute("INSERT OR IGNORE INTO segment_members VALUES(?,?,?)", (seg["id"], row["seq"], now))
        conn.execute("UPDATE segments SET updated_at=? WHERE id=?", (now, seg["id"]))
        conn.execute("UPDATE members SET last_changed=? WHERE seq=?", (now, row["seq"]))
        ctx = load_ctx(conn, seg["list_id"], call.base)
        fresh = conn.execute("SELECT * FROM members WHERE seq=?", (row["seq"],)).fetchone()
        return render_rows(conn, ctx, [fresh])[0]


@api.route("DELETE", SEGMENTS + "/{segment_id}/members/{subscriber_hash}")
def remove_segment_member(call: Call) -> None:
    now = call.store.clock.now_text()
    with call.store.write() as conn:
        seg = _segment(conn, call)
        row = require_member(conn, seg["list_id"], call.path["subscriber_hash"])
        if not conn.execute("DELETE FROM segment_members WHERE segment_id=? AND member_seq=?",
                            (seg["id"], row["seq"])).rowcount:
            raise not_found()
        conn.execute("UPDATE segments SET updated_at=? WHERE id=?", (now, seg["id"]))
        conn.execute("UPDATE members SET last_changed=? WHERE seq=?", (now, row["seq"]))
