"""Insert, update, upsert and delete of record batches, with Salesforce's validation.

One engine serves every write path (REST sObject rows, sObject Collections, Bulk API 1.0 and 2.0),
so they agree on errors. It works on a :class:`~records.Batch`, the records held column-wise (a
Bulk 2.0 chunk is 10,000 rows and must not cost 10,000 Python objects per step); JSON callers
hand in :class:`~records.RowIn` records to :meth:`Writer.apply`, which packs them into a Batch.
Either way the batch is checked with a handful of set-based queries and written with
``executemany``, inside the caller's store transaction.
"""

from __future__ import annotations

import re
import string
from collections import Counter, defaultdict
from itertools import repeat
from typing import TYPE_CHECKING, Any

from sandbox.salesforce import ids
from sandbox.salesforce.records import UNSET, Batch, Outcome, err
from sandbox.salesforce.store import q

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable

    from sandbox.salesforce.records import Result, RowIn
    from sandbox.salesforce.schema import FieldDef, ObjectDef
    from sandbox.salesforce.store import Store

_FOLD = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)  # SQLite NOCASE folds ASCII only
CHUNK = 5000
LOCK_ERROR = {"statusCode": "UNABLE_TO_LOCK_ROW", "fields": [],
              "message": "unable to obtain exclusive access to this record or 1 records"}


def fold(f: FieldDef) -> Callable[[Any], Any]:
    if f.collation == "NOCASE":
        return lambda v: (v.lower() if v.isascii() else v.translate(_FOLD)) if isinstance(v, str) else v
    return lambda v: v


def fold_all(f: FieldDef, values: list[str]) -> list[str]:
    """:func:`fold` over a column of strings, without a call per value."""
    if f.collation != "NOCASE":
        return values
    return [v.lower() if v.isascii() else v.translate(_FOLD) for v in values]


def _pick(col: list[Any], rows: list[int], n: int) -> list[Any]:
    """``col`` at ``rows`` (no copy when that is every row)."""
    return col if len(rows) == n else [col[i] for i in rows]


def _chunks(items: list[Any]) -> Any:
    for i in range(0, len(items), CHUNK):
        yield items[i : i + CHUNK]


def select_in(c: sqlite3.Connection, table: str, cols: str, col: str, values: list[Any],
              extra: str = "") -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for part in _chunks(values):
        marks = ",".join("?" * len(part))
        out += c.execute(f"SELECT {cols} FROM {q(table)} WHERE {q(col)} IN ({marks}){extra}", part).fetchall()
    return out


class Writer:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.schema = store.schema

    def apply(self, c: sqlite3.Connection, obj: ObjectDef, op: str, rows: list[RowIn],
              ext: FieldDef | None = None, lock: Callable[[], bool] | None = None) -> list[Result]:
        """Write JSON-shaped records; see :meth:`apply_batch`."""
        return self.apply_batch(c, obj, op, Batch.of_rows(rows), ext, lock).results()

    def apply_batch(self, c: sqlite3.Connection, obj: ObjectDef, op: str, b: Batch,
                    ext: FieldDef | None = None, lock: Callable[[], bool] | None = None) -> Outcome:
        """Write one batch; ``op`` in insert|update|upsert|delete|hardDelete. Results in input order."""
        self._resolve_refs(c, b)
        self._check_refs_exist(c, obj, b)
        if op == "insert":
            targets: list[tuple[int, str] | None] = [None] * b.n
        elif op == "upsert" and ext is not None and ext.name != "Id":
            targets = self._match_keys(c, obj, ext, b)
        else:
            targets = self._match_ids(c, obj, b)
        errs = b.errors
        if op in ("delete", "hardDelete"):
            return self._delete(c, obj, op, targets, b, lock)
        if op == "upsert" and ext is not None and ext.name == "Id":
            for i, t in enumerate(targets):
                if t is None and i not in errs:
                    b.fail(i, err("NOT_FOUND", "Provided external ID field does not exist or is not "
                                  f"accessible: {b.ids[i]}", ["Id"]))
        self._check_required(obj, b, targets)
        self._check_unique(c, obj, b, targets, skip=ext.name if op == "upsert" and ext else None)
        if lock is not None:
            for i in range(b.n):
                if i not in errs and lock():
                    b.fail(i, dict(LOCK_ERROR))
        return self._write(c, obj, b, targets)

    # -- resolution -------------------------------------------------------------------------
    def _resolve_refs(self, c: sqlite3.Connection, b: Batch) -> None:
        ok = b.ok()
        for lookup, parent, pf, keys in b.refs:
            norm = fold(pf)
            wanted = {norm(k) for i in ok if (k := keys[i]) is not UNSET and k is not None}
            hits: dict[Any, list[str]] = defaultdict(list)
            for rid, key in select_in(c, parent.name, f'"Id", {q(pf.name)}', pf.name, list(wanted),
                                      " AND IsDeleted = 0"):
                hits[norm(key)].append(rid)
            col = b.column(lookup.name)
            for i in ok:
                key = keys[i]
                if key is UNSET:
                    continue
                if key is None:
                    col[i] = None
                    continue
                hit = hits.get(norm(key), [])
                if len(hit) == 1:
                    col[i] = hit[0]
                elif not hit:
                    b.fail(i, err("INVALID_FIELD", f"Foreign key external ID: {key} not found for field "
                                  f"{pf.name} in entity {parent.name}", [lookup.name]))
                else:
                    b.fail(i, err("INVALID_FIELD", f"More than 1 record found for external id field "
                                  f"{pf.name}: {', '.join(hit)}", [lookup.name]))

    def _check_refs_exist(self, c: sqlite3.Connection, obj: ObjectDef, b: Batch) -> None:
        refs = [(f, col) for f in obj.fields.values()
                if f.type == "reference" and f.createable and (col := b.columns.get(f.name)) is not None]
        if not refs:
            return
        ok = b.ok()
        wanted: dict[str, set[str]] = defaultdict(set)
        for _, col in refs:
            for i in ok:
                v = col[i]
                if v is not None and v is not UNSET:
                    wanted[v[:3]].add(v)
        alive: set[str] = set()
        for prefix, values in wanted.items():
            target = self.schema.by_prefix(prefix)
            if target is not None:
                alive.update(r[0] for r in select_in(c, target.name, '"Id"', "Id", list(values),
                                                      " AND IsDeleted = 0"))
        for f, col in refs:
            for i in ok:
                v = col[i]
                if v is not None and v is not UNSET and v not in alive:
                    b.fail(i, err("INVALID_CROSS_REFERENCE_KEY", f"{f.label}: invalid cross reference id",
                                  [f.name]))

    def _match_ids(self, c: sqlite3.Connection, obj: ObjectDef, b: Batch) -> list[tuple[int, str] | None]:
        wanted: dict[int, int] = {}
        full: dict[int, str] = {}
        for i in b.ok():
            given = b.ids[i]
            try:
                full[i] = ids.to18(given or "")
                prefix, n = ids.decode(full[i])
                if prefix != obj.key_prefix:
                    raise ValueError(given)
            except ValueError:
                if not given:
                    b.fail(i, err("MISSING_ARGUMENT", "Id not specified in an update call", ["Id"]))
                else:
                    b.fail(i, err("MALFORMED_ID", f"{obj.label} ID: id value of incorrect type: {given}",
                                  ["Id"]))
                continue
            wanted[i] = n
        rowinfo = {n: (rid, deleted) for n, rid, deleted in
                   select_in(c, obj.name, '_n, "Id", IsDeleted', "_n", sorted(set(wanted.values())))}
        out: list[tuple[int, str] | None] = [None] * b.n
        for i, n in wanted.items():
            info = rowinfo.get(n)
            if info is None or info[0] != full[i]:
                b.fail(i, err("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", ["Id"]))
            elif info[1]:
                b.fail(i, err("ENTITY_IS_DELETED", "entity is deleted", ["Id"]))
            else:
                out[i] = (n, info[0])
        return out

    def _match_keys(self, c: sqlite3.Connection, obj: ObjectDef, ext: FieldDef,
                    b: Batch) -> list[tuple[int, str] | None]:
        name = ext.name
        keys = b.column(name)
        live = []
        for i in b.ok():
            if keys[i] is None or keys[i] is UNSET:
                b.fail(i, err("MISSING_ARGUMENT", f"{name} not specified", [name]))
            else:
                live.append(i)
        folded = fold_all(ext, [keys[i] for i in live])
        first: dict[Any, int] = {}  # folded key -> the record that carries it
        for i, k in zip(live, folded, strict=True):
            first.setdefault(k, i)
        if len(first) < len(live):
            dups = {k for k, n in Counter(folded).items() if n > 1}
            for i, k in zip(live, folded, strict=True):
                if k in dups:
                    b.fail(i, err("DUPLICATE_VALUE", f"Duplicate external id specified: {keys[i]}", [name]))
            for k in dups:
                del first[k]
        out: list[tuple[int, str] | None] = [None] * b.n
        several: dict[int, list[str]] = {}  # a non-unique external id matching several records
        found = select_in(c, obj.name, f'_n, "Id", {q(name)}', name, [keys[i] for i in first.values()],
                          " AND IsDeleted = 0")
        for (n, rid, stored), k in zip(found, fold_all(ext, [row[2] for row in found]), strict=True):
            i = first.get(k)
            if i is None:
                continue
            if i in several:
                several[i].append(rid)
            elif (hit := out[i]) is not None:
                several[i] = [hit[1], rid]
                out[i] = None
            else:
                out[i] = (n, rid)
                if stored == keys[i]:
                    keys[i] = UNSET  # unchanged key: keep it out of the UPDATE (index churn)
        for i, rids in several.items():
            b.fail(i, err("DUPLICATE_EXTERNAL_ID", f"{ext.label}: more than one record found for external id "
                          f"field: {rids}", [name]))
        return out

    # -- validation -------------------------------------------------------------------------
    def _check_required(self, obj: ObjectDef, b: Batch, targets: list[tuple[int, str] | None]) -> None:
        ok = b.ok()
        inserts = [i for i in ok if targets[i] is None]
        missing: dict[int, list[str]] = defaultdict(list)
        if inserts:
            for f in obj.fields.values():
                if f.default is not None and f.createable:
                    value = int(f.default) if f.type == "boolean" else f.default  # type: ignore[call-overload]
                    col = b.column(f.name)
                    for i in inserts:
                        if col[i] is None or col[i] is UNSET:
                            col[i] = value
            for f in obj.fields.values():
                if f.required_on_create:
                    col = b.columns.get(f.name)
                    for i in inserts if col is None else (i for i in inserts if col[i] is None or col[i] is UNSET):
                        missing[i].append(f.name)
        updates = [i for i in ok if targets[i] is not None]
        for name, col in b.columns.items() if updates else ():
            f = obj.fields.get(name)
            if f is None or f.nillable or None not in col:
                continue
            for i in updates:
                if col[i] is None:
                    if f.type == "boolean":
                        col[i] = 0
                    else:
                        missing[i].append(name)
        for i, names in missing.items():
            b.fail(i, err("REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(names)}]",
                          names))

    def _check_unique(self, c: sqlite3.Connection, obj: ObjectDef, b: Batch,
                      targets: list[tuple[int, str] | None], skip: str | None = None) -> None:
        """DUPLICATE_VALUE for unique fields; ``skip`` is an upsert's key, unique by matching already."""
        errs = b.errors
        for f in (f for f in obj.fields.values() if f.unique and f.name != skip):
            col = b.columns.get(f.name)
            if col is None:
                continue
            norm = fold(f)
            seen: dict[Any, int] = {}
            for i, v in enumerate(col):
                if i in errs or v is None or v is UNSET:
                    continue
                key = norm(v)
                if key in seen:
                    b.fail(i, err("DUPLICATE_VALUE", f"duplicate value found: {f.name} duplicates value on "
                                  "record with id: <unknown>", [f.name]))
                else:
                    seen[key] = i
            if not seen:
                continue
            found = select_in(c, obj.name, f'_n, "Id", {q(f.name)}', f.name, [col[i] for i in seen.values()],
                              " AND IsDeleted = 0")
            for n, rid, v in found:
                i = seen.get(norm(v))
                if i is not None and i not in errs and (targets[i] is None or targets[i][0] != n):  # type: ignore[index]
                    b.fail(i, err("DUPLICATE_VALUE", f"duplicate value found: {f.name} duplicates value on "
                                  f"record with id: {rid}", [f.name]))

    # -- writing ----------------------------------------------------------------------------
    def _write(self, c: sqlite3.Connection, obj: ObjectDef, b: Batch,
               targets: list[tuple[int, str] | None]) -> Outcome:
        now, user = self.store.now(), self.store.user_id
        out = Outcome([None] * b.n, [False] * b.n, b.errors)
        ok = b.ok()
        inserts = [i for i in ok if targets[i] is None]
        if inserts:
            self._insert(c, obj, b, inserts, now, user, out)
        updates = [i for i in ok if targets[i] is not None]
        if updates:
            self._update(c, obj, b, updates, [targets[i][0] for i in updates], now, user)  # type: ignore[index]
            for i in updates:
                out.ids[i] = targets[i][1]  # type: ignore[index]
        return out

    def _insert(self, c: sqlite3.Connection, obj: ObjectDef, b: Batch, rows: list[int], now: str, user: str,
                out: Outcome) -> None:
        start = self.store.allocate(c, obj, len(rows))
        ns = range(start, start + len(rows))
        rids = ids.encode_range(obj.key_prefix, start, len(rows))
        # parsing refused non-createable fields, so given columns cannot clash with the audit ones
        cols = {name: _nulls(_pick(col, rows, b.n)) for name, col in b.columns.items()}
        cols = {name: col for name, col in cols.items() if any(v is not None for v in col)}
        if "OwnerId" in obj.fields:
            owners = cols.get("OwnerId")
            cols["OwnerId"] = [user] * len(rows) if owners is None else [user if v is None else v for v in owners]
        if obj.name_kind == "Compound":
            none = [None] * len(rows)
            first, last = cols.get("FirstName", none), cols.get("LastName", none)
            cols["Name"] = [f"{a or ''} {z or ''}".strip() for a, z in zip(first, last, strict=True)]
        elif obj.name_kind == "AutoNumber":
            cols["Name"] = list(map(_autonumber(obj.display_format), ns))
        elif "Name" in obj.fields:  # a custom object's Text name defaults to the record id
            names = cols.get("Name")
            cols["Name"] = rids if names is None else [v if v is not None else r
                                                       for v, r in zip(names, rids, strict=True)]
        audit = {"IsDeleted": 0, "CreatedDate": now, "CreatedById": user, "LastModifiedDate": now,
                 "LastModifiedById": user, "SystemModstamp": now}
        names = ", ".join(map(q, (*cols, *audit)))
        marks = ",".join("?" * (len(cols) + len(audit) + 2))
        c.executemany(f"INSERT INTO {q(obj.name)} (_n, \"Id\", {names}) VALUES ({marks})",
                      zip(ns, rids, *cols.values(), *map(repeat, audit.values()), strict=False))
        for i, rid in zip(rows, rids, strict=True):
            out.ids[i] = rid
            out.created[i] = True

    def _update(self, c: sqlite3.Connection, obj: ObjectDef, b: Batch, rows: list[int], ns: list[int], now: str,
                user: str) -> None:
        """One UPDATE per set of given columns (one in all for a CSV without empty cells)."""
        cols = {name: col for name, col in ((name, _pick(col, rows, b.n)) for name, col in b.columns.items())
                if any(v is not UNSET for v in col)}
        mixed = [col for col in cols.values() if UNSET in col]
        groups: dict[tuple[bool, ...], list[int]] = defaultdict(list)
        if mixed:
            for j, given in enumerate(zip(*[[v is not UNSET for v in col] for col in mixed], strict=True)):
                groups[given].append(j)
        else:
            groups[()] = list(range(len(rows)))
        compound = obj.name_kind == "Compound"
        for group in groups.values():
            given = {name: col if len(group) == len(rows) else [col[j] for j in group]
                     for name, col in cols.items() if col[group[0]] is not UNSET}
            sets = [f"{q(col)} = ?" for col in (*given, "LastModifiedDate", "LastModifiedById", "SystemModstamp")]
            params: list[Any] = [*given.values(), repeat(now), repeat(user), repeat(now)]
            if compound and ("FirstName" in given or "LastName" in given):
                # SET sees the old row, so the new name takes new values as parameters, old ones as columns
                first, last = ("?" if k in given else k for k in ("FirstName", "LastName"))
                sets.append(f"\"Name\" = trim(coalesce({first}, '') || ' ' || coalesce({last}, ''))")
                params += [given[k] for k in ("FirstName", "LastName") if k in given]
            params.append(ns if len(group) == len(rows) else [ns[j] for j in group])
            c.executemany(f"UPDATE {q(obj.name)} SET {', '.join(sets)} WHERE _n = ?",
                          zip(*params, strict=False))  # the audit values repeat

    def _delete(self, c: sqlite3.Connection, obj: ObjectDef, op: str, targets: list[tuple[int, str] | None],
                b: Batch, lock: Callable[[], bool] | None) -> Outcome:
        out = Outcome([None] * b.n, [False] * b.n, b.errors)
        batch = []
        for i, t in enumerate(targets):
            if t is None or i in b.errors:
                continue
            if lock is not None and lock():
                b.fail(i, dict(LOCK_ERROR))
                continue
            batch.append(t[0])
            out.ids[i] = t[1]
        now = self.store.now()
        if op == "hardDelete":
            c.executemany(f"DELETE FROM {q(obj.name)} WHERE _n = ?", [(n,) for n in batch])
        else:
            c.executemany(f"UPDATE {q(obj.name)} SET IsDeleted = 1, LastModifiedDate = ?, SystemModstamp = ? "
                          "WHERE _n = ?", [(now, now, n) for n in batch])
        return out


def _nulls(col: list[Any]) -> list[Any]:
    """UNSET as NULL (what an insert stores for a field it is not given)."""
    return [None if v is UNSET else v for v in col] if UNSET in col else col


def _autonumber(display_format: str | None) -> Callable[[int], str]:
    """``A-{0000}`` -> ``lambda n: "A-0042"``."""
    m = re.search(r"\{(0+)\}", display_format or "{0}")
    if not m:
        return lambda n: f"{display_format}{n}"
    head, tail, width = (display_format or "")[: m.start()], (display_format or "")[m.end() :], len(m[1])
    return lambda n: f"{head}{n:0{width}d}{tail}"
