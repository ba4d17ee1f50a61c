"""What the write paths hand the DML engine (:mod:`dml`), and what they get back.

A JSON record arrives as a :class:`RowIn`; a Bulk CSV chunk as a :class:`Batch`, the records held
column-wise, which is also the form the engine works on. Errors have Salesforce's SaveResult
shape, ``{statusCode, message, fields}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sandbox.salesforce.schema import FieldDef, ObjectDef


class _Unset:
    __slots__ = ()

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()  # a cell the record does not set: kept on update, null on insert


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


class Batch:
    """Records to write, column-wise: ``columns[field][i]`` is record i's value (UNSET: not given).

    :param refs: lookups given by a parent's external id, ``(lookup, parent, parent field, keys)``
        with one key per record (UNSET: none)
    :param ids: the Id each record names (update, delete, upsert on Id), None when it names none
    :param errors: record index -> its errors (only records that have some); parse errors come
        first, the engine appends its own
    """

    __slots__ = ("columns", "errors", "ids", "n", "refs")

    def __init__(self, n: int, columns: dict[str, list[Any]] | None = None,
                 refs: list[tuple[FieldDef, ObjectDef, FieldDef, list[Any]]] | None = None,
                 ids: list[str | None] | None = None, errors: dict[int, list[dict[str, Any]]] | None = None) -> None:
        self.n = n
        self.columns = {} if columns is None else columns
        self.refs = [] if refs is None else refs
        self.ids: list[str | None] = [None] * n if ids is None else ids
        self.errors = {} if errors is None else errors

    @classmethod
    def of_rows(cls, rows: list[RowIn]) -> Batch:
        n = len(rows)
        columns: dict[str, list[Any]] = {}
        refs: dict[tuple[str, str, str], tuple[FieldDef, ObjectDef, FieldDef, list[Any]]] = {}
        for i, r in enumerate(rows):
            for name, v in r.values.items():
                columns.setdefault(name, [UNSET] * n)[i] = v
            for lookup, parent, pf, key in r.refs:
                ref = refs.setdefault((lookup.name, parent.name, pf.name), (lookup, parent, pf, [UNSET] * n))
                ref[3][i] = key
        errors = {i: list(r.errors) for i, r in enumerate(rows) if r.errors}
        return cls(n, columns, list(refs.values()), [r.id for r in rows], errors)

    def column(self, name: str) -> list[Any]:
        """The column of ``name``, made (all UNSET) when no record gives it."""
        col = self.columns.get(name)
        if col is None:
            col = self.columns[name] = [UNSET] * self.n
        return col

    def ok(self) -> list[int]:
        """Records without an error so far."""
        errors = self.errors
        return [i for i in range(self.n) if i not in errors] if errors else list(range(self.n))

    def fail(self, i: int, error: dict[str, Any]) -> None:
        self.errors.setdefault(i, []).append(error)


class Outcome:
    """Per record of a batch: the Id written (or matched), whether it was created, its errors."""

    __slots__ = ("created", "errors", "ids")

    def __init__(self, ids: list[str | None], created: list[bool], errors: dict[int, list[dict[str, Any]]]) -> None:
        self.ids, self.created, self.errors = ids, created, errors  # errors: as in Batch

    def results(self) -> list[Result]:
        return [Result(rid, made, self.errors.get(i, []))
                for i, (rid, made) in enumerate(zip(self.ids, self.created, strict=True))]


@dataclass
class Result:
    id: str | None
    created: bool
    errors: list[dict[str, Any]]

    @property
    def success(self) -> bool:
        return not self.errors
