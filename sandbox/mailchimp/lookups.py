"""Finding things by the identifiers the API accepts, and minting new identifiers.

A member path segment may be the MD5 of the lower-cased email, the email itself, or the
member's ``contact_id`` (Mailchimp accepts all three).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from typing import TYPE_CHECKING

from sandbox.mailchimp.errors import not_found

if TYPE_CHECKING:
    import sqlite3

_MD5 = re.compile(r"^[0-9a-f]{32}$")


def email_hash(email: str) -> str:
    """Mailchimp's subscriber hash: MD5 of the lower-cased address."""
    return hashlib.md5(email.strip().lower().encode("utf-8")).hexdigest()  # noqa: S324 - the API's own id


def new_hex_id(length: int = 10) -> str:
    return secrets.token_hex(length // 2 + 1)[:length]


def require_list(conn: sqlite3.Connection, list_id: str) -> sqlite3.Row:
    row = conn.execute("SELECT * FROM lists WHERE id=?", (list_id,)).fetchone()
    if row is None:
        raise not_found()
    return row


def subscriber_hash(key: str) -> str | None:
    """The hash a path segment stands for, when it is a hash or an email (None otherwise)."""
    key = key.strip()
    if _MD5.match(key.lower()):
        return key.lower()
    if "@" in key:
        return email_hash(key)
    return None


def find_member(conn: sqlite3.Connection, list_id: str, key: str) -> sqlite3.Row | None:
    digest = subscriber_hash(key)
    if digest is not None:
        row = conn.execute("SELECT * FROM members WHERE list_id=? AND hash=?", (list_id, digest)).fetchone()
        if row is not None or "@" in key:
            return row
    return conn.execute("SELECT * FROM members WHERE list_id=? AND contact_id=?", (list_id, key)).fetchone()


def require_member(conn: sqlite3.Connection, list_id: str, key: str) -> sqlite3.Row:
    require_list(conn, list_id)
    row = find_member(conn, list_id, key)
    if row is None:
        raise not_found()
    return row
