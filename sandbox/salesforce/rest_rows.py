"""REST sObject rows: create, read, update, delete by Id; read, upsert, delete by external id."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import Response

from sandbox.salesforce.app import Org, Version, org_of, sf_json
from sandbox.salesforce.describe import object_summary
from sandbox.salesforce.errors import not_found, sf_error
from sandbox.salesforce.records import RowIn
from sandbox.salesforce.rest import (
    Payload,
    _by_id,
    _fetch,
    _fields_param,
    coerce_key,
    raise_for,
    record_json,
    sobject,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from fastapi import FastAPI

    from sandbox.salesforce.records import Result
    from sandbox.salesforce.schema import FieldDef, ObjectDef


def _body(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise sf_error(400, "JSON_PARSER_ERROR", "The request body must be a JSON object")
    return payload


def _write(org: Org, obj: ObjectDef, op: str, row: RowIn, ext: FieldDef | None = None) -> Result:
    with org.store.transaction() as c:
        return org.writer.apply(c, obj, op, [row], ext)[0]


def _ext_field(obj: ObjectDef, name: str) -> FieldDef:
    f = obj.field(name)
    if f is None or not (f.external_id or f.name == "Id"):
        raise sf_error(404, "NOT_FOUND", f"Provided external ID field does not exist or is not accessible: {name}")
    return f


def _urls(obj: ObjectDef, version: str, rows: list[Any]) -> list[str]:
    return [f"/services/data/v{version}/sobjects/{obj.name}/{r['Id']}" for r in rows]


def install_rows(app: FastAPI, data: str, both: Callable[[str, list[str]], Any]) -> None:
    rows_path = data + "/sobjects/{name}"

    @both(rows_path, ["GET"])
    def basic_info(request: Request, name: str, version: Version) -> Response:
        obj = sobject(org_of(request), name)
        return sf_json({"objectDescribe": object_summary(obj, version), "recentItems": []})

    @both(rows_path, ["POST"])
    def create(request: Request, name: str, version: Version, payload: Payload = None) -> Response:
        org = org_of(request)
        obj = sobject(org, name)
        if not obj.createable:
            raise sf_error(400, "INSUFFICIENT_ACCESS_OR_READONLY", f"entity type {obj.name} does not support create")
        result = _write(org, obj, "insert", org.parser.json_row(obj, _body(payload), "insert"))
        raise_for(result)
        return sf_json({"id": result.id, "success": True, "errors": []}, 201)

    @app.get(rows_path + "/{record_id}", include_in_schema=False)
    def get_row(request: Request, name: str, record_id: str, version: Version) -> Response:
        org = org_of(request)
        obj = sobject(org, name)
        fields = _fields_param(obj, request.query_params.get("fields"))
        return sf_json(record_json(obj, _by_id(org, obj, record_id), version, fields))

    @app.patch(rows_path + "/{record_id}", include_in_schema=False)
    def update_row(request: Request, name: str, record_id: str, version: Version, payload: Payload = None) -> Response:
        org = org_of(request)
        obj = sobject(org, name)
        current = _by_id(org, obj, record_id)
        row = org.parser.json_row(obj, _body(payload), "update")
        row.id = current["Id"]
        raise_for(_write(org, obj, "update", row))
        return Response(status_code=204)

    @app.delete(rows_path + "/{record_id}", include_in_schema=False)
    def delete_row(request: Request, name: str, record_id: str, version: Version) -> Response:
        org = org_of(request)
        obj = sobject(org, name)
        raise_for(_write(org, obj, "delete", RowIn(id=_by_id(org, obj, record_id)["Id"])))
        return Response(status_code=204)

    ext_path = rows_path + "/{field}/{value:path}"

    def matches(org: Org, obj: ObjectDef, field: str, value: str) -> tuple[FieldDef, Any, list[Any]]:
        f = _ext_field(obj, field)
        if f.name == "Id":
            return f, value, [_by_id(org, obj, value)]
        key = coerce_key(org, obj, f, value)
        return f, key, _fetch(org, obj, f.name, key)

    @app.get(ext_path, include_in_schema=False)
    def get_by_ext(request: Request, name: str, field: str, value: str, version: Version) -> Response:
        org = org_of(request)
        obj = sobject(org, name)
        _, _, rows = matches(org, obj, field, value)
        if not rows:
            raise not_found()
        if len(rows) > 1:
            return sf_json(_urls(obj, version, rows), 300)
        fields = _fields_param(obj, request.query_params.get("fields"))
        return sf_json(record_json(obj, rows[0], version, fields))

    @app.patch(ext_path, include_in_schema=False)
    def upsert(request: Request, name: str, field: str, value: str, version: Version,
               payload: Payload = None) -> Response:
        org = org_of(request)
        obj = sobject(org, name)
        f = _ext_field(obj, field)
        row = org.parser.json_row(obj, _body(payload), "upsert")
        if f.name == "Id":
            row.id = value
        else:
            key = coerce_key(org, obj, f, value)
            given = row.values.get(f.name)
            if given is not None and given != key:
                raise sf_error(400, "INVALID_FIELD", f"The value of {f.name} in the body does not match the "
                               "external id in the URL", [f.name])
            row.values[f.name] = key
            dupes = _fetch(org, obj, f.name, key)
            if len(dupes) > 1:
                return sf_json(_urls(obj, version, dupes), 300)
        result = _write(org, obj, "upsert", row, f)
        raise_for(result)
        body = {"id": result.id, "success": True, "errors": [], "created": result.created}
        if result.created:
            return sf_json(body, 201)
        return sf_json(body, 200)

    @app.delete(ext_path, include_in_schema=False)
    def delete_by_ext(request: Request, name: str, field: str, value: str, version: Version) -> Response:
        org = org_of(request)
        obj = sobject(org, name)
        _, _, rows = matches(org, obj, field, value)
        if not rows:
            raise not_found()
        if len(rows) > 1:
            return sf_json(_urls(obj, version, rows), 300)
        raise_for(_write(org, obj, "delete", RowIn(id=rows[0]["Id"])))
        return Response(status_code=204)

