"""Batch operations (``/batches``): many API calls in one request, answered as a tar.gz.

As in Mailchimp, ``POST /batches`` returns at once with status ``pending``; the operations
then run in a background thread through the same handlers as direct calls, and the batch
ends ``finished`` with a ``response_body_url``. That URL points at a gzipped tar of JSON files,
each an array of ``{status_code, operation_id, response}`` where ``response`` is the body as a
JSON *string* (Mailchimp's format). Like Mailchimp's pre-signed S3 links, the URL carries an
unguessable token and needs no API key.
"""

from __future__ import annotations

import io
import logging
import re
import secrets
import tarfile
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from starlette.datastructures import QueryParams
from starlette.responses import Response

from sandbox.mailchimp.errors import ApiError, invalid, not_found, problem_bytes
from sandbox.mailchimp.links import collection_links, item_links
from sandbox.mailchimp.params import PAGING, PROJECTION, Query, project
from sandbox.mailchimp.routing import WRITE_ROLES, Api, Call, body_field

if TYPE_CHECKING:
    import sqlite3

    from fastapi import FastAPI
    from starlette.requests import Request

    from sandbox.mailchimp.routing import AppState, Endpoint

log = logging.getLogger("sandbox.mailchimp")
api = Api("/3.0")
RESULTS_PREFIX = "/_sandbox/batch-results/"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
TABLE = """CREATE TABLE IF NOT EXISTS batches(
  seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, status TEXT NOT NULL, total INTEGER NOT NULL,
  finished INTEGER NOT NULL, errored INTEGER NOT NULL, submitted_at TEXT NOT NULL, completed_at TEXT NOT NULL,
  token TEXT NOT NULL, operations TEXT NOT NULL)"""


@dataclass
class Dispatcher:
    """Finds the handler of ``METHOD /path`` among the public routes (filled in by the app)."""

    routes: list[tuple[re.Pattern[str], dict[str, Endpoint]]]

    @classmethod
    def of(cls, apis: list[Api]) -> Dispatcher:
        routes = []
        for router in apis:
            for template, methods in router.table.items():
                pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template)
                routes.append((re.compile(f"^{pattern}$"), methods))
        return cls(routes)

    def run(self, state: AppState, method: str, path: str, params: dict[str, Any], body: str | None,
            ) -> tuple[int, bytes]:
        """One operation as ``(status, body)``; errors become problem documents, as over HTTP."""
        path = "/" + path.strip().removeprefix("/3.0").strip("/") if path.strip("/") else "/"
        try:
            for pattern, methods in self.routes:
                match = pattern.match(path)
                if match is None:
                    continue
                ep = methods.get(method)
                if ep is None:
                    raise ApiError(405, "The requested method and resource are not compatible.")
                if method != "GET" and state.store.meta("account", {}).get("role") not in WRITE_ROLES:
                    raise ApiError(403, "The API key's user role cannot make this request.", title="Forbidden")
                query = Query(QueryParams({k: _param(v) for k, v in (params or {}).items()}), ep.params)
                parsed = None
                if ep.body:
                    try:
                        parsed = orjson.loads(body or "")
                    except orjson.JSONDecodeError:
                        raise ApiError(400, "We encountered an unspecified JSON parsing error.",
                                       title="JSON Parse Error") from None
                result = ep.fn(Call(match.groupdict(), query, parsed, state))
                if result is None:
                    return 204, b""
                return 200, orjson.dumps(project(result, query) if ep.project else result)
            raise not_found()
        except ApiError as err:
            return err.status, problem_bytes(err.status, err.title, err.detail, secrets.token_hex(16), err.errors)


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)


def render_batch(row: sqlite3.Row, state: AppState) -> dict[str, Any]:
    done = row["status"] == "finished"
    root = state.base_url.removesuffix("/3.0")
    href = f"{state.base_url}/batches/{row['id']}"
    return {"id": row["id"], "status": row["status"], "total_operations": row["total"],
            "finished_operations": row["finished"], "errored_operations": row["errored"],
            "submitted_at": row["submitted_at"], "completed_at": row["completed_at"],
            "response_body_url": f"{root}{RESULTS_PREFIX}{row['token']}.tar.gz" if done else "",
            "_links": item_links(href, f"{state.base_url}/batches", "Batches", methods=("DELETE",))}


def _execute(state: AppState, dispatcher: Dispatcher, batch_id: str) -> None:
    store = state.store
    row = store.conn().execute("SELECT * FROM batches WHERE id=?", (batch_id,)).fetchone()
    with store.write() as conn:
        conn.execute("UPDATE batches SET status='started' WHERE id=?", (batch_id,))
    results, errored = [], 0
    for op in orjson.loads(row["operations"]):
        status, body = dispatcher.run(state, op["method"], op["path"], op.get("params") or {}, op.get("body"))
        errored += status >= 400
        results.append({"status_code": status, "operation_id": op.get("operation_id"), "response": body.decode()})
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        payload = orjson.dumps(results)
        info = tarfile.TarInfo(f"{batch_id}/{secrets.token_hex(8)}.json")
        info.size, info.mtime = len(payload), int(time.time())
        tar.addfile(info, io.BytesIO(payload))
    folder = store.path.parent / "batches"
    folder.mkdir(exist_ok=True)
    (folder / f"{row['token']}.tar.gz").write_bytes(archive.getvalue())
    with store.write() as conn:
        conn.execute("UPDATE batches SET status='finished', finished=?, errored=?, completed_at=? WHERE id=?",
                     (len(results), errored, store.clock.now_text(), batch_id))


_dispatcher: dict[int, Dispatcher] = {}


@api.route("POST", "/batches", body=True)
def create_batch(call: Call) -> dict[str, Any]:
    operations = body_field(call, "operations", list, required=True)
    for i, op in enumerate(operations):
        if not isinstance(op, dict) or op.get("method") not in METHODS or not isinstance(op.get("path"), str):
            raise invalid(f"operations[{i}] needs a method ({', '.join(METHODS)}) and a path.")
        if op.get("body") is not None and not isinstance(op["body"], str):
            raise invalid(f"operations[{i}].body must be a JSON-encoded string.")
    batch_id = secrets.token_hex(5)
    with call.store.write() as conn:
        conn.execute("INSERT INTO batches(id, status, total, finished, errored, submitted_at, completed_at, token, "
                     "operations) VALUES(?, 'pending', ?, 0, 0, ?, '', ?, ?)",
                     (batch_id, len(operations), call.store.clock.now_text(), secrets.token_urlsafe(24),
                      orjson.dumps(operations).decode()))
    submitted = _get(call, batch_id)  # rendered before the worker can move it past "pending"
    threading.Thread(target=_run_safely, args=(call.state, batch_id), name=f"batch-{batch_id}", daemon=True).start()
    return submitted


def _run_safely(state: AppState, batch_id: str) -> None:
    try:
        _execute(state, _dispatcher[id(state)], batch_id)
    except Exception:
        log.exception("batch %s failed", batch_id)


def _get(call: Call, batch_id: str) -> dict[str, Any]:
    row = call.store.conn().execute("SELECT * FROM batches WHERE id=?", (batch_id,)).fetchone()
    if row is None:
        raise not_found()
    return render_batch(row, call.state)


@api.route("GET", "/batches", params=PAGING)
def list_batches(call: Call) -> dict[str, Any]:
    count, offset = call.query.page()
    conn = call.store.conn()
    rows = conn.execute("SELECT * FROM batches ORDER BY seq DESC LIMIT ? OFFSET ?", (count, offset)).fetchall()
    return {"batches": [render_batch(r, call.state) for r in rows],
            "total_items": conn.execute("SELECT COUNT(*) FROM batches").fetchone()[0],
            "_links": collection_links(f"{call.base}/batches", call.base, "Batches")}


@api.route("GET", "/batches/{batch_id}", params=PROJECTION)
def get_batch(call: Call) -> dict[str, Any]:
    return _get(call, call.path["batch_id"])


@api.route("DELETE", "/batches/{batch_id}")
def delete_batch(call: Call) -> None:
    _get(call, call.path["batch_id"])
    with call.store.write() as conn:
        conn.execute("DELETE FROM batches WHERE id=?", (call.path["batch_id"],))


def install(app: FastAPI, state: AppState, apis: list[Api]) -> None:
    """Create the table, remember the dispatcher, and serve the result archives."""
    with state.store.write() as conn:
        conn.execute(TABLE)
    _dispatcher[id(state)] = Dispatcher.of(apis)
    folder = state.store.path.parent / "batches"

    async def results(request: Request) -> Response:
        token = request.path_params["token"]
        path = folder / f"{token}.tar.gz"
        if not re.fullmatch(r"[\w-]+", token) or not path.exists():
            raise not_found()
        return Response(path.read_bytes(), media_type="application/x-gzip")

    app.add_route(RESULTS_PREFIX + "{token}.tar.gz", results, methods=["GET"])
