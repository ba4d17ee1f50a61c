"""What every request passes before routing: API key, body size limit, request id.

It is plain ASGI, inside ControlsMiddleware and outside FastAPI, so unknown paths (404),
wrong methods (405) and the private ``/_sandbox`` routes are all behind the same key check,
as the brief for the emulator requires.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import uuid
from typing import TYPE_CHECKING, Any

from sandbox.mailchimp.errors import PROBLEM_TYPE, ApiError, problem_bytes, problem_headers

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from sandbox.mailchimp.store import Store

MAX_BODY_BYTES = 10 * 1024 * 1024
PUBLIC_PREFIX = "/_sandbox/batch-results/"  # token-protected, like Mailchimp's pre-signed S3 links
DATACENTER = "us1"

KEY_MISSING = ApiError(401, "Your request did not include an API key.", title="API Key Missing")
KEY_INVALID = ApiError(401, "Your API key may be invalid, or you've attempted to access the wrong datacenter.",
                       title="API Key Invalid")
WRONG_DC = ApiError(403, "The API key provided is linked to a different datacenter.", title="Wrong Datacenter")
TOO_LARGE = ApiError(413, f"The request body is larger than the {MAX_BODY_BYTES // (1024 * 1024)} MB this API accepts.")


def presented_key(authorization: str | None) -> str | None:
    """The API key in an ``Authorization`` header: Basic (any user, key as password) or Bearer."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer":
        return value.strip() or None
    if scheme == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return ""
        return decoded.partition(":")[2]
    return ""


def check_key(expected: str, authorization: str | None) -> None:
    """Raise the error Mailchimp gives for a missing, wrong, or other-datacenter key."""
    key = presented_key(authorization)
    if key is None:
        raise KEY_MISSING
    if hmac.compare_digest(key.encode(), expected.encode()):
        return
    secret, _, dc = key.rpartition("-")
    if dc and dc != DATACENTER and hmac.compare_digest(secret.encode(), expected.rpartition("-")[0].encode()):
        raise WRONG_DC
    raise KEY_INVALID


class GatewayMiddleware:
    """Auth, body-size limit and ``X-Request-Id`` for every HTTP request.

    :param app: the FastAPI app
    :param store: where the API key lives
    """

    def __init__(self, app: Any, store: Store) -> None:
        self.app = app
        self.store = store
        self.api_key: str = store.meta("api_key")

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Awaitable[dict[str, Any]]],
                       send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = str(uuid.uuid4())
        scope.setdefault("state", {})["request_id"] = rid
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            if not scope["path"].startswith(PUBLIC_PREFIX):
                check_key(self.api_key, headers.get("authorization"))
            length = headers.get("content-length")
            if length and length.isdigit() and int(length) > MAX_BODY_BYTES:
                raise TOO_LARGE
        except ApiError as err:
            await self._reject(send, err, rid)
            return

        received = 0

        async def limited_receive() -> dict[str, Any]:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > MAX_BODY_BYTES:
                raise TOO_LARGE
            return message

        async def send_with_id(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        await self.app(scope, limited_receive, send_with_id)

    @staticmethod
    async def _reject(send: Callable[[dict[str, Any]], Awaitable[None]], err: ApiError, rid: str) -> None:
        body = problem_bytes(err.status, err.title, err.detail, rid, err.errors)
        headers = [(b"content-type", PROBLEM_TYPE.encode()), (b"content-length", str(len(body)).encode())]
        headers += [(k.lower().encode(), v.encode()) for k, v in problem_headers({"X-Request-Id": rid}).items()]
        await send({"type": "http.response.start", "status": err.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
