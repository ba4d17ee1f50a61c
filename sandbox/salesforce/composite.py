"""sObject Collections: create, update, upsert, delete and retrieve up to 200 records per call.

Results come back in request order. With ``allOrNone`` the whole request runs in one transaction
that is rolled back on the first failure; the records that were fine are reported as
ALL_OR_NONE_OPERATION_ROLLED_BACK, as Salesforce does.
"""

from __future__ import annotations

from itertools import groupby
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import Response

from sandbox.salesforce.app import Org, Version, org_of, sf_json
from sandbox.salesforce.errors import sf_error
from sandbox.salesforce.ids import to18
from sandbox.salesforce.records import Result, RowIn, err
from sandbox.salesforce.rest import Payload, _fetch, _fields_param, record_json, sobject

if TYPE_CHECKING:
    from fastapi import FastAPI

    from sandbox.salesforce.schema import FieldDef, ObjectDef

LIMIT = 200
ROLLED_BACK = err("ALL_OR_NONE_OPERATION_ROLLED_BACK", "Record rolled back because not all records were valid "
                  "and the request was using AllOrNone header")


class _Rollback(Exception):
    pass


def _records(payload: Any) -> tuple[list[Any], bool]:
    if not isinstance(payload, dict) or not isinstance(payload.get("records"), list):
        raise sf_error(400, "JSON_PARSER_ERROR", "The request body must be an object with a records list")
    records = payload["records"]
    if len(records) > LIMIT:
        raise sf_error(400, "EXCEEDED_ID_LIMIT", f"record limit reached. cannot submit more than {LIMIT} records "
                       "into this call")
    return records, bool(payload.get("allOrNone", False))


def _type_of(org: Org, record: Any) -> ObjectDef | dict[str, Any]:
    attrs = record.get("attributes") if isinstance(record, dict) else None
    name = attrs.get("type") if isinstance(attrs, dict) else None
    obj = org.schema.get(name) if isinstance(name, str) else None
    if obj is None:
        return err("INVALID_TYPE", "Must send a concrete entity type." if not name
                   else f"sObject type '{name}' is not supported.")
    return obj


def _run(org: Org, op: str, records: list[Any], all_or_none: bool,
         fixed: tuple[ObjectDef, FieldDef] | None = None) -> list[dict[str, Any]]:
    """Parse, group consecutive records of one type into chunks (as Salesforce does), write."""
    results: list[Result | None] = [None] * len(records)
    items: list[tuple[int, ObjectDef, RowIn]] = []
    for i, rec in enumerate(records):
        obj = fixed[0] if fixed else _type_of(org, rec)
        if isinstance(obj, dict):
            results[i] = Result(None, False, [obj])
            continue
        if not isinstance(rec, dict):
            results[i] = Result(None, False, [err("JSON_PARSER_ERROR", "each record must be a JSON object")])
            continue
        if op == "delete":
            row = RowIn(id=rec.get("Id"))
        else:
            row = org.parser.json_row(obj, rec, "insert" if op == "create" else op)
            if op == "update" and not row.id:
                row.errors.append(err("MISSING_ARGUMENT", "Id not specified in an update call", ["Id"]))
        items.append((i, obj, row))
    failed = any(r is not None for r in results)
    # Row locks happen to any DML in Salesforce, not only to Bulk jobs: the "lock" fault fails rows
    # here too (counted by controls.roll), so small loads that never use Bulk 2.0 meet it as well.
    lock = (lambda: org.controls.roll("lock")) if org.controls.rate("lock") > 0 else None
    try:
        with org.store.transaction() as c:
            for obj, group in groupby(items, key=lambda t: t[1].name):
                chunk = list(group)
                target = org.schema.objects[obj]
                dml_op = {"create": "insert"}.get(op, op)
                ext = fixed[1] if fixed else None
                written = org.writer.apply(c, target, dml_op, [r for *_, r in chunk], ext, lock)
                for (i, _, _), res in zip(chunk, written, strict=True):
                    results[i] = res
                    failed = failed or not res.success
            if all_or_none and failed:
                raise _Rollback
    except _Rollback:
        results = [r if r is not None and r.errors else Result(None, False, [dict(ROLLED_BACK)]) for r in results]
    out = []
    for res in results:
        assert res is not None
        item: dict[str, Any] = {"id": res.id, "success": res.success, "errors": res.errors}
        if op == "upsert":
            item["created"] = res.created and res.success
        if op == "delete" and not res.success:
            item["id"] = None
        out.append(item)
    return out


def install(app: FastAPI) -> None:
    base = "/services/data/{version}/composite/sobjects"

    def create(request: Request, version: Version, payload: Payload = None) -> Response:
        records, all_or_none = _records(payload)
        return sf_json(_run(org_of(request), "create", records, all_or_none))

    def update(request: Request, version: Version, payload: Payload = None) -> Response:
        records, all_or_none = _records(payload)
        return sf_json(_run(org_of(request), "update", records, all_or_none))

    def delete(request: Request, version: Version, ids: str = "", allOrNone: str = "false") -> Response:
        id_list = [i for i in ids.split(",") if i]
        if len(id_list) > LIMIT:
            raise sf_error(400, "EXCEEDED_ID_LIMIT", f"record limit reached. cannot submit more than {LIMIT} records "
                           "into this call")
        org = org_of(request)
        records = []
        for rid in id_list:
            obj = org.schema.by_prefix(rid[:3])
            records.append({"attributes": {"type": obj.name if obj else ""}, "Id": rid})
        return sf_json(_run(org, "delete", records, allOrNone.lower() == "true"))

    def upsert(request: Request, name: str, field: str, version: Version, payload: Payload = None) -> Response:
        org = org_of(request)
        obj = sobject(org, name)
        f = obj.field(field)
        if f is None or not (f.external_id or f.name == "Id"):
            raise sf_error(400, "INVALID_FIELD", f"Field name provided, {field} is not an External ID or indexed "
                           f"field for {obj.name}")
        records, all_or_none = _records(payload)
        for rec in records:
            t = rec.get("attributes", {}).get("type") if isinstance(rec, dict) else None
            if t is not None and t.lower() != obj.name.lower():
                raise sf_error(400, "INVALID_FIELD", "All records in an upsert must be of the object type in the URL")
        return sf_json(_run(org, "upsert", records, all_or_none, (obj, f)))

    def retrieve(request: Request, name: str, version: Version, ids: str = "", fields: str = "") -> Response:
        org = org_of(request)
        obj = sobject(org, name)
        wanted = _fields_param(obj, fields) or ["Id"]
        out: list[Any] = []
        for rid in (i for i in ids.split(",") if i):
            try:
                rows = _fetch(org, obj, "Id", to18(rid))
            except ValueError:
                rows = []
            out.append(record_json(obj, rows[0], version, wanted) if rows else None)
        return sf_json(out)

    for path in (base, base + "/"):
        app.add_api_route(path, create, methods=["POST"], include_in_schema=False)
        app.add_api_route(path, update, methods=["PATCH"], include_in_schema=False)
        app.add_api_route(path, delete, methods=["DELETE"], include_in_schema=False)
    app.add_api_route(base + "/{name}/{field}", upsert, methods=["PATCH"], include_in_schema=False)
    app.add_api_route(base + "/{name}", retrieve, methods=["GET"], include_in_schema=False)
