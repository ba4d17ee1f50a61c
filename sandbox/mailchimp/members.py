"""Members: how one is rendered, and the one write path every endpoint shares.

POST, PUT, PATCH, batch subscribe and the private upsert all go through
:func:`write_member`, so they validate and stamp ``last_changed`` identically. Tags are static
segments (as in Mailchimp), kept in ``segment_members``.
"""

from __future__ import annotations

import functools
import re
import secrets
from typing import TYPE_CHECKING, Any

import orjson

from sandbox.mailchimp import timeutil
from sandbox.mailchimp.errors import VALIDATION_DETAIL, ApiError, invalid
from sandbox.mailchimp.links import SCHEMA
from sandbox.mailchimp.lookups import email_hash, new_hex_id
from sandbox.mailchimp.mergefields import merge_values, raise_merge_errors
from sandbox.mailchimp.store import MEMBER_COLUMNS

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Sequence

    from sandbox.mailchimp.context import ListCtx

WRITE_STATUSES = ("subscribed", "unsubscribed", "cleaned", "pending", "transactional")
STATUSES = (*WRITE_STATUSES, "archived")
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,}$")
_PLACEHOLDER = "~subscriber-hash~"
_LINK_SPECS = (
    ("self", "", "GET", "Definitions/Lists/Members/Response.json", None),
    ("parent", None, "GET", "Definitions/Lists/Members/CollectionResponse.json", "Paths/Lists/Members/Collection.json"),
    ("update", "", "PATCH", "Definitions/Lists/Members/Response.json", "Definitions/Lists/Members/PATCH.json"),
    ("upsert", "", "PUT", "Definitions/Lists/Members/Response.json", "Definitions/Lists/Members/PUT.json"),
    ("delete", "", "DELETE", None, None),
    ("activity", "/activity", "GET", "Definitions/Lists/Members/Activity/Response.json", None),
    ("goals", "/goals", "GET", "Definitions/Lists/Members/Goals/Response.json", None),
    ("notes", "/notes", "GET", "Definitions/Lists/Members/Notes/CollectionResponse.json", None),
    ("events", "/events", "POST", None, "Definitions/Lists/Members/Events/POST.json"),
    ("delete_permanent", "/actions/delete-permanent", "POST", None, None),
)


def member_links(list_href: str, digest: str) -> list[dict[str, Any]]:
    href = f"{list_href}/members/{digest}"
    out = []
    for rel, suffix, method, target, schema in _LINK_SPECS:
        item: dict[str, Any] = {"rel": rel, "href": f"{list_href}/members" if suffix is None else href + suffix,
                                "method": method}
        if target:
            item["targetSchema"] = SCHEMA + target
        if schema:
            item["schema"] = SCHEMA + schema
        out.append(item)
    return out


@functools.lru_cache(maxsize=64)
def _links_template(list_href: str) -> bytes:
    return orjson.dumps(member_links(list_href, _PLACEHOLDER))


def member_links_json(list_href: str, digest: str) -> orjson.Fragment:
    """The same links, pre-serialized: ten small dicts per member are a third of a 1000-member page's cost."""
    return orjson.Fragment(_links_template(list_href).replace(_PLACEHOLDER.encode(), digest.encode()))


def tags_of(conn: sqlite3.Connection, seqs: list[int]) -> dict[int, list[tuple[int, str, str]]]:
    """``{member_seq: [(tag id, name, date added)]}`` for a page of members, in one query."""
    out: dict[int, list[tuple[int, str, str]]] = {}
    for start in range(0, len(seqs), 900):
        chunk = seqs[start:start + 900]
        rows = conn.execute(
            "SELECT sm.member_seq, s.id, s.name, sm.added_at FROM segment_members sm "
            "JOIN segments s ON s.id = sm.segment_id WHERE s.type = 'static' AND sm.member_seq IN "
            f"({','.join('?' * len(chunk))}) ORDER BY s.id", chunk)
        for seq, tag_id, name, added in rows:
            out.setdefault(seq, []).append((tag_id, name, added))
    return out


(_SEQ, _LIST, _HASH, _ADDRESS, _UEID, _CONTACT, _WEB_ID, _EMAIL_TYPE, _STATUS, _MERGE, _INTERESTS, _OPEN_RATE,
 _CLICK_RATE, _IP_SIGNUP, _TS_SIGNUP, _IP_OPT, _TS_OPT, _RATING, _CHANGED, _LANGUAGE, _VIP, _CLIENT, _LOCATION,
 _SOURCE) = range(len(MEMBER_COLUMNS))


def render_member(row: Sequence[Any], ctx: ListCtx, tags: list[tuple[int, str, str]], links: bool = True,
                  ) -> dict[str, Any]:
    """One member as the API returns it; ``row`` is a members row in MEMBER_COLUMNS order."""
    stored = orjson.loads(row[_MERGE])
    merge = {tag: stored.get(tag, "") for tag in ctx.tags}
    first, last = merge.get("FNAME", ""), merge.get("LNAME", "")
    full_name = f"{first if isinstance(first, str) else ''} {last if isinstance(last, str) else ''}".strip()
    doc: dict[str, Any] = {
        "id": row[_HASH], "email_address": row[_ADDRESS], "unique_email_id": row[_UEID], "contact_id": row[_CONTACT],
        "full_name": full_name, "web_id": row[_WEB_ID], "email_type": row[_EMAIL_TYPE], "status": row[_STATUS],
        "merge_fields": merge,
    }
    if ctx.interest_ids:
        chosen = row[_INTERESTS]
        doc["interests"] = {iid: marker in chosen for iid, marker in ctx.interest_markers}
    doc["stats"] = {"avg_open_rate": row[_OPEN_RATE], "avg_click_rate": row[_CLICK_RATE]}
    doc["ip_signup"] = row[_IP_SIGNUP]
    doc["timestamp_signup"] = row[_TS_SIGNUP]
    doc["ip_opt"] = row[_IP_OPT]
    doc["timestamp_opt"] = row[_TS_OPT]
    doc["member_rating"] = row[_RATING]
    doc["last_changed"] = row[_CHANGED]
    doc["language"] = row[_LANGUAGE]
    doc["vip"] = bool(row[_VIP])
    doc["email_client"] = row[_CLIENT]
    doc["location"] = orjson.loads(row[_LOCATION])
    doc["source"] = row[_SOURCE]
    doc["tags_count"] = len(tags)
    doc["tags"] = [{"id": t[0], "name": t[1]} for t in tags]
    doc["list_id"] = ctx.id
    if links:
        doc["_links"] = member_links_json(ctx.href, row[_HASH])
    return doc


def page_rows(conn: sqlite3.Connection, where: str, args: list[Any], order: str, count: int, offset: int,
              ) -> list[tuple[Any, ...]]:
    """One page of members: first the seqs from the covering index, then only those rows.

    ``OFFSET`` makes SQLite step over every skipped row; stepping over index entries instead of
    whole member rows keeps a deep page (offset 300,000) nearly as fast as the first one.
    """
    seqs = [r[0] for r in conn.execute(f"SELECT seq FROM members WHERE {where} ORDER BY {order} LIMIT ? OFFSET ?",
                                       (*args, count, offset))]
    if not seqs:
        return []
    cursor = conn.cursor()
    cursor.row_factory = None  # plain tuples: cheaper to build than sqlite3.Row
    by_seq = {r[_SEQ]: r for r in cursor.execute(
        f"SELECT * FROM members WHERE seq IN ({','.join('?' * len(seqs))})", seqs)}
    return [by_seq[s] for s in seqs]


def render_rows(conn: sqlite3.Connection, ctx: ListCtx, rows: Sequence[Sequence[Any]], links: bool = True,
                ) -> list[dict[str, Any]]:
    tags = tags_of(conn, [r[_SEQ] for r in rows])
    return [render_member(r, ctx, tags.get(r[_SEQ], []), links) for r in rows]


def valid_email(value: Any) -> str:
    """The address as given (surrounding blanks dropped), or Mailchimp's "looks fake" 400."""
    if not isinstance(value, str) or not value.strip():
        raise invalid(VALIDATION_DETAIL, [{"field": "email_address", "message": "This value should not be blank."}])
    email = value.strip()
    if not _EMAIL.match(email) or ".." in email:
        raise invalid(f"{email} looks fake or invalid, please enter a real email address.",
                      [{"field": "email_address", "message": "Please provide a valid email address."}])
    return email


def _status(value: Any, field: str) -> str:
    if value not in WRITE_STATUSES:
        raise invalid(VALIDATION_DETAIL, [{"field": field, "message":
                                           f"Value must be one of: {', '.join(WRITE_STATUSES)}"}])
    return value


def _timestamp(body: dict[str, Any], key: str, current: str) -> str:
    value = body.get(key)
    if value in (None, ""):
        return current
    try:
        return timeutil.normalize(str(value))
    except ValueError:
        raise invalid(VALIDATION_DETAIL, [{"field": key, "message": "Please provide a valid ISO 8601 time."}]) from None


def _interests(ctx: ListCtx, body: dict[str, Any], current: str) -> str:
    wanted = body.get("interests")
    if wanted is None:
        return current
    if not isinstance(wanted, dict):
        raise invalid(VALIDATION_DETAIL, [{"field": "interests", "message": "Schema describes object"}])
    chosen = {i for i in current.split(",") if i}
    for iid, on in wanted.items():
        if iid not in ctx.interest_ids:
            raise invalid(f"Invalid interest ID: '{iid}'.")
        (chosen.add if on else chosen.discard)(iid)
    ordered = [i for i in ctx.interest_ids if i in chosen]
    return "," + ",".join(ordered) + "," if ordered else ""


def write_member(conn: sqlite3.Connection, ctx: ListCtx, body: dict[str, Any], existing: sqlite3.Row | None, *,
                 status_if_new: str | None, now: str, skip_merge_validation: bool = False,
                 last_changed: str | None = None) -> int:
    """Create or update one member and return its ``seq``.

    :param existing: the stored member, or None to create
    :param status_if_new: status for a new (or archived) member when the body has none; None
        for PATCH, which never creates and keeps an archived member archived
    :param last_changed: explicit ``last_changed`` (private seeding API); default ``now``
    :raises ApiError: the 400 Mailchimp gives for this body
    """
    if "email_address" in body or existing is None:
        email = valid_email(body.get("email_address"))
    else:
        email = existing["email_address"]
    digest = email_hash(email)
    if body.get("status") is not None:
        _status(body["status"], "status")
    if existing is None or (existing["status"] == "archived" and status_if_new):
        status = body.get("status") or status_if_new
        if not status:
            raise invalid(VALIDATION_DETAIL, [{"field": "status", "message": "This value should not be blank."}])
        _status(status, "status")
    else:
        status = body.get("status") or existing["status"]
    if existing is None and status != "pending" and conn.execute(
            "SELECT 1 FROM forgotten WHERE list_id=? AND hash=?", (ctx.id, digest)).fetchone():
        raise ApiError(400, f"{email} was permanently deleted and cannot be re-imported. The contact must "
                       "re-subscribe to get back on the list.", title="Forgotten Email Not Subscribed")
    if existing is not None and digest != existing["hash"] and conn.execute(
            "SELECT 1 FROM members WHERE list_id=? AND hash=?", (ctx.id, digest)).fetchone():
        raise ApiError(400, f"{email} is already a list member. Use PUT to insert or update list members.",
                       title="Member Exists")
    incoming = body.get("merge_fields")
    if incoming is not None and not isinstance(incoming, dict):
        raise invalid(VALIDATION_DETAIL, [{"field": "merge_fields", "message": "Schema describes object"}])
    current_merge = orjson.loads(existing["merge_fields"]) if existing is not None else None
    merge, errors = merge_values(ctx.fields, incoming, current_merge, skip_merge_validation)
    raise_merge_errors(errors)
    email_type = body.get("email_type") or (existing["email_type"] if existing is not None else "html")
    if email_type not in ("html", "text"):
        raise invalid(VALIDATION_DETAIL, [{"field": "email_type", "message": "Value must be one of: html, text"}])
    old_status = existing["status"] if existing is not None else None
    opt = existing["timestamp_opt"] if existing is not None else ""
    if status == "subscribed" and old_status != "subscribed" and not body.get("timestamp_opt"):
        opt = now
    location = orjson.loads(existing["location"]) if existing is not None else _empty_location()
    if isinstance(body.get("location"), dict):
        for key in ("latitude", "longitude"):
            if isinstance(body["location"].get(key), (int, float)):
                location[key] = body["location"][key]
    values = {
        "hash": digest, "email_address": email, "email_type": email_type, "status": status,
        "merge_fields": orjson.dumps(merge).decode(),
        "interests": _interests(ctx, body, existing["interests"] if existing is not None else ""),
        "ip_signup": str(body.get("ip_signup", existing["ip_signup"] if existing is not None else "")),
        "timestamp_signup": _timestamp(body, "timestamp_signup",
                                       existing["timestamp_signup"] if existing is not None else ""),
        "ip_opt": str(body.get("ip_opt", existing["ip_opt"] if existing is not None else "")),
        "timestamp_opt": _timestamp(body, "timestamp_opt", opt),
        "language": str(body.get("language", existing["language"] if existing is not None else "")),
        "vip": int(bool(body.get("vip", existing["vip"] if existing is not None else False))),
        "location": orjson.dumps(location).decode(),
        "last_changed": last_changed or now,
    }
    if existing is None:
        values.update({"list_id": ctx.id, "unique_email_id": new_hex_id(10), "contact_id": secrets.token_hex(16),
                       "web_id": secrets.randbelow(900_000_000) + 100_000_000, "avg_open_rate": 0.0,
                       "avg_click_rate": 0.0, "member_rating": 2, "email_client": "", "source": "API - Generic"})
        cols = ", ".join(values)
        seq = conn.execute(f"INSERT INTO members({cols}) VALUES({', '.join('?' * len(values))})",
                           tuple(values.values())).lastrowid
    else:
        seq = existing["seq"]
        sets = ", ".join(f"{k}=?" for k in values)
        conn.execute(f"UPDATE members SET {sets} WHERE seq=?", (*values.values(), seq))
    if status != old_status and status in ("subscribed", "unsubscribed"):
        key = "$.stats_last_sub_date" if status == "subscribed" else "$.stats_last_unsub_date"
        conn.execute("UPDATE lists SET doc=json_set(doc, ?, ?) WHERE id=?", (key, now, ctx.id))
    if isinstance(body.get("tags"), list):
        names = [t if isinstance(t, str) else t.get("name") for t in body["tags"]]
        apply_tags(conn, ctx.id, seq, [(n, True) for n in names if isinstance(n, str) and n.strip()], now)
    return seq


def _empty_location() -> dict[str, Any]:
    return {"latitude": 0, "longitude": 0, "gmtoff": 0, "dstoff": 0, "country_code": "", "timezone": ""}


def apply_tags(conn: sqlite3.Connection, list_id: str, seq: int, changes: list[tuple[str, bool]], now: str,
               sync: bool = False) -> None:
    """Add (active) or remove (inactive) tags of one member; a new tag name creates the tag.

    :param sync: also drop every tag of the member not named active in ``changes``
    """
    keep: set[int] = set()
    for name, active in changes:
        row = conn.execute("SELECT id FROM segments WHERE list_id=? AND type='static' AND name=?",
                           (list_id, name.strip())).fetchone()
        if row is None and not active:
            continue
        tag_id = row[0] if row else conn.execute(
            "INSERT INTO segments(list_id, name, type, created_at, updated_at, options) VALUES(?,?,'static',?,?,'{}')",
            (list_id, name.strip(), now, now)).lastrowid
        if active:
            keep.add(tag_id)
            changed = conn.execute("INSERT OR IGNORE INTO segment_members VALUES(?,?,?)", (tag_id, seq, now)).rowcount
        else:
            changed = conn.execute("DELETE FROM segment_members WHERE segment_id=? AND member_seq=?",
                                   (tag_id, seq)).rowcount
        if changed:
            conn.execute("UPDATE segments SET updated_at=? WHERE id=?", (now, tag_id))
    if sync:
        for (tag_id,) in conn.execute(
                "SELECT sm.segment_id FROM segment_members sm JOIN segments s ON s.id=sm.segment_id "
                "WHERE sm.member_seq=? AND s.type='static'", (seq,)).fetchall():
            if tag_id not in keep:
                conn.execute("DELETE FROM segment_members WHERE segment_id=? AND member_seq=?", (tag_id, seq))
                conn.execute("UPDATE segments SET updated_at=? WHERE id=?", (now, tag_id))


def delete_permanently(conn: sqlite3.Connection, row: sqlite3.Row) -> None:
    """Erase a member and, as Mailchimp does, all of its campaign activity; remember the address."""
    seq = row["seq"]
    for table, column in (("segment_members", "member_seq"), ("sends", "member_seq"),
                          ("activity", "member_seq"), ("unsubscribes", "member_seq"), ("members", "seq")):
        conn.execute(f"DELETE FROM {table} WHERE {column}=?", (seq,))
    conn.execute("INSERT OR IGNORE INTO forgotten VALUES(?, ?)", (row["list_id"], row["hash"]))
