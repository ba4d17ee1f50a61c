"""Insert, update, upsert and delete of record batches, with Salesforce's validation.

One engine serves every write path (REST sObject rows, sObject Collections, Bulk API 2.0), so
they agree on errors. Callers turn their input (a JSON record, a CSV row) into :class:`RowIn`
(see :mod:`rowparse`) and call :meth:`Writer.apply` inside a store transaction; it checks a
whole batch with a handful of set-based queries and writes it with ``executemany``.
"""

from __future__ import annotations

import re
import string
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sandbox.salesforce import ids
from sandbox.salesforce.store import q

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable

    from sandbox.salesforce.schema import FieldDef, ObjectDef
    from sandbox.salesforce.store import Store

_FOLD = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)  # SQLite NOCASE folds ASCII only
CHUNK = 5000
LOCK_ERROR = {"statusCode": "UNABLE_TO_LOCK_ROW", "fields": [],
              "message": "unable to obtain exclusive access to this record or 1 records"}


def err(code: str, message: str, fields: list[str] | None = None) -> dict[str, Any]:
    return {"statusCode": code, "message": message, "fields": fields or []}


class RowIn:
    """One record to write: coerced values plus what still needs resolving (slots: bulk makes millions)."""

    __slots__ = ("errors", "id", "refs", "values")

    def __init__(self, values: dict[str, Any] | None = None,
                 refs: list[tuple[FieldDef, ObjectDef, FieldDef, Any]] | None = None, id: str | None = None,
                 errors: list[dict[str, Any]] | None = None) -> None:
        self.values = {} if values is None else values
        self.refs = [] if refs is None else refs
        self.id = id
        self.errors = [] if errors is None else errors


@dataclass
class Result:
    id: str | None
    created: bool
    errors: list[dict[str, Any]]

    @property
    def success(self) -> bool:
        return not self.errors


def fold(f: FieldDef) -> Callable[[Any], Any]:
    if f.collation == "NOCASE":
        return lambda v: (v.lower() if v.isascii() else v.translate(_FOLD)) if isinstance(v, str) else v
    return lambda v: v


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
        """Write one batch; ``op`` in insert|update|upsert|delete|hardDelete. Results in input order."""
        errs = [r.errors for r in rows]  # each row's own list: parse errors first, then ours
        self._resolve_refs(c, rows, errs)
        self._check_refs_exist(c, obj, rows, errs)
        if op == "insert":
            targets: list[tuple[int, str] | None] = [None] * len(rows)
        elif op == "upsert" and ext is not None and ext.name != "Id":
            targets = self._match_keys(c, obj, ext, rows, errs)
        else:
            targets = self._match_ids(c, obj, rows, errs)
        if op in ("delete", "hardDelete"):
            return self._delete(c, obj, op, rows, targets, errs, lock)
        if op == "upsert" and ext is not None and ext.name == "Id":
            for i, t in enumerate(targets):
                if t is None and not errs[i]:
                    errs[i].append(err("NOT_FOUND", "Provided external ID field does not exist or is not "
                                       f"accessible: {rows[i].id}", ["Id"]))
        self._check_required(obj, rows, targets, errs)
        self._check_unique(c, obj, rows, targets, errs, skip=ext.name if op == "upsert" and ext else None)
        if lock is not None:
            for i in range(len(rows)):
                if not errs[i] and lock():
                    errs[i].append(dict(LOCK_ERROR))
        return self._write(c, obj, rows, targets, errs)

    # -- resolution -------------------------------------------------------------------------
    def _resolve_refs(self, c: sqlite3.Connection, rows: list[RowIn], errs: list[list[dict[str, Any]]]) -> None:
        wanted: dict[tuple[str, str], set[Any]] = defaultdict(set)
        for i, r in enumerate(rows):
            if not errs[i]:
                for _, parent, pf, key in r.refs:
                    if key is not None:
                        wanted[(parent.name, pf.name)].add(fold(pf)(key))
        found: dict[tuple[str, str], dict[Any, list[str]]] = {}
        for (pname, fname), keys in wanted.items():
            pf = self.schema.objects[pname].fields[fname]
            hits: dict[Any, list[str]] = defaultdict(list)
            for rid, key in select_in(c, pname, f'"Id", {q(fname)}', fname, list(keys), " AND IsDeleted = 0"):
                hits[fold(pf)(key)].append(rid)
            found[(pname, fname)] = hits
        for i, r in enumerate(rows):
            if errs[i]:
                continue
            for lookup, parent, pf, key in r.refs:
                if key is None:
                    r.values[lookup.name] = None
                    continue
                hit = found[(parent.name, pf.name)].get(fold(pf)(key), [])
                if len(hit) == 1:
                    r.values[lookup.name] = hit[0]
                elif not hit:
                    errs[i].append(err("INVALID_FIELD", f"Foreign key external ID: {key} not found for field "
                                       f"{pf.name} in entity {parent.name}", [lookup.name]))
                else:
                    errs[i].append(err("INVALID_FIELD", f"More than 1 record found for external id field "
                                       f"{pf.name}: {', '.join(hit)}", [lookup.name]))

    def _check_refs_exist(self, c: sqlite3.Connection, obj: ObjectDef, rows: list[RowIn],
                          errs: list[list[dict[str, Any]]]) -> None:
        refs = [f for f in obj.fields.values() if f.type == "reference" and f.createable]
        wanted: dict[str, set[str]] = defaultdict(set)
        for i, r in enumerate(rows):
            if not errs[i]:
                for f in refs:
                    v = r.values.get(f.name)
                    if v is not None:
                        wanted[v[:3]].add(v)
        alive: set[str] = set()
        for prefix, values in wanted.items():
            target = self.schema.by_prefix(prefix)
            if target is not None:
                alive.update(r[0] for r in select_in(c, target.name, '"Id"', "Id", list(values),
                                                      " AND IsDeleted = 0"))
        for i, r in enumerate(rows):
            if errs[i]:
                continue
            for f in refs:
                v = r.values.get(f.name)
                if v is not None and v not in alive:
                    errs[i].append(err("INVALID_CROSS_REFERENCE_KEY", f"{f.label}: invalid cross reference id",
                                       [f.name]))

    def _match_ids(self, c: sqlite3.Connection, obj: ObjectDef, rows: list[RowIn],
                   errs: list[list[dict[str, Any]]]) -> list[tuple[int, str] | None]:
        wanted: dict[int, int] = {}
        full: list[str | None] = [None] * len(rows)
        for i, r in enumerate(rows):
            if errs[i]:
                continue
            try:
                full[i] = ids.to18(r.id or "")
                prefix, n = ids.decode(full[i] or "")
                if prefix != obj.key_prefix:
                    raise ValueError(r.id)
            except ValueError:
                if not r.id:
                    errs[i].append(err("MISSING_ARGUMENT", "Id not specified in an update call", ["Id"]))
                else:
                    errs[i].append(err("MALFORMED_ID", f"{obj.label} ID: id value of incorrect type: {r.id}", ["Id"]))
                continue
            wanted[i] = n
        rowinfo = {n: (rid, deleted) for n, rid, deleted in
                   select_in(c, obj.name, '_n, "Id", IsDeleted', "_n", sorted(set(wanted.values())))}
        out: list[tuple[int, str] | None] = [None] * len(rows)
        for i, n in wanted.items():
            info = rowinfo.get(n)
            if info is None or info[0] != full[i]:
                errs[i].append(err("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", ["Id"]))
            elif info[1]:
                errs[i].append(err("ENTITY_IS_DELETED", "entity is deleted", ["Id"]))
            else:
                out[i] = (n, info[0])
        return out

    def _match_keys(self, c: sqlite3.Connection, obj: ObjectDef, ext: FieldDef, rows: list[RowIn],
                    errs: list[list[dict[str, Any]]]) -> list[tuple[int, str] | None]:
        name, insensitive = ext.name, ext.collation == "NOCASE"
        norm = fold(ext)
        first: dict[Any, int] = {}  # folded key -> the row that carries it
        dups: set[Any] = set()
        for i, r in enumerate(rows):
            if errs[i]:
                continue
            key = r.values.get(name)
            if key is None:
                errs[i].append(err("MISSING_ARGUMENT", f"{name} not specified", [name]))
                continue
            k = norm(key) if insensitive else key
            if k in first:
                dups.add(k)
            else:
                first[k] = i
        if dups:
            for i, r in enumerate(rows):
                key = r.values.get(name)
                if not errs[i] and key is not None and (norm(key) if insensitive else key) in dups:
                    errs[i].append(err("DUPLICATE_VALUE", f"Duplicate external id specified: {key}", [name]))
            for k in dups:
                del first[k]
        out: list[tuple[int, str] | None] = [None] * len(rows)
        seen: dict[Any, list[str]] = {}
        found = select_in(c, obj.name, f'_n, "Id", {q(name)}', name, [rows[i].values[name] for i in first.values()],
                          " AND IsDeleted = 0")
        for n, rid, stored in found:
            k = norm(stored) if insensitive else stored
            i = first.get(k)
            if i is None:
                continue
            if k in seen:  # a non-unique external id matching several records
                seen[k].append(rid)
                out[i] = None
                continue
            seen[k] = [rid]
            out[i] = (n, rid)
            if stored == rows[i].values[name]:
                del rows[i].values[name]  # unchanged key: keep it out of the UPDATE (index churn)
        for k, rids in seen.items():
            if len(rids) > 1:
                i = first[k]
                rows[i].values.setdefault(name, k)
                errs[i].append(err("DUPLICATE_EXTERNAL_ID", f"{ext.label}: more than one record found for "
                                   f"external id field: {rids}", [name]))
        return out

    # -- validation -------------------------------------------------------------------------
    def _check_required(self, obj: ObjectDef, rows: list[RowIn], targets: list[tuple[int, str] | None],
                        errs: list[list[dict[str, Any]]]) -> None:
        fields = list(obj.fields.values())
        defaults = [(f.name, int(f.default) if f.type == "boolean" else f.default)
                    for f in fields if f.default is not None and f.createable]
        required = [f.name for f in fields if f.required_on_create]
        non_null = {f.name: f for f in fields if not f.nillable}
        for i, r in enumerate(rows):
            if errs[i]:
                continue
            vals = r.values
            if targets[i] is None:
                for name, value in defaults:
                    if vals.get(name) is None:
                        vals[name] = value
                missing = [name for name in required if vals.get(name) is None]
            elif None not in vals.values():
                continue
            else:
                missing = [k for k, v in vals.items() if v is None and k in non_null]
                for k in [k for k in missing if non_null[k].type == "boolean"]:
                    vals[k] = 0
                    missing.remove(k)
            if missing:
                errs[i].append(err("REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]",
                                   missing))

    def _check_unique(self, c: sqlite3.Connection, obj: ObjectDef, rows: list[RowIn],
                      targets: list[tuple[int, str] | None], errs: list[list[dict[str, Any]]],
                      skip: str | None = None) -> None:
        """DUPLICATE_VALUE for unique fields; ``skip`` is an upsert's key, unique by matching already."""
        for f in (f for f in obj.fields.values() if f.unique and f.name != skip):
            norm = fold(f)
            seen: dict[Any, int] = {}
            for i, r in enumerate(rows):
                v = r.values.get(f.name)
                if errs[i] or v is None:
                    continue
                key = norm(v)
                if key in seen:
                    errs[i].append(err("DUPLICATE_VALUE", f"duplicate value found: {f.name} duplicates value on "
                                       "record with id: <unknown>", [f.name]))
                else:
                    seen[key] = i
            if not seen:
                continue
            found = select_in(c, obj.name, f'_n, "Id", {q(f.name)}', f.name,
                              [rows[i].values[f.name] for i in seen.values()], " AND IsDeleted = 0")
            for n, rid, v in found:
                i = seen.get(norm(v))
                if i is not None and not errs[i] and (targets[i] is None or targets[i][0] != n):
                    errs[i].append(err("DUPLICATE_VALUE", f"duplicate value found: {f.name} duplicates value on "
                                       f"record with id: {rid}", [f.name]))

    # -- writing ----------------------------------------------------------------------------
    def _write(self, c: sqlite3.Connection, obj: ObjectDef, rows: list[RowIn],
               targets: list[tuple[int, str] | None], errs: list[list[dict[str, Any]]]) -> list[Result]:
        now, user = self.store.now(), self.store.user_id
        table = q(obj.name)
        results: list[Result] = [Result(None, False, e) for e in errs]
        inserts = [i for i, t in enumerate(targets) if t is None and not errs[i]]
        if inserts:
            audit = {"IsDeleted": 0, "CreatedDate": now, "CreatedById": user, "LastModifiedDate": now,
                     "LastModifiedById": user, "SystemModstamp": now}
            if "OwnerId" in obj.fields:
                audit["OwnerId"] = user
            start = self.store.allocate(c, obj, len(inserts))
            fmt = _autonumber(obj.display_format) if obj.name_kind == "AutoNumber" else None
            owner = audit.pop("OwnerId", None)
            tail_cols, tail = tuple(audit), tuple(audit.values())
            compound, has_name = obj.name_kind == "Compound", "Name" in obj.fields
            prefix = obj.key_prefix
            batches: dict[tuple[str, ...], list[tuple[Any, ...]]] = defaultdict(list)
            for n, i in enumerate(inserts, start):
                rid = ids.encode(prefix, n)
                vals = rows[i].values  # parsing refused non-createable fields, so the audit tail cannot clash
                if owner is not None and vals.get("OwnerId") is None:
                    vals["OwnerId"] = owner
                if compound:
                    vals["Name"] = f"{vals.get('FirstName') or ''} {vals.get('LastName') or ''}".strip()
                elif fmt is not None:
                    vals["Name"] = fmt(n)
                elif has_name and vals.get("Name") is None:
                    vals["Name"] = rid  # a custom object's Text name defaults to the record id
                batches[tuple(vals)].append((n, rid, *vals.values(), *tail))  # only the columns given
                results[i] = Result(rid, True, [])
            for cols, batch in batches.items():
                names = ", ".join(map(q, (*cols, *tail_cols)))
                marks = ",".join("?" * (len(cols) + len(tail_cols) + 2))
                c.executemany(f"INSERT INTO {table} (_n, \"Id\", {names}) VALUES ({marks})", batch)
        groups: dict[tuple[str, ...], list[tuple[Any, ...]]] = defaultdict(list)
        compound = obj.name_kind == "Compound"
        for i, t in enumerate(targets):
            if t is None or errs[i]:
                continue
            vals = rows[i].values
            name_parts: tuple[Any, ...] = ()
            if compound and ("FirstName" in vals or "LastName" in vals):
                name_parts = tuple(vals[k] for k in ("FirstName", "LastName") if k in vals)
            groups[tuple(vals)].append((*vals.values(), now, user, now, *name_parts, t[0]))
            results[i] = Result(t[1], False, [])
        for cols_, batch in groups.items():
            sets = [f"{q(col)} = ?" for col in (*cols_, "LastModifiedDate", "LastModifiedById", "SystemModstamp")]
            if compound and ("FirstName" in cols_ or "LastName" in cols_):
                # SET sees the old row, so the new name takes new values as parameters, old ones as columns
                first, last = ("?" if k in cols_ else k for k in ("FirstName", "LastName"))
                sets.append(f"\"Name\" = trim(coalesce({first}, '') || ' ' || coalesce({last}, ''))")
            c.executemany(f"UPDATE {table} SET {', '.join(sets)} WHERE _n = ?", batch)
        return results

    def _delete(self, c: sqlite3.Connection, obj: ObjectDef, op: str, rows: list[RowIn],
                targets: list[tuple[int, str] | None], errs: list[list[dict[str, Any]]],
                lock: Callable[[], bool] | None) -> list[Result]:
        results = [Result(None, False, e) for e in errs]
        batch = []
        for i, t in enumerate(targets):
            if t is None or errs[i]:
                continue
            if lock is not None and lock():
                results[i] = Result(None, False, [dict(LOCK_ERROR)])
                continue
            batch.append(t[0])
            results[i] = Result(t[1], False, [])
        now = self.store.now()
        if op == "hardDelete":
            c.executemany(f"DELETE FROM {q(obj.name)} WHERE _n = ?", [(n,) for n in batch])
        else:
            c.executemany(f"UPDATE {q(obj.name)} SET IsDeleted = 1, LastModifiedDate = ?, SystemModstamp = ? "
                          "WHERE _n = ?", [(now, now, n) for n in batch])
        return results


def _autonumber(display_format: str | None) -> Callable[[int], str]:
    """``A-{0000}`` -> ``lambda n: "A-0042"``."""
    m = re.search(r"\{(0+)\}", display_format or "{0}")
    if not m:
        return lambda n: f"{display_format}{n}"
    head, tail, width = (display_format or "")[: m.start()], (display_format or "")[m.end() :], len(m[1])
    return lambda n: f"{head}{n:0{width}d}{tail}"
