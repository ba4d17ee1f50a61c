"""Turn API input into what :mod:`dml` writes: a JSON record into a RowIn, Bulk CSV chunks into a Batch.

Both paths share the field coercers of :mod:`values`; they differ where Salesforce differs:
JSON ``null`` clears a field, while in Bulk CSV an empty cell means "leave as is" (null on insert)
and ``#N/A`` clears it. Relationship references name the parent by an external id: JSON
``"Audience__r": {"MC_Audience_Id__c": "x"}``, CSV header ``Audience__r.MC_Audience_Id__c``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from sandbox.salesforce.records import UNSET, Batch, RowIn, err
from sandbox.salesforce.values import EMAIL_RE, FieldError, TypeMismatch, coercer, csv_mismatch, json_mismatch

if TYPE_CHECKING:
    from collections.abc import Callable

    from sandbox.salesforce.schema import FieldDef, ObjectDef, Schema

NOT_WRITABLE = ("Unable to create/update fields: {}. Please check the security settings of this field and "
                "verify that it is read/write for your profile or permission set.")


class HeaderError(ValueError):
    """A CSV header Salesforce refuses for the whole job (``InvalidBatch : ...``)."""


@dataclass(frozen=True)
class Column:
    index: int
    kind: str  # field | id | ref
    field: FieldDef | None
    coerce: Callable[[Any], Any] | None
    parent: ObjectDef | None = None
    parent_field: FieldDef | None = None
    error: dict[str, Any] | None = None
    maxlen: int | None = None  # plain text: only the length needs checking (the bulk fast path)


PLAIN_TEXT = ("string", "phone", "url", "textarea")


class Parser:
    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self._coercers: dict[tuple[str, str], Callable[[Any], Any]] = {}

    def coercer(self, obj: ObjectDef, f: FieldDef) -> Callable[[Any], Any]:
        key = (obj.name, f.name)
        fn = self._coercers.get(key)
        if fn is None:
            fn = self._coercers[key] = coercer(f, self.schema)
        return fn

    def _parent(self, obj: ObjectDef, rel_name: str, key_name: str) -> tuple[FieldDef, ObjectDef, FieldDef] | str:
        lookup = obj.relationship(rel_name)
        if lookup is None:
            return f"No such column '{rel_name}' on sobject of type {obj.name}"
        parent = self.schema.get(lookup.reference_to[0]) if lookup.reference_to else None
        pf = parent.field(key_name) if parent is not None else None
        if parent is None or pf is None:
            return f"No such column '{key_name}' on sobject of type {lookup.reference_to[0]}"
        if not (pf.external_id or pf.name == "Id"):
            return f"Field {pf.name} on {parent.name} is not an external id field"
        return lookup, parent, pf

    def _writable(self, f: FieldDef, op: str) -> bool:
        return f.createable if op == "insert" else f.updateable if op == "update" else f.createable or f.updateable

    # -- JSON --------------------------------------------------------------------------------
    def json_row(self, obj: ObjectDef, record: dict[str, Any], op: str) -> RowIn:
        """One JSON sObject (``attributes`` ignored) for ``op`` in insert|update|upsert."""
        row = RowIn()
        for key, raw in record.items():
            if key == "attributes":
                continue
            f = obj.field(key)
            if f is None:
                if isinstance(raw, dict) and obj.relationship(key) is not None:
                    self._json_ref(obj, key, raw, row)
                else:
                    row.errors.append(err("INVALID_FIELD", f"No such column '{key}' on sobject of type {obj.name}",
                                          [key]))
                continue
            if f.name == "Id":
                if op == "insert":
                    row.errors.append(err("INVALID_FIELD", "cannot specify Id in an insert call", ["Id"]))
                row.id = raw if isinstance(raw, str) else None
                continue
            if not self._writable(f, op):
                row.errors.append(err("INVALID_FIELD_FOR_INSERT_UPDATE", NOT_WRITABLE.format(f.name), [f.name]))
                continue
            if raw is None:
                row.values[f.name] = None
                continue
            try:
                row.values[f.name] = self.coercer(obj, f)(raw)
            except FieldError as e:
                row.errors.append(e.as_dict())
            except TypeMismatch as e:
                row.errors.append(json_mismatch(e).as_dict())
        return row

    def _json_ref(self, obj: ObjectDef, key: str, raw: dict[str, Any], row: RowIn) -> None:
        keys = [k for k in raw if k != "attributes"]
        if len(keys) != 1:
            row.errors.append(err("INVALID_FIELD", f"The foreign key reference {key} must name exactly one "
                                  "external id field", [key]))
            return
        found = self._parent(obj, key, keys[0])
        if isinstance(found, str):
            row.errors.append(err("INVALID_FIELD", found, [key]))
            return
        lookup, parent, pf = found
        value = raw[keys[0]]
        try:
            coerced = None if value is None else self.coercer(parent, pf)(value)
        except (FieldError, TypeMismatch):
            coerced = value  # cannot match anything; reported as "not found" with the raw value
        row.refs.append((lookup, parent, pf, coerced))

    # -- CSV ---------------------------------------------------------------------------------
    def csv_columns(self, obj: ObjectDef, header: list[str], op: str) -> CsvPlan:
        """Plan the columns of a Bulk CSV header once per job; HeaderError for unknown names."""
        cols: list[Column] = []
        for i, name in enumerate(header):
            if "." in name:
                rel, _, key = name.partition(".")
                found = self._parent(obj, rel, key)
                if isinstance(found, str):
                    raise HeaderError(f"InvalidBatch : Field name not found : {name}")
                lookup, parent, pf = found
                cols.append(Column(i, "ref", lookup, self.coercer(parent, pf), parent, pf))
                continue
            f = obj.field(name)
            if f is None:
                raise HeaderError(f"InvalidBatch : Field name not found : {name}")
            if f.name == "Id":
                cols.append(Column(i, "id", f, None))
            elif op in ("delete", "hardDelete"):
                raise HeaderError(f"InvalidBatch : The '{op}' batch must contain only 'Id'")
            elif not self._writable(f, op):
                cols.append(Column(i, "field", f, None,
                                   error=err("INVALID_FIELD_FOR_INSERT_UPDATE", NOT_WRITABLE.format(f.name), [f.name])))
            else:
                plain = f.type in PLAIN_TEXT or (f.type == "picklist" and not f.restricted)
                cols.append(Column(i, "field", f, self.coercer(obj, f), maxlen=f.length if plain else None))
        if op in ("update", "delete", "hardDelete") and not any(c.kind == "id" for c in cols):
            raise HeaderError("InvalidBatch : Field name not found : Id")
        return CsvPlan(cols, op)


class CsvPlan:
    """Turns chunks of CSV rows of one header into a :class:`Batch`, a column at a time.

    pyarrow checks whole columns first: plain text only needs a length check; emails and
    restricted picklists are matched there too, so only the cells it cannot vouch for (empty,
    ``#N/A``, invalid, or beyond what it can tell) meet their field's coercer one by one. Errors
    land in each row's list in the order columns are checked: plain text first, then the others,
    each group in header order.
    """

    def __init__(self, cols: list[Column], op: str) -> None:
        self.op = op
        self.fast = [(c.index, c.field.name, c.maxlen, c.field) for c in cols  # type: ignore[union-attr]
                     if c.maxlen is not None and c.error is None]
        self.slow = [c for c in cols if c.maxlen is None or c.error is not None]

    def batch(self, n: int, cells: list[pa.Array], long_rows: list[int]) -> Batch:
        """``cells[j]`` is column j of ``n`` rows; ``long_rows`` had more cells than the header (all empty here)."""
        b = Batch(n)
        for i in long_rows:
            b.fail(i, err("INVALID_FIELD", "The row has more fields than the header row", []))
        for idx, name, maxlen, f in self.fast:
            _put(b, name, _plain(cells[idx], maxlen, f, b))
        for col in self.slow:
            column = cells[col.index].to_pylist()
            if col.error is not None:
                for i, s in enumerate(column):
                    if s:
                        b.fail(i, col.error)
                continue
            if col.kind == "id":
                if self.op == "insert":
                    for i, s in enumerate(column):
                        if s:
                            b.fail(i, err("INVALID_FIELD", "cannot specify Id in an insert call", ["Id"]))
                b.ids = [s or None for s in column]
                continue
            accepted = _accepted(col, cells[col.index])
            if accepted is None:
                values: list[Any] = [UNSET] * n
                suspects: Any = (i for i, s in enumerate(column) if s)
            else:  # the coercer would return these cells unchanged
                values = column
                suspects = pc.indices_nonzero(pc.invert(accepted)).to_pylist()
            coerce = col.coerce
            for i in suspects:
                s = column[i]
                if not s:  # empty cell: unchanged on update, null on insert
                    values[i] = UNSET
                    continue
                if s == "#N/A":
                    values[i] = None
                    continue
                try:
                    values[i] = coerce(s)  # type: ignore[misc]
                except FieldError as e:
                    values[i] = UNSET
                    b.fail(i, e.as_dict())
                except TypeMismatch as e:
                    values[i] = UNSET
                    b.fail(i, csv_mismatch(e, col.index + 1).as_dict())
            if col.kind == "field":
                _put(b, col.field.name, values)  # type: ignore[union-attr]
            else:
                b.refs.append((col.field, col.parent, col.parent_field, values))  # type: ignore[arg-type]
        return b


def _plain(column: pa.Array, maxlen: int, f: FieldDef, b: Batch) -> list[Any]:
    """A plain text column's values: empty is UNSET, ``#N/A`` is None, too long is an error."""
    values: list[Any] = column.to_pylist()
    lengths = pc.min_max(pc.utf8_length(column))
    if lengths["min"].as_py() > 0 and lengths["max"].as_py() <= maxlen and not pc.any(pc.equal(column, "#N/A")).as_py():
        return values
    for i, s in enumerate(values):
        if not s:
            values[i] = UNSET
        elif s == "#N/A":
            values[i] = None
        elif len(s) > maxlen:
            values[i] = UNSET
            b.fail(i, FieldError("STRING_TOO_LONG", f"{f.label}: data value too large: {s} (max length="
                                 f"{maxlen})", [f.name]).as_dict())
    return values


def _accepted(col: Column, column: pa.Array) -> pa.Array | None:
    """Which cells pyarrow can vouch for: their field's coercer would return them unchanged.

    Its regexes are RE2's, whose ``$`` matches only at the very end, so an email it accepts Python
    accepts too; a picklist value with ``;`` in it is left to the coercer.
    """
    f = col.field
    if col.kind != "field" or f is None or f.type not in ("email", "picklist", "multipicklist"):
        return None
    ok = pc.less_equal(pc.utf8_length(column), f.length)
    if f.type == "email":
        ok = pc.and_(ok, pc.match_substring_regex(column, EMAIL_RE.pattern))
    if f.restricted:
        allowed = pa.array([p.value for p in f.picklist if ";" not in p.value], pa.string())
        ok = pc.and_(ok, pc.is_in(column, value_set=allowed))
    return ok


def _put(b: Batch, name: str, values: list[Any]) -> None:
    """Set a column; a field named twice in the header keeps the earlier cell where the later is empty."""
    old = b.columns.get(name)
    b.columns[name] = values if old is None else [o if v is UNSET else v for o, v in zip(old, values, strict=True)]
