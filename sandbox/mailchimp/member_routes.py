"""Endpoints under ``/lists/{list_id}/members`` and batch subscribe (``POST /lists/{list_id}``).

Listing is one indexed SQL query plus one for tags; the default order is insertion order
(``seq``), and every explicit sort falls back to ``seq`` so offset paging never skips or
repeats a member. Time filters are half-open: ``since_*`` keeps values at or after the
instant, ``before_*`` keeps values strictly before it, so consecutive windows tile exactly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sandbox.mailchimp.context import load_ctx
from sandbox.mailchimp.errors import VALIDATION_DETAIL, ApiError, bad_param, invalid
from sandbox.mailchimp.links import collection_links
from sandbox.mailchimp.lookups import email_hash, find_member, require_member
from sandbox.mailchimp.members import (
    STATUSES,
    apply_tags,
    delete_permanently,
    page_rows,
    render_rows,
    tags_of,
    valid_email,
    write_member,
)
from sandbox.mailchimp.params import PAGING, PROJECTION
from sandbox.mailchimp.routing import Api, Call, body_field

if TYPE_CHECKING:
    from sandbox.mailchimp.context import ListCtx

api = Api("/3.0")
LIST_PARAMS = (*PAGING, "email_type", "status", "since_timestamp_opt", "before_timestamp_opt",
               "since_last_changed", "before_last_changed", "unique_email_id", "vip_only", "interest_category_id",
               "interest_ids", "interest_match", "sort_field", "sort_dir", "since_last_campaign", "unsubscribed_since")
BATCH_LIMIT = 500


def _want_links(call: Call, prefix: str) -> bool:
    """Skip building ``_links`` when the response would drop them anyway (a big share of a page)."""
    fields, excluded = call.query.csv("fields"), call.query.csv("exclude_fields")
    if f"{prefix}._links" in excluded or prefix in excluded:
        return False
    return not fields or any(f in (prefix, f"{prefix}._links") for f in fields)


def _filters(call: Call, ctx: ListCtx) -> tuple[list[str], list[Any]]:
    q = call.query
    where, args = ["list_id=?"], [ctx.id]
    status = q.enum("status", STATUSES)
    if status:
        where.append("status=?")
        args.append(status)
    if q.str("email_type"):
        where.append("email_type=?")
        args.append(q.str("email_type"))
    for param, column, op in (("since_timestamp_opt", "timestamp_opt", ">="),
                              ("before_timestamp_opt", "timestamp_opt", "<"),
                              ("since_last_changed", "last_changed", ">="),
                              ("before_last_changed", "last_changed", "<")):
        value = q.time(param)
        if value:
            where.append(f"{column}{op}? AND {column}<>''")
            args.append(value)
    if q.str("unique_email_id"):
        where.append("unique_email_id=?")
        args.append(q.str("unique_email_id"))
    if q.bool("vip_only"):
        where.append("vip=1")
    if q.str("unsubscribed_since"):
        if status not in (None, "unsubscribed"):
            raise bad_param("status", "unsubscribed when unsubscribed_since is used")
        where.append("status='unsubscribed' AND last_changed>=?")
        args.append(q.time("unsubscribed_since"))
    if q.bool("since_last_campaign"):
        if not status:
            raise bad_param("status", "a status when since_last_campaign is used")
        where.append("last_changed>=(SELECT COALESCE(MAX(send_time), '') FROM campaigns "
                     "WHERE list_id=? AND status='sent')")
        args.append(ctx.id)
    interest_sql = _interest_filter(call, ctx)
    if interest_sql:
        where.append(interest_sql[0])
        args.extend(interest_sql[1])
    return where, args


def _interest_filter(call: Call, ctx: ListCtx) -> tuple[str, list[str]] | None:
    q = call.query
    category, ids = q.str("interest_category_id"), q.csv("interest_ids")
    match = q.enum("interest_match", ("any", "all", "none"))
    if not (category or ids or match):
        return None
    if not (category and ids and match):
        raise bad_param("interest_category_id", "interest_category_id, interest_ids and interest_match together")
    conn = call.store.conn()
    known = {r[0] for r in conn.execute("SELECT id FROM interests WHERE list_id=? AND category_id=?",
                                        (ctx.id, category))}
    if not known or any(i not in known for i in ids):
        raise bad_param("interest_ids", "interest ids of the given interest category")
    parts = " OR ".join("instr(interests, ?)>0" for _ in ids) if match != "all" else \
        " AND ".join("instr(interests, ?)>0" for _ in ids)
    sql = f"NOT ({parts})" if match == "none" else f"({parts})"
    return sql, [f",{i}," for i in ids]


@api.route("GET", "/lists/{list_id}/members", params=LIST_PARAMS)
def list_members(call: Call) -> dict[str, Any]:
    conn = call.store.conn()
    ctx = load_ctx(conn, call.path["list_id"], call.base)
    count, offset = call.query.page()
    where, args = _filters(call, ctx)
    order = "seq"
    sort_field = call.query.enum("sort_field", ("timestamp_opt", "timestamp_signup", "last_changed"))
    direction = call.query.enum("sort_dir", ("ASC", "DESC"), "ASC")
    if sort_field:
        order = f"{sort_field} {direction}, seq {direction}"
    clause = " AND ".join(where)
    total = call.store.count(f"SELECT COUNT(*) FROM members WHERE {clause}", args)
    rows = page_rows(conn, clause, args, order, count, offset)
    return {"members": render_rows(conn, ctx, rows, _want_links(call, "members")), "list_id": ctx.id,
            "total_items": total, "_links": collection_links(f"{ctx.href}/members", ctx.href, "Lists/Members")}


def _one(call: Call, seq: int) -> dict[str, Any]:
    conn = call.store.conn()
    ctx = load_ctx(conn, call.path["list_id"], call.base)
    row = conn.execute("SELECT * FROM members WHERE seq=?", (seq,)).fetchone()
    return render_rows(conn, ctx, [row])[0]


@api.route("POST", "/lists/{list_id}/members", params=("skip_merge_validation",), body=True)
def add_member(call: Call) -> dict[str, Any]:
    email = valid_email(call.body.get("email_address"))
    if not call.body.get("status"):
        raise invalid(VALIDATION_DETAIL, [{"field": "status", "message": "This value should not be blank."}])
    with call.store.write() as conn:
        ctx = load_ctx(conn, call.path["list_id"], call.base)
        existing = find_member(conn, ctx.id, email_hash(email))
        if existing is not None and existing["status"] != "archived":
            raise ApiError(400, f"{email} is already a list member. Use PUT to insert or update list members.",
                           title="Member Exists")
        seq = write_member(conn, ctx, call.body, existing, status_if_new=call.body["status"],
                           now=call.store.clock.now_text(),
                           skip_merge_validation=call.query.bool("skip_merge_validation"))
    return _one(call, seq)


@api.route("GET", "/lists/{list_id}/members/{subscriber_hash}", params=PROJECTION)
def get_member(call: Call) -> dict[str, Any]:
    row = require_member(call.store.conn(), call.path["list_id"], call.path["subscriber_hash"])
    return _one(call, row["seq"])


@api.route("PUT", "/lists/{list_id}/members/{subscriber_hash}", params=("skip_merge_validation",), body=True)
def put_member(call: Call) -> dict[str, Any]:
    email = valid_email(call.body.get("email_address"))
    status_if_new = body_field(call, "status_if_new", str, required=True)
    with call.store.write() as conn:
        ctx = load_ctx(conn, call.path["list_id"], call.base)
        existing = find_member(conn, ctx.id, call.path["subscriber_hash"])
        if existing is None and email_hash(email) != call.path["subscriber_hash"].lower() and \
                call.path["subscriber_hash"].lower() != email.lower():
            raise invalid("The subscriber hash in the path does not match the email_address in the body.")
        seq = write_member(conn, ctx, call.body, existing, status_if_new=status_if_new,
                           now=call.store.clock.now_text(),
                           skip_merge_validation=call.query.bool("skip_merge_validation"))
    return _one(call, seq)


@api.route("PATCH", "/lists/{list_id}/members/{subscriber_hash}", params=("skip_merge_validation",), body=True)
def patch_member(call: Call) -> dict[str, Any]:
    with call.store.write() as conn:
        ctx = load_ctx(conn, call.path["list_id"], call.base)
        existing = require_member(conn, ctx.id, call.path["subscriber_hash"])
        seq = write_member(conn, ctx, call.body, existing, status_if_new=None, now=call.store.clock.now_text(),
                           skip_merge_validation=call.query.bool("skip_merge_validation"))
    return _one(call, seq)


@api.route("DELETE", "/lists/{list_id}/members/{subscriber_hash}")
def archive_member(call: Call) -> None:
    with call.store.write() as conn:
        row = require_member(conn, call.path["list_id"], call.path["subscriber_hash"])
        conn.execute("UPDATE members SET status='archived', last_changed=? WHERE seq=?",
                     (call.store.clock.now_text(), row["seq"]))


@api.route("POST", "/lists/{list_id}/members/{subscriber_hash}/actions/delete-permanent")
def delete_member(call: Call) -> None:
    with call.store.write() as conn:
        delete_permanently(conn, require_member(conn, call.path["list_id"], call.path["subscriber_hash"]))


@api.route("GET", "/lists/{list_id}/members/{subscriber_hash}/tags", params=PAGING)
def member_tags(call: Call) -> dict[str, Any]:
    conn = call.store.conn()
    row = require_member(conn, call.path["list_id"], call.path["subscriber_hash"])
    count, offset = call.query.page()
    tags = tags_of(conn, [row["seq"]]).get(row["seq"], [])
    href = f"{call.base}/lists/{row['list_id']}/members/{row['hash']}"
    return {"tags": [{"id": i, "name": n, "date_added": d} for i, n, d in tags[offset:offset + count]],
            "total_items": len(tags), "_links": collection_links(f"{href}/tags", href, "Lists/Members/Tags")}


@api.route("POST", "/lists/{list_id}/members/{subscriber_hash}/tags", body=True)
def update_member_tags(call: Call) -> None:
    tags = body_field(call, "tags", list, required=True)
    changes = []
    for tag in tags:
        if not (isinstance(tag, dict) and isinstance(tag.get("name"), str)
                and tag.get("status") in ("active", "inactive")):
            raise invalid(VALIDATION_DETAIL, [{"field": "tags", "message":
                                               "Each tag needs a name and a status of active or inactive."}])
        changes.append((tag["name"], tag["status"] == "active"))
    with call.store.write() as conn:
        row = require_member(conn, call.path["list_id"], call.path["subscriber_hash"])
        now = call.store.clock.now_text()
        apply_tags(conn, row["list_id"], row["seq"], changes, now)
        conn.execute("UPDATE members SET last_changed=? WHERE seq=?", (now, row["seq"]))


@api.route("POST", "/lists/{list_id}", params=("skip_merge_validation", "skip_duplicate_check"), body=True)
def batch_subscribe(call: Call) -> dict[str, Any]:
    """Up to 500 members; each succeeds or lands in ``errors`` on its own (HTTP 200 either way)."""
    members = body_field(call, "members", list, required=True)
    if len(members) > BATCH_LIMIT:
        raise invalid(f"You can only add or update up to {BATCH_LIMIT} members in a single batch request; "
                      f"this one has {len(members)}.")
    update_existing = bool(call.body.get("update_existing", False))
    sync_tags = bool(call.body.get("sync_tags", False))
    skip_dupes = call.query.bool("skip_duplicate_check")
    skip_merge = call.query.bool("skip_merge_validation")
    created: list[int] = []
    updated: list[int] = []
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()
    with call.store.write() as conn:
        ctx = load_ctx(conn, call.path["list_id"], call.base)
        now = call.store.clock.now_text()
        for item in members:
            raw_email = item.get("email_address") if isinstance(item, dict) else None
            try:
                if not isinstance(item, dict):
                    raise invalid("Each member must be a JSON object.")
                email = valid_email(raw_email)
                digest = email_hash(email)
                if digest in seen:
                    if skip_dupes:
                        continue
                    raise invalid(f"{email} appears more than once in this request.")
                seen.add(digest)
                existing = conn.execute("SELECT * FROM members WHERE list_id=? AND hash=?", (ctx.id, digest)).fetchone()
                if existing is not None and existing["status"] != "archived" and not update_existing:
                    errors.append({"email_address": email, "error_code": "ERROR_CONTACT_EXISTS", "field": "",
                                   "field_message": "",
                                   "error": f"{email} is already a list member, do you want to update? please "
                                            "provide update_existing:true in the request body"})
                    continue
                conn.execute("SAVEPOINT member")
                try:
                    body = {k: v for k, v in item.items() if k != "tags"}
                    # Members of a batch may carry status_if_new (Mailchimp's SDK types have it): it
                    # applies to new members only, so an update keeps an unsubscribe.
                    seq = write_member(conn, ctx, body, existing,
                                       status_if_new=item.get("status") or item.get("status_if_new") or None,
                                       now=now, skip_merge_validation=skip_merge)
                    if isinstance(item.get("tags"), list):
                        names = [t for t in item["tags"] if isinstance(t, str) and t.strip()]
                        apply_tags(conn, ctx.id, seq, [(n, True) for n in names], now, sync=sync_tags)
                except ApiError:
                    conn.execute("ROLLBACK TO member")
                    raise
                finally:
                    conn.execute("RELEASE member")
                (created if existing is None else updated).append(seq)
            except ApiError as err:
                first = (err.errors or [{}])[0]
                errors.append({"email_address": raw_email if isinstance(raw_email, str) else "",
                               "error": err.detail, "error_code": "ERROR_GENERIC",
                               "field": first.get("field", ""), "field_message": first.get("message", "")})
        rows = {r["seq"]: r for r in conn.execute(
            f"SELECT * FROM members WHERE seq IN ({','.join('?' * len(created + updated))})",
            created + updated)} if created or updated else {}
        rendered = dict(zip(rows, render_rows(conn, ctx, list(rows.values())), strict=True))
    return {"new_members": [rendered[s] for s in created], "updated_members": [rendered[s] for s in updated],
            "errors": errors, "total_created": len(created), "total_updated": len(updated),
            "error_count": len(errors),
            "_links": collection_links(ctx.href, f"{call.base}/lists", "Lists", create=False)}
