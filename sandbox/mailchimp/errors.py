"""Mailchimp's error form: RFC 7807 problem documents with Mailchimp's titles.

Every error leaves the emulator as ``application/problem+json; charset=utf-8`` with
``type, title, status, detail, instance`` (+ ``errors`` on validation failures), an
``X-Request-Id`` equal to ``instance`` (added by the gateway) and the ``Link: ...; rel="describedBy"`` header the real
API sends. The official Python client then hands callers ``ApiClientError.text`` as a JSON
*string*, exactly as against the real API.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from fastapi import FastAPI
    from starlette.requests import Request

log = logging.getLogger("sandbox.mailchimp")

ERROR_TYPE = "https://mailchimp.com/developer/marketing/docs/errors/"
PROBLEM_TYPE = "application/problem+json; charset=utf-8"
DESCRIBED_BY = '<https://us1.api.mailchimp.com/schema/3.0/ProblemDetailDocument.json>; rel="describedBy"'

TITLES = {
    400: "Bad Request",
    401: "API Key Invalid",
    403: "Forbidden",
    404: "Resource Not Found",
    405: "Method Not Allowed",
    413: "Request Entity Too Large",
    414: "Resource Nesting Too Deep",
    422: "Invalid Method Override",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
NOT_FOUND_DETAIL = "The requested resource could not be found."
VALIDATION_DETAIL = "The resource submitted could not be validated. For field-specific details, see the 'errors' array."


class ApiError(Exception):
    """Raised anywhere in a handler; rendered as a problem document.

    :param status: HTTP status
    :param title: Mailchimp's title for the error (defaults to the status' usual title)
    :param detail: the human-readable explanation
    :param errors: field-level errors ``[{"field", "message"}]`` for validation failures
    :param headers: extra response headers (``Allow`` on 405)
    """

    def __init__(
        self,
        status: int,
        detail: str,
        title: str | None = None,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title or TITLES.get(status, "Error")
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}


def not_found(detail: str = NOT_FOUND_DETAIL) -> ApiError:
    return ApiError(404, detail)


def invalid(detail: str, errors: list[dict[str, str]] | None = None) -> ApiError:
    """400 "Invalid Resource": a body that parses but does not validate."""
    return ApiError(400, detail, title="Invalid Resource", errors=errors)


def bad_param(name: str, expected: str) -> ApiError:
    return ApiError(400, f"The value of the '{name}' query parameter is invalid: expected {expected}.",
                    title="Invalid Resource")


def problem_bytes(status: int, title: str, detail: str, instance: str,
                  errors: list[dict[str, str]] | None = None) -> bytes:
    doc: dict[str, Any] = {"type": ERROR_TYPE, "title": title, "status": status, "detail": detail,
                           "instance": instance}
    if errors is not None:
        doc["errors"] = errors
    return orjson.dumps(doc)


def problem_headers(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Headers of an error response (the gateway adds ``X-Request-Id`` to every response)."""
    return {"Link": DESCRIBED_BY, **(extra or {})}


def error_body(status: int, message: str) -> tuple[str, bytes]:
    """``error_body`` callback of ControlsMiddleware (connection limit, injected faults)."""
    return PROBLEM_TYPE, problem_bytes(status, TITLES.get(status, "Error"), message, str(uuid.uuid4()))


def request_id(request: Request) -> str:
    return request.scope.get("state", {}).get("request_id") or str(uuid.uuid4())


def install(app: FastAPI) -> None:
    """Route every failure, including Starlette's own 404/405 and crashes, to problem documents."""
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException as StarletteHTTPException
    from starlette.responses import Response

    def respond(request: Request, exc: ApiError) -> Response:
        rid = request_id(request)
        return Response(problem_bytes(exc.status, exc.title, exc.detail, rid, exc.errors),
                        status_code=exc.status, media_type=PROBLEM_TYPE,
                        headers=problem_headers(exc.headers))

    async def on_api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return respond(request, exc)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 404:
            return respond(request, not_found())
        if exc.status_code == 405:
            detail = ("The requested method and resource are not compatible. See the Allow header for this "
                      "resource's available methods.")
            return respond(request, ApiError(405, detail, headers=dict(exc.headers or {})))
        return respond(request, ApiError(exc.status_code, str(exc.detail)))

    async def on_crash(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return respond(request, ApiError(500, "An unexpected internal error has occurred. Please contact Support "
                                              "for more information."))

    async def on_body_error(request: Request, exc: Exception) -> Response:  # FastAPI-parsed bodies (control routes)
        return respond(request, ApiError(400, "We encountered an unspecified JSON parsing error.",
                                         title="JSON Parse Error"))

    app.add_exception_handler(RequestValidationError, on_body_error)
    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_crash)
