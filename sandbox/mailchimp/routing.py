"""A small endpoint registry on top of Starlette routes.

Handlers are plain synchronous functions ``fn(call) -> dict | None`` run in the thread pool
(SQLite is synchronous). The wrapper reads and parses the JSON body, checks the query string,
serializes with orjson and applies ``fields``/``exclude_fields``. All methods of one path share
one route, so a wrong method gets a 405 whose ``Allow`` lists every method of that path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from sandbox.mailchimp.errors import VALIDATION_DETAIL, ApiError, invalid
from sandbox.mailchimp.params import Query, project

if TYPE_CHECKING:
    from collections.abc import Callable

    from fastapi import FastAPI
    from starlette.requests import Request

    from sandbox.controls import Controls
    from sandbox.mailchimp.store import Store

JSON_TYPE = "application/json; charset=utf-8"
WRITE_ROLES = {"owner", "admin", "manager"}


@dataclass
class AppState:
    """What handlers share: the store, the public base URL (``http://host:port/3.0``), controls."""

    store: Store
    base_url: str
    controls: Controls


@dataclass
class Call:
    """One request as a handler sees it."""

    path: dict[str, str]
    query: Query
    body: Any
    state: AppState

    @property
    def store(self) -> Store:
        return self.state.store

    @property
    def base(self) -> str:
        return self.state.base_url


@dataclass
class Endpoint:
    fn: Callable[[Call], Any]
    params: tuple[str, ...]
    body: bool
    project: bool


@dataclass
class Api:
    """Collects endpoints under a prefix (``/3.0`` or ``/_sandbox``).

    :param prefix: URL prefix of every path
    :param check_role: refuse writes for read-only account roles (the public API only)
    """

    prefix: str
    check_role: bool = True
    table: dict[str, dict[str, Endpoint]] = field(default_factory=dict)

    def route(self, method: str, path: str, params: tuple[str, ...] = (), body: bool = False,
              ) -> Callable[[Callable[[Call], Any]], Callable[[Call], Any]]:
        """Register ``fn`` for ``method path``; ``params`` are the accepted query parameters."""

        def register(fn: Callable[[Call], Any]) -> Callable[[Call], Any]:
            methods = self.table.setdefault(path, {})
            methods[method] = Endpoint(fn, params, body, "fields" in params or "exclude_fields" in params)
            return fn

        return register

    def install(self, app: FastAPI, state: AppState) -> None:
        for path, methods in self.table.items():
            app.add_route(self.prefix + path, self._endpoint(methods, state), methods=list(methods))

    def _endpoint(self, methods: dict[str, Endpoint], state: AppState) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            method = "GET" if request.method == "HEAD" else request.method
            ep = methods[method]
            query = Query(request.query_params, ep.params)
            if self.check_role and method != "GET":
                role = state.store.meta("account", {}).get("role", "owner")
                if role not in WRITE_ROLES:
                    raise ApiError(403, f"The API key provided is linked to a user with the '{role}' role, "
                                   "which cannot make this request.", title="Forbidden")
            body = await read_json(request) if ep.body else None
            call = Call(dict(request.path_params), query, body, state)
            result = await run_in_threadpool(ep.fn, call)
            if result is None:
                return Response(status_code=204)
            if ep.project:
                result = project(result, query)
            return Response(orjson.dumps(result), media_type=JSON_TYPE)

        return endpoint


async def read_json(request: Request) -> dict[str, Any]:
    """The request body as a JSON object, or Mailchimp's parse error."""
    raw = await request.body()
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ApiError(400, "We encountered an unspecified JSON parsing error.", title="JSON Parse Error") from None
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.", title="Invalid Resource")
    return body


def body_field(call: Call, name: str, kind: type | tuple[type, ...], required: bool = False,
               default: Any = None) -> Any:
    """One field of the JSON body, type-checked with Mailchimp's validation error form."""
    value = call.body.get(name, default) if call.body else default
    if value is None:
        if required:
            raise invalid(VALIDATION_DETAIL, [{"field": name, "message": "This value should not be blank."}])
        return default
    if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, float, (int, float))):
        raise invalid(VALIDATION_DETAIL, [{"field": name, "message": f"Schema describes {_kind_name(kind)}, "
                                           f"{type(value).__name__} found instead"}])
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "string", int: "integer", float: "number", bool: "boolean", list: "array", dict: "object"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)
