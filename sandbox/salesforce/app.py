"""Assemble the Salesforce emulator: state, routes, error forms, API limits, controls middleware."""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from sandbox.controls import Controls, ControlsMiddleware
from sandbox.salesforce.auth import Tokens
from sandbox.salesforce.dml import Writer
from sandbox.salesforce.errors import STATUS_CODES, ApiError, error_body, not_found
from sandbox.salesforce.rowparse import Parser
from sandbox.salesforce.store import Store

if TYPE_CHECKING:
    from sandbox.salesforce.bulk2 import Jobs
    from sandbox.salesforce.rest import Cursors

log = logging.getLogger("sandbox.salesforce")
VERSIONS = [f"{n}.0" for n in range(50, 63)]
RELEASES = ["Winter", "Spring", "Summer"]
DATA_PREFIX = "/services/data/v"


@dataclass
class Limits:
    """Org limits that count down (``/limits``); Max values can be changed via /_sandbox/limits."""

    max: dict[str, int] = field(default_factory=lambda: {
        "DailyApiRequests": 100_000, "DailyBulkApiBatches": 15_000, "DailyBulkV2QueryJobs": 10_000,
        "DailyBulkV2QueryFileStorageMB": 976_562, "DataStorageMB": 1_024, "FileStorageMB": 1_024,
        "ConcurrentAsyncGetReportInstances": 200, "HourlyODataCallout": 10_000,
    })
    used: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def spend(self, name: str, n: int = 1) -> bool:
        with self._lock:
            if self.used.get(name, 0) + n > self.max[name]:
                return False
            self.used[name] = self.used.get(name, 0) + n
            return True

    def usage(self, name: str) -> tuple[int, int]:
        with self._lock:
            return self.used.get(name, 0), self.max[name]

    def snapshot(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {k: {"Max": m, "Remaining": m - self.used.get(k, 0)} for k, m in self.max.items()}


@dataclass
class Org:
    """Everything a handler needs; one per app, on ``app.state.org``."""

    store: Store
    writer: Writer
    parser: Parser
    tokens: Tokens
    limits: Limits
    controls: Controls
    base_url: str
    cursors: Cursors = None  # type: ignore[assignment]
    jobs: Jobs = None  # type: ignore[assignment]

    @property
    def schema(self) -> Any:
        return self.store.schema


def sf_json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(data, ensure_ascii=False).encode(), status, headers,
                    media_type="application/json;charset=UTF-8")


def org_of(request: Request) -> Org:
    return request.app.state.org


def api_version(request: Request, version: str) -> str:
    """Dependency of every /services/data/vXX.X route: known version and a valid bearer token."""
    if not version.startswith("v") or version[1:] not in VERSIONS:
        raise not_found()
    org_of(request).tokens.check(request.headers.get("authorization"))
    return version[1:]


Version = Annotated[str, Depends(api_version)]


class LimitsMiddleware:
    """Counts every REST call against DailyApiRequests and reports it in ``Sforce-Limit-Info``."""

    def __init__(self, app: Any, limits: Limits) -> None:
        self.app, self.limits = app, limits

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(DATA_PREFIX):
            await self.app(scope, receive, send)
            return
        if not self.limits.spend("DailyApiRequests"):
            body = json.dumps([{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}])
            await send({"type": "http.response.start", "status": 403,
                        "headers": [(b"content-type", b"application/json;charset=UTF-8")]})
            await send({"type": "http.response.body", "body": body.encode()})
            return

        async def send_with_usage(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                used, most = self.limits.usage("DailyApiRequests")
                message["headers"] = [*message.get("headers", []),
                                      (b"sforce-limit-info", f"api-usage={used}/{most}".encode())]
            await send(message)

        await self.app(scope, receive, send_with_usage)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> Response:
        return sf_json(exc.body, exc.status, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return sf_json(not_found().body, 404)
        code = STATUS_CODES.get(exc.status_code, "UNKNOWN_EXCEPTION")
        message = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        return sf_json([{"message": message, "errorCode": code}], exc.status_code, dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def bad_body(_: Request, exc: RequestValidationError) -> Response:
        return sf_json([{"message": "The request body is not valid JSON", "errorCode": "JSON_PARSER_ERROR"}], 400)

    @app.exception_handler(Exception)
    async def crash(_: Request, exc: Exception) -> Response:
        log.exception("unhandled error in the Salesforce sandbox")
        return sf_json([{"message": f"An unexpected error occurred: {type(exc).__name__}",
                         "errorCode": "UNKNOWN_EXCEPTION"}], 500)


def create_app(state_dir: Path, controls: Controls, base_url: str) -> Any:
    """The emulator as an ASGI app, wrapped in ControlsMiddleware.

    :param state_dir: where the org's SQLite file, bulk job files and credentials live
    :param controls: shared latency/fault/count knobs (``controls.rate("lock")`` fails bulk rows)
    :param base_url: the ``https://127.0.0.1:PORT`` clients use; returned as ``instance_url``
    """
    from sandbox.salesforce import auth, bulk1, bulk2_routes, composite, private, rest

    metadata = os.environ.get("MCSF_SF_METADATA")
    store = Store(Path(state_dir), Path(metadata) if metadata else None)
    limits = Limits()
    org = Org(store=store, writer=Writer(store), parser=Parser(store.schema),
              tokens=Tokens(store, Path(state_dir), base_url), limits=limits, controls=controls,
              base_url=base_url.rstrip("/"))
    app = FastAPI(title="mcsf Salesforce sandbox", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.org = org
    _install_error_handlers(app)
    rest.install(app, org)
    composite.install(app)
    bulk2_routes.install(app, org)
    bulk1.install(app, org)  # for SalesforceBulkOperator, which speaks Bulk 1.0 only
    auth.install(app)
    private.install(app, org)
    return ControlsMiddleware(LimitsMiddleware(app, limits), controls, error_body)
