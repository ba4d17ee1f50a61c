"""Private ``/_sandbox`` routes for tests and demos (bearer token required, never counted)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Body, Depends, Request
from fastapi.responses import Response

from sandbox.controls import PRIVATE_PREFIX, add_control_routes
from sandbox.salesforce.app import Org, org_of, sf_json
from sandbox.salesforce.errors import sf_error
from sandbox.salesforce.rest import _dict_row, sobject
from sandbox.salesforce.store import q

if TYPE_CHECKING:
    from fastapi import FastAPI


def bearer(request: Request) -> str:
    return org_of(request).tokens.check(request.headers.get("authorization"))


Token = Annotated[str, Depends(bearer)]
Json = Annotated[Any, Body()]


def install(app: FastAPI, org: Org) -> None:
    add_control_routes(app, org.controls, bearer)
    p = PRIVATE_PREFIX

    @app.post(f"{p}/oauth/ttl", include_in_schema=False)
    def set_ttl(request: Request, token: Token, payload: Json = None) -> Response:
        seconds = payload.get("seconds") if isinstance(payload, dict) else None
        if not isinstance(seconds, (int, float)) or seconds < 0:
            raise sf_error(400, "INVALID_INPUT", 'expected {"seconds": N} with N >= 0')
        target = payload.get("token")
        if not org_of(request).tokens.set_ttl(float(seconds), target):
            raise sf_error(404, "NOT_FOUND", "no such token")
        return sf_json({"token_ttl_seconds": seconds, "token": "given" if target else "all"})

    @app.post(f"{p}/oauth/revoke", include_in_schema=False)
    def revoke(request: Request, token: Token, payload: Json = None) -> Response:
        target = payload.get("token", token) if isinstance(payload, dict) else token
        return sf_json({"revoked": org_of(request).tokens.revoke(target)})

    @app.post(f"{p}/limits", include_in_schema=False)
    def set_limits(request: Request, token: Token, payload: Json = None) -> Response:
        limits = org_of(request).limits
        if not isinstance(payload, dict) or any(k not in limits.max for k in payload):
            raise sf_error(400, "INVALID_INPUT",
                           f"expected {{NAME: {{Max, Remaining}}}} with NAME in {sorted(limits.max)}")
        for name, spec in payload.items():
            most = int(spec.get("Max", limits.max[name]))
            limits.max[name] = most
            limits.used[name] = most - int(spec.get("Remaining", most - limits.used.get(name, 0)))
        return sf_json(limits.snapshot())

    @app.get(f"{p}/objects/{{name}}/count", include_in_schema=False)
    def count(request: Request, name: str, token: Token, include_deleted: bool = False) -> Response:
        o = org_of(request)
        obj = sobject(o, name)
        return sf_json({"object": obj.name, "count": o.store.count(obj, include_deleted)})

    @app.get(f"{p}/objects/{{name}}/rows", include_in_schema=False)
    def rows(request: Request, name: str, token: Token, include_deleted: bool = False, limit: int = 1000,
             offset: int = 0) -> Response:
        o = org_of(request)
        obj = sobject(o, name)
        c = o.store.conn()
        c.row_factory = _dict_row
        try:
            where = "" if include_deleted else " WHERE IsDeleted = 0"
            found = c.execute(f"SELECT * FROM {q(obj.name)}{where} ORDER BY _n LIMIT ? OFFSET ?",
                              (max(0, min(limit, 100_000)), max(0, offset))).fetchall()
        finally:
            c.row_factory = None
        for r in found:
            r.pop("_n", None)
        return sf_json({"object": obj.name, "records": found})

    @app.get(f"{p}/schema", include_in_schema=False)
    def schema(request: Request, token: Token) -> Response:
        objs = org_of(request).schema.objects.values()
        return sf_json({o.name: {"keyPrefix": o.key_prefix, "fields": list(o.fields)} for o in objs})
