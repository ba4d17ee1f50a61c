"""Interest categories ("groups") and their interests.

A member's interests are stored as ``,id1,id2,`` so that ``instr`` answers the
``interest_ids``/``interest_match`` member filter in SQL; ``subscriber_count`` is a string in
Mailchimp's responses and stays one here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sandbox.mailchimp.errors import VALIDATION_DETAIL, invalid, not_found
from sandbox.mailchimp.links import collection_links, item_links
from sandbox.mailchimp.lookups import new_hex_id, require_list
from sandbox.mailchimp.params import PAGING, PROJECTION
from sandbox.mailchimp.routing import Api, Call, body_field

if TYPE_CHECKING:
    import sqlite3

api = Api("/3.0")
CATEGORY_TYPES = ("checkboxes", "dropdown", "radio", "hidden")
CATEGORIES = "/lists/{list_id}/interest-categories"


def insert_category(conn: sqlite3.Connection, list_id: str, title: str, type_: str, order: int | None = None,
                    cid: str | None = None) -> str:
    """Insert a category; ``cid`` lets the seed choose reproducible ids."""
    cid = cid or new_hex_id(10)
    if order is None:
        order = conn.execute("SELECT COUNT(*) FROM interest_categories WHERE list_id=?", (list_id,)).fetchone()[0]
    conn.execute("INSERT INTO interest_categories(list_id, id, title, display_order, type) VALUES(?,?,?,?,?)",
                 (list_id, cid, title, order, type_))
    return cid


def insert_interest(conn: sqlite3.Connection, list_id: str, category_id: str, name: str,
                    order: int | None = None, iid: str | None = None) -> str:
    iid = iid or new_hex_id(10)
    if order is None:
        order = conn.execute("SELECT COUNT(*) FROM interests WHERE category_id=?", (category_id,)).fetchone()[0]
    conn.execute("INSERT INTO interests(list_id, category_id, id, name, display_order) VALUES(?,?,?,?,?)",
                 (list_id, category_id, iid, name, order))
    return iid


def _category(conn: sqlite3.Connection, call: Call) -> sqlite3.Row:
    require_list(conn, call.path["list_id"])
    row = conn.execute("SELECT * FROM interest_categories WHERE list_id=? AND id=?",
                       (call.path["list_id"], call.path["interest_category_id"])).fetchone()
    if row is None:
        raise not_found()
    return row


def render_category(row: sqlite3.Row, base: str) -> dict[str, Any]:
    href = f"{base}/lists/{row['list_id']}/interest-categories/{row['id']}"
    return {"list_id": row["list_id"], "id": row["id"], "title": row["title"], "display_order": row["display_order"],
            "type": row["type"], "_links": item_links(href, f"{base}/lists/{row['list_id']}/interest-categories",
                                                      "Lists/InterestCategories")}


def render_interest(conn: sqlite3.Connection, row: sqlite3.Row, base: str) -> dict[str, Any]:
    count = conn.execute("SELECT COUNT(*) FROM members WHERE list_id=? AND status='subscribed' "
                         "AND instr(interests, ?)>0",
                         (row["list_id"], f",{row['id']},")).fetchone()[0]
    parent = f"{base}/lists/{row['list_id']}/interest-categories/{row['category_id']}/interests"
    return {"category_id": row["category_id"], "list_id": row["list_id"], "id": row["id"], "name": row["name"],
            "subscriber_count": str(count), "display_order": row["display_order"],
            "_links": item_links(f"{parent}/{row['id']}", parent, "Lists/InterestCategories/Interests")}


@api.route("GET", CATEGORIES, params=(*PAGING, "type"))
def list_categories(call: Call) -> dict[str, Any]:
    conn = call.store.conn()
    list_id = require_list(conn, call.path["list_id"])["id"]
    count, offset = call.query.page()
    kind = call.query.enum("type", CATEGORY_TYPES)
    rows = [r for r in conn.execute("SELECT * FROM interest_categories WHERE list_id=? ORDER BY seq", (list_id,))
            if kind is None or r["type"] == kind]
    href = f"{call.base}/lists/{list_id}/interest-categories"
    return {"list_id": list_id, "categories": [render_category(r, call.base) for r in rows[offset:offset + count]],
            "total_items": len(rows), "_links": collection_links(href, f"{call.base}/lists/{list_id}",
                                                                 "Lists/InterestCategories")}


@api.route("POST", CATEGORIES, body=True)
def create_category(call: Call) -> dict[str, Any]:
    title = body_field(call, "title", str, required=True)
    kind = body_field(call, "type", str, required=True)
    if kind not in CATEGORY_TYPES:
        raise invalid(VALIDATION_DETAIL, [{"field": "type",
                                           "message": f"Value must be one of: {', '.join(CATEGORY_TYPES)}"}])
    with call.store.write() as conn:
        list_id = require_list(conn, call.path["list_id"])["id"]
        call.path["interest_category_id"] = insert_category(conn, list_id, title, kind,
                                                            body_field(call, "display_order", int))
    return render_category(_category(call.store.conn(), call), call.base)


@api.route("GET", CATEGORIES + "/{interest_category_id}", params=PROJECTION)
def get_category(call: Call) -> dict[str, Any]:
    return render_category(_category(call.store.conn(), call), call.base)


@api.route("DELETE", CATEGORIES + "/{interest_category_id}")
def delete_category(call: Call) -> None:
    with call.store.write() as conn:
        row = _category(conn, call)
        conn.execute("DELETE FROM interests WHERE category_id=?", (row["id"],))
        conn.execute("DELETE FROM interest_categories WHERE id=?", (row["id"],))


@api.route("GET", CATEGORIES + "/{interest_category_id}/interests", params=PAGING)
def list_interests(call: Call) -> dict[str, Any]:
    conn = call.store.conn()
    cat = _category(conn, call)
    count, offset = call.query.page()
    rows = conn.execute("SELECT * FROM interests WHERE category_id=? ORDER BY display_order, seq LIMIT ? OFFSET ?",
                        (cat["id"], count, offset)).fetchall()
    total = conn.execute("SELECT COUNT(*) FROM interests WHERE category_id=?", (cat["id"],)).fetchone()[0]
    href = f"{call.base}/lists/{cat['list_id']}/interest-categories/{cat['id']}"
    return {"interests": [render_interest(conn, r, call.base) for r in rows], "list_id": cat["list_id"],
            "category_id": cat["id"], "total_items": total,
            "_links": collection_links(f"{href}/interests", href, "Lists/InterestCategories/Interests")}


@api.route("POST", CATEGORIES + "/{interest_category_id}/interests", body=True)
def create_interest(call: Call) -> dict[str, Any]:
    name = body_field(call, "name", str, required=True)
    with call.store.write() as conn:
        cat = _category(conn, call)
        iid = insert_interest(conn, cat["list_id"], cat["id"], name, body_field(call, "display_order", int))
    conn = call.store.conn()
    return render_interest(conn, conn.execute("SELECT * FROM interests WHERE id=?", (iid,)).fetchone(), call.base)


def _interest(conn: sqlite3.Connection, call: Call) -> sqlite3.Row:
    cat = _category(conn, call)
    row = conn.execute("SELECT * FROM interests WHERE category_id=? AND id=?",
                       (cat["id"], call.path["interest_id"])).fetchone()
    if row is None:
        raise not_found()
    return row


@api.route("GET", CATEGORIES + "/{interest_category_id}/interests/{interest_id}", params=PROJECTION)
def get_interest(call: Call) -> dict[str, Any]:
    conn = call.store.conn()
    return render_interest(conn, _interest(conn, call), call.base)


@api.route("DELETE", CATEGORIES + "/{interest_category_id}/interests/{interest_id}")
def delete_interest(call: Call) -> None:
    with call.store.write() as conn:
        conn.execute("DELETE FROM interests WHERE id=?", (_interest(conn, call)["id"],))
