"""What rendering or writing members of one audience needs, loaded once per request."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sandbox.mailchimp.lookups import require_list
from sandbox.mailchimp.mergefields import MergeField, load_fields

if TYPE_CHECKING:
    import sqlite3


@dataclass
class ListCtx:
    """One audience: its merge fields (in display order), its interest ids, its URL."""

    id: str
    name: str
    fields: list[MergeField]
    interest_ids: list[str]
    href: str

    @functools.cached_property
    def tags(self) -> list[str]:
        return [f.tag for f in self.fields]

    @functools.cached_property
    def interest_markers(self) -> list[tuple[str, str]]:
        """``(id, ",id,")``: how a chosen interest appears in a member's stored interests."""
        return [(iid, f",{iid},") for iid in self.interest_ids]


def load_ctx(conn: sqlite3.Connection, list_id: str, base: str) -> ListCtx:
    row = require_list(conn, list_id)
    interest_ids = [r[0] for r in conn.execute("SELECT id FROM interests WHERE list_id=? ORDER BY seq", (list_id,))]
    return ListCtx(list_id, row["name"], load_fields(conn, list_id), interest_ids, f"{base}/lists/{list_id}")
