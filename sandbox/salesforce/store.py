"""SQLite state of the emulated org: one typed table per sObject, plus sandbox bookkeeping.

Each thread gets its own connection (WAL lets readers run while a bulk job writes); writes are
serialised by one lock and run in explicit ``BEGIN IMMEDIATE`` transactions. A record's Id is
derived from its rowid (see :mod:`ids`), handed out from ``sqlite_sequence`` so ids are never
reused, even after a hard delete.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sandbox.salesforce import ids
from sandbox.salesforce.schema import load_schema
from sandbox.salesforce.values import format_datetime

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from sandbox.salesforce.schema import ObjectDef

DB_NAME = "salesforce.sqlite3"
INTEGRATION_USER = ("integration@mcsf.sandbox", "Integration", "User", "Integration User")


def q(name: str) -> str:
    """Quote an identifier that comes from the schema (never from a request)."""
    return '"' + name.replace('"', '""') + '"'


class Store:
    """The org's database.

    :param state_dir: where ``salesforce.sqlite3`` lives
    :param metadata: the ``force-app`` folder to read the schema from (default: env or repo)
    """

    def __init__(self, state_dir: Path, metadata: Path | None = None) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self.state_dir = state_dir
        self.path = state_dir / DB_NAME
        self._local = threading.local()
        self.write_lock = threading.RLock()
        self._clock_lock = threading.Lock()
        self._last_ms = 0
        conn = self.conn()
        conn.execute("PRAGMA page_size=16384")  # only takes effect on a new file; measurably faster inserts
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(
            "CREATE TABLE IF NOT EXISTS _sf_prefixes (name TEXT PRIMARY KEY, prefix TEXT UNIQUE);"
            "CREATE TABLE IF NOT EXISTS _sf_kv (key TEXT PRIMARY KEY, value TEXT);"
            "CREATE TABLE IF NOT EXISTS _sf_tokens (token TEXT PRIMARY KEY, issued REAL, revoked INTEGER, ttl REAL);"
            "CREATE TABLE IF NOT EXISTS _sf_jobs (id TEXT PRIMARY KEY, kind TEXT, info TEXT);"
        )
        prefixes = dict(conn.execute("SELECT name, prefix FROM _sf_prefixes").fetchall())
        self.schema = load_schema(metadata, prefixes)
        with self.transaction() as tx:
            tx.executemany("INSERT OR IGNORE INTO _sf_prefixes VALUES (?, ?)", sorted(prefixes.items()))
            for obj in self.schema.objects.values():
                self._ensure_table(tx, obj)
        self._planner_hints(conn)
        self.user_id = self._ensure_user()

    # -- connections and transactions ---------------------------------------------------------
    def conn(self) -> sqlite3.Connection:
        c = getattr(self._local, "conn", None)
        if c is None:
            c = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=60)
            c.execute("PRAGMA synchronous=NORMAL")
            c.execute("PRAGMA temp_store=MEMORY")
            c.execute("PRAGMA cache_size=-262144")  # 256 MB: the indexes of a million-row object stay hot
            c.execute("PRAGMA mmap_size=1073741824")
            self._local.conn = c
        return c

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self.write_lock:
            c = self.conn()
            c.execute("BEGIN IMMEDIATE")
            try:
                yield c
            except BaseException:
                c.execute("ROLLBACK")
                raise
            c.execute("COMMIT")

    def now(self) -> str:
        """A UTC timestamp that strictly increases per millisecond across calls (audit fields)."""
        with self._clock_lock:
            ms = max(int(time.time() * 1000), self._last_ms + 1)
            self._last_ms = ms
        return format_datetime(datetime.fromtimestamp(ms / 1000, tz=UTC))

    # -- schema -> tables --------------------------------------------------------------------
    def _ensure_table(self, c: sqlite3.Connection, obj: ObjectDef) -> None:
        table = q(obj.name)
        cols = [f"{q(f.name)} {f.sql_type} COLLATE {f.collation}" for f in obj.fields.values() if f.name != "Id"]
        c.execute(f"CREATE TABLE IF NOT EXISTS {table} (_n INTEGER PRIMARY KEY AUTOINCREMENT, "
                  f"\"Id\" TEXT NOT NULL UNIQUE, {', '.join(cols)})")
        have = {row[1] for row in c.execute(f"PRAGMA table_info({table})")}
        for f in obj.fields.values():
            if f.name not in have:  # metadata gained a field since this state dir was created
                c.execute(f"ALTER TABLE {table} ADD COLUMN {q(f.name)} {f.sql_type} COLLATE {f.collation}")
                if f.default is not None:
                    c.execute(f"UPDATE {table} SET {q(f.name)} = ?", (int(f.default) if f.type == "boolean"
                                                                      else f.default,))
        for f in obj.fields.values():
            index = q(f"ix_{obj.name}_{f.name}")
            if f.unique:
                c.execute(f"CREATE UNIQUE INDEX IF NOT EXISTS {index} ON {table} ({q(f.name)}) WHERE IsDeleted = 0")
            elif f.name == "IsDeleted":  # only deleted rows: keeps "count minus deleted" fast, inserts cheap
                c.execute(f"CREATE INDEX IF NOT EXISTS {index} ON {table} (IsDeleted) WHERE IsDeleted = 1")
            elif f.external_id or f.type == "email" or f.name == "SystemModstamp":
                c.execute(f"CREATE INDEX IF NOT EXISTS {index} ON {table} ({q(f.name)})")

    def _planner_hints(self, c: sqlite3.Connection) -> None:
        """Fixed index statistics, so SQLite picks the selective indexes even on a fresh, empty org."""
        c.execute("ANALYZE sqlite_schema")  # creates sqlite_stat1
        rows = []
        for table, index, unique in c.execute(
                "SELECT m.tbl_name, m.name, il.\"unique\" FROM sqlite_schema m "
                "JOIN pragma_index_list(m.tbl_name) il ON il.name = m.name WHERE m.type = 'index'"):
            if table.startswith(("_sf_", "sqlite")):
                continue
            spread = 1 if unique else 2
            rows.append((table, index, f"1000000 {spread}"))
        with self.write_lock:
            c.execute("BEGIN IMMEDIATE")
            c.execute("DELETE FROM sqlite_stat1")
            c.executemany("INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES (?, ?, ?)", rows)
            c.execute("COMMIT")
        c.execute("ANALYZE sqlite_schema")  # reload the statistics into this connection

    def _ensure_user(self) -> str:
        c = self.conn()
        row = c.execute('SELECT "Id" FROM "User" ORDER BY _n LIMIT 1').fetchone()
        if row:
            return row[0]
        user_id = ids.encode("005", 1)
        now = self.now()
        username, first, last, name = INTEGRATION_USER
        with self.transaction() as tx:
            tx.execute(
                'INSERT INTO "User" (_n, "Id", IsDeleted, Username, FirstName, LastName, Name, Email, Alias, '
                "IsActive, CreatedDate, CreatedById, LastModifiedDate, LastModifiedById, SystemModstamp) "
                "VALUES (1, ?, 0, ?, ?, ?, ?, ?, 'integ', 1, ?, ?, ?, ?, ?)",
                (user_id, username, first, last, name, username, now, user_id, now, user_id, now),
            )
        return user_id

    # -- helpers used by the writers and readers ---------------------------------------------
    def allocate(self, c: sqlite3.Connection, obj: ObjectDef, n: int) -> int:
        """Reserve ``n`` rowids (inside a write transaction); returns the first."""
        row = c.execute("SELECT seq FROM sqlite_sequence WHERE name = ?", (obj.name,)).fetchone()
        start = (row[0] if row else 0) + 1
        if row:
            c.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = ?", (start + n - 1, obj.name))
        else:
            c.execute("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (obj.name, start + n - 1))
        return start

    def count(self, obj: ObjectDef, include_deleted: bool = False) -> int:
        where = "" if include_deleted else " WHERE IsDeleted = 0"
        return self.conn().execute(f"SELECT count(*) FROM {q(obj.name)}{where}").fetchone()[0]

    def kv_get(self, key: str) -> str | None:
        row = self.conn().execute("SELECT value FROM _sf_kv WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def kv_set(self, key: str, value: str) -> None:
        with self.transaction() as c:
            c.execute("INSERT OR REPLACE INTO _sf_kv VALUES (?, ?)", (key, value))
