"""Latency, fault injection, connection limits and request counting shared by both emulators.

Each emulator wraps its ASGI app in :class:`ControlsMiddleware` and mounts the private
``/_sandbox/...`` routes with :func:`add_control_routes`. The middleware is plain ASGI (no
BaseHTTPMiddleware) so it costs next to nothing per request.

Fault spec grammar (``--faults``), comma-separated ``kind:rate`` pairs, rates in [0, 1]::

    429:0.05,500:0.01,503:0.01,drop:0.01,slow:0.02@1500,lock:0.01

- ``429``/``500``/``502``/``503``/``504``: answer that status instead of serving the request
  (429 and 503 carry ``Retry-After: 1``);
- ``drop``: start the response and cut the connection mid-body (the client sees a broken
  connection); the request is never served;
- ``lost``: serve the request (its writes are committed), then cut the connection mid-body, so
  the client cannot tell whether it took effect — the case that tells idempotent retries from
  duplicating ones;
- ``slow``: add the given milliseconds (default 1000) to that request;
- ``lock``: not applied here; the Salesforce emulator reads ``controls.rate("lock")`` to fail
  single rows of writes (Bulk 2.0 jobs and sObject Collections) with UNABLE_TO_LOCK_ROW, and
  counts each one with :meth:`Controls.record`.

Draws come from one ``random.Random(seed)``, so a given request sequence meets the same faults.
Paths under ``/_sandbox`` never get faults or latency and are not counted.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from fastapi import FastAPI

    Scope = dict[str, Any]
    Receive = Callable[[], Awaitable[dict[str, Any]]]
    Send = Callable[[dict[str, Any]], Awaitable[None]]
    ErrorBody = Callable[[int, str], tuple[str, bytes]]

STATUS_FAULTS = ("429", "500", "502", "503", "504")
KNOWN_FAULTS = (*STATUS_FAULTS, "drop", "lost", "slow", "lock")
PRIVATE_PREFIX = "/_sandbox"


class FaultSpecError(ValueError):
    """A --faults value that cannot be parsed; the message names the bad part."""


def parse_faults(spec: str | None) -> dict[str, tuple[float, int]]:
    """Parse ``kind:rate[@ms]`` pairs into ``{kind: (rate, ms)}``.

    :param spec: the spec string, empty or None for no faults
    """
    faults: dict[str, tuple[float, int]] = {}
    for part in filter(None, (p.strip() for p in (spec or "").split(","))):
        kind, sep, rest = part.partition(":")
        if not sep or kind not in KNOWN_FAULTS:
            raise FaultSpecError(
                f"fault {part!r}: expected KIND:RATE with KIND one of {', '.join(KNOWN_FAULTS)}"
            )
        rate_text, _, ms_text = rest.partition("@")
        try:
            rate = float(rate_text)
            ms = int(ms_text) if ms_text else 1000
        except ValueError as err:
            raise FaultSpecError(f"fault {part!r}: RATE must be a number and @MS an integer") from err
        if not 0.0 <= rate <= 1.0:
            raise FaultSpecError(f"fault {part!r}: RATE must lie between 0 and 1")
        faults[kind] = (rate, ms)
    return faults


@dataclass
class Controls:
    """Mutable knobs of one emulator; shared by its middleware and its handlers."""

    latency_ms: int = 0
    faults: dict[str, tuple[float, int]] = field(default_factory=dict)
    seed: int = 0
    max_in_flight: int | None = None
    counts: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0
    rejected_over_limit: int = 0
    faults_injected: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        self._lock = threading.Lock()

    def draw(self) -> float:
        with self._lock:
            return self._random.random()

    def rate(self, kind: str) -> float:
        return self.faults.get(kind, (0.0, 0))[0]

    def roll(self, kind: str) -> bool:
        """True when a fault of ``kind`` should happen now (counted when it does)."""
        rate = self.rate(kind)
        if rate and self.draw() < rate:
            with self._lock:
                self.faults_injected[kind] += 1
            return True
        return False

    def record(self, kind: str) -> None:
        """Count a fault an emulator applied itself (a row lock), so the counts show every fault."""
        with self._lock:
            self.faults_injected[kind] += 1

    def reseed(self, seed: int) -> None:
        """Restart the draws from ``seed``: a soak varies the faults without re-seeding the data."""
        with self._lock:
            self.seed = seed
            self._random = random.Random(seed)

    def count(self, key: str) -> None:
        with self._lock:
            self.counts[key] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "total": sum(self.counts.values()),
                "by_endpoint": dict(sorted(self.counts.items())),
                "rejected_over_connection_limit": self.rejected_over_limit,
                "faults_injected": dict(self.faults_injected),
                "latency_ms": self.latency_ms,
                "faults": {k: {"rate": r, "ms": ms} for k, (r, ms) in self.faults.items()},
            }

    def reset_counts(self) -> None:
        with self._lock:
            self.counts.clear()
            self.faults_injected.clear()
            self.rejected_over_limit = 0


class ControlsMiddleware:
    """ASGI middleware: connection limit, latency, faults, per-endpoint counts.

    :param app: the emulator's ASGI app
    :param controls: the emulator's knobs
    :param error_body: ``(status, message) -> (content_type, body)`` in the API's own error form
    """

    def __init__(self, app: Any, controls: Controls, error_body: ErrorBody) -> None:
        self.app = app
        self.controls = controls
        self.error_body = error_body
        self._in_flight_lock = asyncio.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(PRIVATE_PREFIX):
            await self.app(scope, receive, send)
            return
        c = self.controls
        limit = c.max_in_flight
        if limit is not None:
            async with self._in_flight_lock:
                over = c.in_flight >= limit
                if over:
                    c.rejected_over_limit += 1
                else:
                    c.in_flight += 1
            if over:
                c.count(f"{scope['method']} (over connection limit)")
                await self._error(send, 429, "You have exceeded the limit of simultaneous connections.")
                return
        try:
            await self._serve(scope, receive, send)
        finally:
            if limit is not None:
                async with self._in_flight_lock:
                    c.in_flight -= 1

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        c = self.controls
        delay_ms = c.latency_ms
        if c.roll("slow"):
            delay_ms += c.faults["slow"][1]
        if delay_ms:
            await asyncio.sleep(delay_ms / 1000)
        for status in STATUS_FAULTS:
            if c.roll(status):
                c.count(f"{scope['method']} (injected {status})")
                await self._error(send, int(status), "Injected fault: the sandbox answers with an error.")
                return
        if c.roll("drop"):
            c.count(f"{scope['method']} (injected drop)")
            await self._cut(send)
        if c.roll("lost"):
            c.count(f"{scope['method']} (injected lost response)")

            async def swallow(message: dict[str, Any]) -> None:  # the answer never reaches the client
                return None

            await self.app(scope, receive, swallow)
            await self._cut(send)
        await self.app(scope, receive, send)
        route = scope.get("route")
        template = getattr(route, "path", None) or scope["path"]
        c.count(f"{scope['method']} {template}")

    @staticmethod
    async def _cut(send: Send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")]})
        await send({"type": "http.response.body", "body": b'{"partial', "more_body": True})
        raise ConnectionAbortedError("sandbox fault: connection dropped")

    async def _error(self, send: Send, status: int, message: str) -> None:
        content_type, body = self.error_body(status, message)
        headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
        if status in (429, 503):
            headers.append((b"retry-after", b"1"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def add_control_routes(app: FastAPI, controls: Controls, auth: Callable[..., Any]) -> None:
    """Mount the private endpoints (request counts, runtime fault and latency changes).

    ``GET /_sandbox/requests`` — counts per endpoint; ``POST /_sandbox/requests/reset``;
    ``POST /_sandbox/controls`` with ``{"latency_ms": N, "faults": "SPEC", "seed": S}`` (any of the keys;
    ``seed`` restarts the fault draws).

    :param auth: a FastAPI dependency that enforces the emulator's own authentication
    """
    from fastapi import Body, Depends, HTTPException

    @app.get(f"{PRIVATE_PREFIX}/requests", dependencies=[Depends(auth)], include_in_schema=False)
    def requests_made() -> dict[str, Any]:
        return controls.snapshot()

    @app.post(f"{PRIVATE_PREFIX}/requests/reset", dependencies=[Depends(auth)], include_in_schema=False)
    def reset_requests() -> dict[str, Any]:
        controls.reset_counts()
        return controls.snapshot()

    @app.post(f"{PRIVATE_PREFIX}/controls", dependencies=[Depends(auth)], include_in_schema=False)
    def set_controls(body: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
        try:
            faults = parse_faults(body["faults"]) if "faults" in body else controls.faults
            latency = int(body.get("latency_ms", controls.latency_ms))
            seed = int(body["seed"]) if "seed" in body else None
        except (FaultSpecError, ValueError, TypeError) as err:
            raise HTTPException(status_code=400, detail=str(err)) from err
        controls.faults, controls.latency_ms = faults, max(0, latency)
        if seed is not None:
            controls.reseed(seed)
        return controls.snapshot()


def json_error(status: int, payload: Any) -> tuple[str, bytes]:
    """Helper for error_body callbacks."""
    return "application/json", json.dumps(payload).encode()
