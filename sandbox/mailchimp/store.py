"""SQLite state of the Mailchimp emulator: schema, connections, the write lock.

One database file per state dir, in WAL mode so that readers never wait for a writer. Each
server thread gets its own connection (SQLite connections must not be shared across
threads); writes take one process-wide lock and ``BEGIN IMMEDIATE`` so that concurrent writers
queue instead of failing with ``database is locked``.

Indexes follow the API's filters: ``(list_id, last_changed)`` for the hourly window,
``(list_id, status)`` for status filters and list stats, and ``(list_id)`` which, holding the
rowid, gives the stable insertion order that offset paging relies on.
"""

from __future__ import annotations

import sqlite3
import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import orjson

from sandbox.mailchimp.timeutil import Clock

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

DB_NAME = "mailchimp.sqlite3"

TABLES = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS lists(
  seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, web_id INTEGER NOT NULL, name TEXT NOT NULL,
  date_created TEXT NOT NULL, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS merge_fields(
  list_id TEXT NOT NULL, merge_id INTEGER NOT NULL, tag TEXT NOT NULL, name TEXT NOT NULL,
  type TEXT NOT NULL, required INTEGER NOT NULL, default_value TEXT NOT NULL, public INTEGER NOT NULL,
  display_order INTEGER NOT NULL, options TEXT NOT NULL, help_text TEXT NOT NULL,
  PRIMARY KEY(list_id, merge_id), UNIQUE(list_id, tag));
CREATE TABLE IF NOT EXISTS interest_categories(
  seq INTEGER PRIMARY KEY, list_id TEXT NOT NULL, id TEXT NOT NULL UNIQUE, title TEXT NOT NULL,
  display_order INTEGER NOT NULL, type TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS interests(
  seq INTEGER PRIMARY KEY, list_id TEXT NOT NULL, category_id TEXT NOT NULL, id TEXT NOT NULL UNIQUE,
  name TEXT NOT NULL, display_order INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS members(
  seq INTEGER PRIMARY KEY, list_id TEXT NOT NULL, hash TEXT NOT NULL, email_address TEXT NOT NULL,
  unique_email_id TEXT NOT NULL, contact_id TEXT NOT NULL, web_id INTEGER NOT NULL,
  email_type TEXT NOT NULL, status TEXT NOT NULL, merge_fields TEXT NOT NULL, interests TEXT NOT NULL,
  avg_open_rate REAL NOT NULL, avg_click_rate REAL NOT NULL, ip_signup TEXT NOT NULL,
  timestamp_signup TEXT NOT NULL, ip_opt TEXT NOT NULL, timestamp_opt TEXT NOT NULL,
  member_rating INTEGER NOT NULL, last_changed TEXT NOT NULL, language TEXT NOT NULL,
  vip INTEGER NOT NULL, email_client TEXT NOT NULL, location TEXT NOT NULL, source TEXT NOT NULL,
  UNIQUE(list_id, hash));
CREATE TABLE IF NOT EXISTS forgotten(list_id TEXT NOT NULL, hash TEXT NOT NULL, PRIMARY KEY(list_id, hash));
CREATE TABLE IF NOT EXISTS segments(
  id INTEGER PRIMARY KEY, list_id TEXT NOT NULL, name TEXT NOT NULL, type TEXT NOT NULL,
  created_at TEXT NOT NULL, updated_at TEXT NOT NULL, options TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS segment_members(
  segment_id INTEGER NOT NULL, member_seq INTEGER NOT NULL, added_at TEXT NOT NULL,
  PRIMARY KEY(segment_id, member_seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS campaigns(
  seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, web_id INTEGER NOT NULL, type TEXT NOT NULL,
  status TEXT NOT NULL, list_id TEXT NOT NULL, segment_id INTEGER, create_time TEXT NOT NULL,
  send_time TEXT NOT NULL, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sends(
  campaign_seq INTEGER NOT NULL, member_seq INTEGER NOT NULL, status TEXT NOT NULL,
  absplit_group TEXT NOT NULL, PRIMARY KEY(campaign_seq, member_seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS activity(
  id INTEGER PRIMARY KEY, campaign_seq INTEGER NOT NULL, member_seq INTEGER NOT NULL,
  action TEXT NOT NULL, type TEXT NOT NULL, timestamp TEXT NOT NULL, url TEXT NOT NULL, ip TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS unsubscribes(
  campaign_seq INTEGER NOT NULL, member_seq INTEGER NOT NULL, timestamp TEXT NOT NULL,
  reason TEXT NOT NULL, PRIMARY KEY(campaign_seq, member_seq)) WITHOUT ROWID;
"""

# Column order of ``SELECT * FROM members``: rendering a 1000-member page indexes rows by position,
# several times faster than sqlite3.Row's lookup by name. Checked against the table at start-up.
MEMBER_COLUMNS = ("seq", "list_id", "hash", "email_address", "unique_email_id", "contact_id", "web_id", "email_type",
                  "status", "merge_fields", "interests", "avg_open_rate", "avg_click_rate", "ip_signup",
                  "timestamp_signup", "ip_opt", "timestamp_opt", "member_rating", "last_changed", "language", "vip",
                  "email_client", "location", "source")

INDEXES = """
CREATE INDEX IF NOT EXISTS members_list ON members(list_id);
CREATE INDEX IF NOT EXISTS members_changed ON members(list_id, last_changed);
CREATE INDEX IF NOT EXISTS members_status ON members(list_id, status);
CREATE INDEX IF NOT EXISTS members_opt ON members(list_id, timestamp_opt);
CREATE INDEX IF NOT EXISTS members_ueid ON members(unique_email_id);
CREATE INDEX IF NOT EXISTS members_contact ON members(contact_id);
CREATE INDEX IF NOT EXISTS segment_members_member ON segment_members(member_seq);
CREATE INDEX IF NOT EXISTS segments_list ON segments(list_id);
CREATE INDEX IF NOT EXISTS sends_member ON sends(member_seq);
DROP INDEX IF EXISTS activity_member;
CREATE INDEX IF NOT EXISTS activity_member_time ON activity(campaign_seq, member_seq, timestamp);
CREATE INDEX IF NOT EXISTS activity_time ON activity(campaign_seq, timestamp);
CREATE INDEX IF NOT EXISTS activity_by_member ON activity(member_seq);
"""


class Store:
    """The emulator's state: a SQLite file plus the in-memory clock.

    :param state_dir: directory holding ``mailchimp.sqlite3``
    """

    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self.path = state_dir / DB_NAME
        self.clock = Clock()
        self._local = threading.local()
        self._write_lock = threading.RLock()
        self.generation = 0  # bumped by every committed write; keys the count cache
        self._counts: dict[tuple[str, tuple[Any, ...]], tuple[int, Any]] = {}
        self._columns: dict[tuple[str, tuple[Any, ...]], tuple[int, Any]] = {}
        conn = self.conn()
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(TABLES + INDEXES)
        columns = tuple(r[1] for r in conn.execute("PRAGMA table_info(members)"))
        if columns != MEMBER_COLUMNS:
            raise RuntimeError(f"{self.path}: members columns {columns} differ from {MEMBER_COLUMNS}; use --reseed")

    def conn(self) -> sqlite3.Connection:
        """This thread's connection (opened on first use)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA cache_size=-65536")
            conn.execute("PRAGMA temp_store=MEMORY")
            self._local.conn = conn
        return conn

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; rolled back when the block raises."""
        with self._write_lock:
            conn = self.conn()
            if conn.in_transaction:  # nested use inside an outer write: join it
                yield conn
                return
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            self.generation += 1

    def count(self, sql: str, args: tuple[Any, ...] | list[Any]) -> int:
        """``SELECT COUNT(*) ...`` remembered until the next write.

        Paging through an audience asks for the same ``total_items`` on every page; on a list of
        300,000 members that count costs more than the page itself.
        """
        return self._remembered(self._counts, 1000, sql, args, lambda rows: rows.fetchone()[0])

    def column(self, sql: str, args: tuple[Any, ...] | list[Any]) -> list[Any]:
        """The first column of every row of ``sql``, remembered until the next write.

        For collections paged by ``offset`` whose pages cannot come from an index range: the
        whole ordered column once, then every page is a slice (not a scan past ``offset`` rows).
        A few are kept (each may hold a campaign's recipients).
        """
        return self._remembered(self._columns, 8, sql, args, lambda rows: [row[0] for row in rows])

    def _remembered(self, cache: dict[tuple[str, tuple[Any, ...]], tuple[int, Any]], most: int, sql: str,
                    args: tuple[Any, ...] | list[Any], read: Callable[[sqlite3.Cursor], Any]) -> Any:
        """``read`` of ``sql``'s cursor, kept in ``cache`` (at most ``most`` entries) until the next write."""
        key, generation = (sql, tuple(args)), self.generation
        hit = cache.get(key)
        if hit is not None and hit[0] == generation:
            return hit[1]
        value = read(self.conn().execute(sql, args))
        if len(cache) >= most:
            cache.clear()
        cache[key] = (generation, value)
        return value

    def meta(self, key: str, default: Any = None) -> Any:
        row = self.conn().execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return orjson.loads(row[0]) if row else default

    def set_meta(self, key: str, value: Any) -> None:
        with self.write() as conn:
            conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)", (key, orjson.dumps(value).decode()))

    def is_seeded(self) -> bool:
        return self.meta("account") is not None
