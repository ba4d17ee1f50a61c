"""REST API routes: versions, limits, describe, SOQL query with paging, sObject rows and upsert."""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Body, Request

from sandbox.salesforce import describe as desc
from sandbox.salesforce import ids
from sandbox.salesforce.app import RELEASES, VERSIONS, Org, Version, org_of, sf_json
from sandbox.salesforce.errors import ApiError, not_found, sf_error
from sandbox.salesforce.query import Plan, compile_soql
from sandbox.salesforce.soql import SoqlError
from sandbox.salesforce.store import q
from sandbox.salesforce.values import (
    FieldError,
    TypeMismatch,
    format_datetime,
    json_mismatch,
    parse_datetime,
    to_json,
)

if TYPE_CHECKING:
    from fastapi import FastAPI
    from fastapi.responses import Response

    from sandbox.salesforce.records import Result
    from sandbox.salesforce.schema import ObjectDef

Payload = Annotated[Any, Body()]
STATUS_OF = {"NOT_FOUND": 404, "ENTITY_IS_DELETED": 404, "DUPLICATE_EXTERNAL_ID": 300}
_BATCH = re.compile(r"batchSize\s*=\s*(\d+)", re.I)


@dataclass
class Cursor:
    plan: Plan
    version: str
    total: int
    size: int
    after: dict[int, int]  # position -> last rowid before it (keyset paging)


class Cursors:
    """Open query locators (``01g...``), most recent 1,000 kept, like Salesforce's open cursors."""

    def __init__(self) -> None:
        self._items: OrderedDict[str, Cursor] = OrderedDict()
        self._lock = threading.Lock()
        self._n = 0

    def add(self, cursor: Cursor) -> str:
        with self._lock:
            self._n += 1
            key = ids.encode("01g", self._n)
            self._items[key] = cursor
            while len(self._items) > 1000:
                self._items.popitem(last=False)
        return key

    def get(self, key: str) -> Cursor | None:
        with self._lock:
            return self._items.get(key)


def sobject(org: Org, name: str) -> ObjectDef:
    obj = org.schema.get(name)
    if obj is None:
        raise sf_error(404, "NOT_FOUND", "The requested resource does not exist")
    return obj


def raise_for(result: Result) -> None:
    """A failed single-record write as Salesforce's REST error response."""
    if result.errors:
        first = result.errors[0]
        status = STATUS_OF.get(first["statusCode"], 400)
        raise ApiError(status, [{"message": e["message"], "errorCode": e["statusCode"], "fields": e["fields"]}
                                for e in result.errors])


def record_json(obj: ObjectDef, row: Any, version: str, fields: list[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"attributes": {"type": obj.name,
                                          "url": f"/services/data/v{version}/sobjects/{obj.name}/{row['Id']}"}}
    for name in fields or list(obj.fields):
        f = obj.fields[name]
        out[f.name] = to_json(f, row[f.name])
    return out


def _fetch(org: Org, obj: ObjectDef, column: str, value: Any) -> list[Any]:
    c = org.store.conn()
    c.row_factory = _dict_row
    try:
        return c.execute(f"SELECT * FROM {q(obj.name)} WHERE {q(column)} = ? AND IsDeleted = 0", (value,)).fetchall()
    finally:
        c.row_factory = None


def _dict_row(cursor: Any, row: tuple[Any, ...]) -> dict[str, Any]:
    return {d[0]: v for d, v in zip(cursor.description, row, strict=True)}


def _by_id(org: Org, obj: ObjectDef, record_id: str) -> dict[str, Any]:
    try:
        full = ids.to18(record_id)
    except ValueError:
        raise sf_error(404, "NOT_FOUND", "Provided external ID field does not exist or is not accessible: "
                       f"{record_id}") from None
    rows = _fetch(org, obj, "Id", full) if full[:3] == obj.key_prefix else []
    if not rows:
        raise not_found()
    return rows[0]


def _fields_param(obj: ObjectDef, raw: str | None) -> list[str] | None:
    if not raw:
        return None
    out = []
    for name in (n.strip() for n in raw.split(",") if n.strip()):
        f = obj.field(name)
        if f is None:
            raise sf_error(400, "INVALID_FIELD", f"No such column '{name}' on entity '{obj.name}'. If you are "
                           "attempting to use a custom field, be sure to append the '__c' after the custom field name. "
                           "Please reference your WSDL or the describe call for the appropriate names.")
        out.append(f.name)
    return out


def run_query(org: Org, text: str, version: str, include_deleted: bool, batch: int) -> dict[str, Any]:
    try:
        plan = compile_soql(org.schema, text, include_deleted)
    except SoqlError as e:
        raise sf_error(400, e.code, e.render(text)) from None
    c = org.store.conn()
    total = plan.total(c)
    if plan.count == "rows":
        return {"totalSize": total, "done": True, "records": []}
    if plan.count:
        return {"totalSize": 1, "done": True, "records": [{"attributes": {"type": "AggregateResult"},
                                                          plan.count: total}]}
    cursor = Cursor(plan, version, total, batch, {0: 0})
    return page(org, cursor, None, 0)


def page(org: Org, cursor: Cursor, key: str | None, position: int) -> dict[str, Any]:
    plan = cursor.plan
    after = cursor.after.get(position)
    if position and after is None and not plan.order_sql:
        # a locator we did not hand out in sequence: fall back to OFFSET paging
        rows = org.store.conn().execute(
            f"SELECT {plan.select_sql} {plan.from_sql} WHERE {plan.where_sql} ORDER BY t0._n LIMIT ? OFFSET ?",
            [*plan.params, min(cursor.size, cursor.total - position), (plan.offset or 0) + position]).fetchall()
    else:
        rows = plan.page(org.store.conn(), cursor.size, position, after or 0)
    end = position + len(rows)
    out: dict[str, Any] = {"totalSize": cursor.total, "done": end >= cursor.total or not rows}
    if not out["done"]:
        cursor.after[end] = rows[-1][0]
        key = key or org.cursors.add(cursor)
        out["nextRecordsUrl"] = f"/services/data/v{cursor.version}/query/{key}-{end}"
    out["records"] = [plan.record(r, cursor.version) for r in rows]
    return out


def _batch_size(request: Request) -> int:
    m = _BATCH.search(request.headers.get("sforce-query-options", ""))
    return min(2000, max(200, int(m[1]))) if m else 2000


def install(app: FastAPI, org: Org) -> None:
    from sandbox.salesforce.rest_rows import install_rows  # it imports this module's helpers

    org.cursors = Cursors()
    data = "/services/data/{version}"
    describe_cache: dict[tuple[str, str], dict[str, Any]] = {}

    def both(path: str, methods: list[str]) -> Any:
        def register(fn: Any) -> Any:
            app.add_api_route(path, fn, methods=methods, include_in_schema=False)
            app.add_api_route(path + "/", fn, methods=methods, include_in_schema=False)
            return fn
        return register

    @both("/services/data", ["GET"])
    def versions() -> Response:
        return sf_json([{"label": f"{RELEASES[(int(float(v)) - 50) % 3]} '{21 + (int(float(v)) - 50) // 3}",
                         "url": f"/services/data/v{v}", "version": v} for v in VERSIONS])

    @app.get(data + "/", include_in_schema=False)
    @app.get(data, include_in_schema=False)
    def resources(version: Version) -> Response:
        base = f"/services/data/v{version}"
        names = ("sobjects", "query", "queryAll", "limits", "composite", "jobs")
        return sf_json({n: f"{base}/{n}" for n in names})

    @both(data + "/limits", ["GET"])
    def limits(request: Request, version: Version) -> Response:
        return sf_json(org_of(request).limits.snapshot())

    @both(data + "/sobjects", ["GET"])
    def describe_global(request: Request, version: Version) -> Response:
        return sf_json(desc.describe_global(org_of(request).schema, version))

    @both(data + "/sobjects/{name}/describe", ["GET"])
    def describe(request: Request, name: str, version: Version) -> Response:
        o = org_of(request)
        obj = sobject(o, name)
        key = (obj.name, version)
        if key not in describe_cache:
            describe_cache[key] = desc.describe(obj, o.schema, version)
        return sf_json(describe_cache[key])

    def query_route(include_deleted: bool) -> Any:
        def handler(request: Request, version: Version) -> Response:
            text = request.query_params.get("q")
            if not text:
                raise sf_error(400, "MALFORMED_QUERY", "A query string has to be specified")
            return sf_json(run_query(org_of(request), text, version, include_deleted, _batch_size(request)))
        return handler

    def more_route(request: Request, locator: str, version: Version) -> Response:
        key, _, pos = locator.partition("-")
        cursor = org_of(request).cursors.get(key)
        if cursor is None or not pos.isdigit():
            raise sf_error(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return sf_json(page(org_of(request), cursor, key, int(pos)))

    for name, include_deleted in (("query", False), ("queryAll", True)):
        both(f"{data}/{name}", ["GET"])(query_route(include_deleted))
        app.add_api_route(f"{data}/{name}/{{locator}}", more_route, methods=["GET"], include_in_schema=False)

    @both(data + "/sobjects/{name}/deleted", ["GET"])
    def deleted(request: Request, name: str, version: Version, start: str = "", end: str = "") -> Response:
        o = org_of(request)
        obj = sobject(o, name)
        lo, hi = _window(start, end)
        rows = o.store.conn().execute(
            f'SELECT "Id", LastModifiedDate FROM {q(obj.name)} WHERE IsDeleted = 1 AND LastModifiedDate >= ? '
            "AND LastModifiedDate < ? ORDER BY LastModifiedDate", (lo, hi)).fetchall()
        return sf_json({"deletedRecords": [{"id": r[0], "deletedDate": r[1][:-1] + "+0000"} for r in rows],
                        "earliestDateAvailable": lo[:-1] + "+0000", "latestDateCovered": hi[:-1] + "+0000"})

    @both(data + "/sobjects/{name}/updated", ["GET"])
    def updated(request: Request, name: str, version: Version, start: str = "", end: str = "") -> Response:
        o = org_of(request)
        obj = sobject(o, name)
        lo, hi = _window(start, end)
        rows = o.store.conn().execute(
            f'SELECT "Id" FROM {q(obj.name)} WHERE IsDeleted = 0 AND SystemModstamp >= ? AND SystemModstamp < ? '
            "ORDER BY SystemModstamp", (lo, hi)).fetchall()
        return sf_json({"ids": [r[0] for r in rows], "latestDateCovered": hi[:-1] + "+0000"})

    install_rows(app, data, both)


def _window(start: str, end: str) -> tuple[str, str]:
    lo, hi = parse_datetime(start), parse_datetime(end)
    if lo is None or hi is None:
        raise sf_error(400, "INVALID_REPLICATION_DATE", "start and end must be ISO 8601 date-times")
    return format_datetime(lo), format_datetime(hi)


def coerce_key(org: Org, obj: ObjectDef, field: Any, value: str) -> Any:
    try:
        return org.parser.coercer(obj, field)(value)
    except FieldError as e:
        raise ApiError(400, [{"message": e.message, "errorCode": e.code, "fields": e.fields}]) from None
    except TypeMismatch as e:
        m = json_mismatch(e)
        raise ApiError(400, [{"message": m.message, "errorCode": m.code, "fields": m.fields}]) from None
