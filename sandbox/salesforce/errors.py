"""Salesforce's error shapes: a JSON list of ``{message, errorCode[, fields]}`` for the REST API."""

from __future__ import annotations

import json
from typing import Any


class ApiError(Exception):
    """Answer the request with ``status`` and ``body`` (already in Salesforce's form)."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


def sf_error(status: int, code: str, message: str, fields: list[str] | None = None) -> ApiError:
    item: dict[str, Any] = {"message": message, "errorCode": code}
    if fields is not None:
        item["fields"] = fields
    return ApiError(status, [item])


def not_found() -> ApiError:
    return sf_error(404, "NOT_FOUND", "The requested resource does not exist")


STATUS_CODES = {400: "MALFORMED_REQUEST", 401: "INVALID_SESSION_ID", 403: "REQUEST_LIMIT_EXCEEDED",
                404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 429: "REQUEST_LIMIT_EXCEEDED",
                500: "UNKNOWN_EXCEPTION", 502: "SERVER_UNAVAILABLE", 503: "SERVER_UNAVAILABLE",
                504: "REQUEST_RUNNING_TOO_LONG"}


def error_body(status: int, message: str) -> tuple[str, bytes]:
    """For :class:`ControlsMiddleware`: injected faults in Salesforce's JSON-list form."""
    code = STATUS_CODES.get(status, "UNKNOWN_EXCEPTION")
    return "application/json;charset=UTF-8", json.dumps([{"message": message, "errorCode": code}]).encode()
