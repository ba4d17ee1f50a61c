"""Bulk API 1.0 ingest jobs with JSON batches: ``/services/async/{version}/job...``.

Enough of Bulk 1.0 for ``simple-salesforce``'s ``sf.bulk.<Object>.<op>()`` and so Airflow's
``SalesforceBulkOperator`` (which builds its own hook and cannot use Bulk 2.0): create a job,
add JSON batches (at most 10,000 records and 10 MB each), poll the batch, read its results,
close the job. Batches are processed in order by one worker thread through the shared DML engine
(one transaction per batch), so a poll right after the upload usually sees ``Queued`` or
``InProgress``, as against Salesforce. Auth is the ``X-SFDC-Session`` header (a bearer token
from the OAuth endpoint). Errors come as ``{"exceptionCode", "exceptionMessage"}``.

Jobs live in memory and batch results in ``<state>/bulk1/``; a restart forgets the jobs. Not
emulated: CSV and XML content, query jobs, ``concurrencyMode`` differences, PK chunking.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import Response

from sandbox.salesforce import ids
from sandbox.salesforce.app import VERSIONS, org_of
from sandbox.salesforce.records import RowIn, err

if TYPE_CHECKING:
    from fastapi import FastAPI

    from sandbox.salesforce.app import Org

OPERATIONS = ("insert", "update", "upsert", "delete", "hardDelete")
MAX_RECORDS = 10_000
MAX_BYTES = 10_000_000
ID_OFFSET = 1 << 40  # Bulk 1.0 ids count apart from Bulk 2.0's, both under the 750 prefix


class BulkError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class Batch:
    id: str
    job_id: str
    created: str
    state: str = "Queued"
    message: str | None = None
    processed: int = 0
    failed: int = 0
    processing_ms: int = 0

    def info(self) -> dict[str, Any]:
        return {"apexProcessingTime": 0, "apiActiveProcessingTime": self.processing_ms,
                "createdDate": self.created, "id": self.id, "jobId": self.job_id,
                "numberRecordsFailed": self.failed, "numberRecordsProcessed": self.processed,
                "state": self.state, "stateMessage": self.message, "systemModstamp": self.created,
                "totalProcessingTime": self.processing_ms}


@dataclass
class Job:
    id: str
    operation: str
    object: str
    external_id: str | None
    concurrency: str
    version: str
    created: str
    created_by: str
    state: str = "Open"
    batches: list[Batch] = field(default_factory=list)

    def info(self) -> dict[str, Any]:
        states = [b.state for b in self.batches]
        return {"apexProcessingTime": 0, "apiActiveProcessingTime": sum(b.processing_ms for b in self.batches),
                "apiVersion": float(self.version), "assignmentRuleId": None, "concurrencyMode": self.concurrency,
                "contentType": "JSON", "createdById": self.created_by, "createdDate": self.created,
                "externalIdFieldName": self.external_id, "fastPathEnabled": False, "id": self.id,
                "numberBatchesCompleted": states.count("Completed"), "numberBatchesFailed": states.count("Failed"),
                "numberBatchesInProgress": states.count("InProgress"), "numberBatchesQueued": states.count("Queued"),
                "numberBatchesTotal": len(states), "numberRecordsFailed": sum(b.failed for b in self.batches),
                "numberRecordsProcessed": sum(b.processed for b in self.batches), "numberRetries": 0,
                "object": self.object, "operation": self.operation, "state": self.state,
                "systemModstamp": self.created, "totalProcessingTime": sum(b.processing_ms for b in self.batches)}


class Bulk1:
    """The job registry and the worker that writes the batches."""

    def __init__(self, org: Org) -> None:
        self.org = org
        self.root = org.store.state_dir / "bulk1"
        self.root.mkdir(parents=True, exist_ok=True)
        self.jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._counter = 0
        self._queue: queue.Queue[tuple[Job, Batch]] = queue.Queue()
        threading.Thread(target=self._work, name="sf-bulk1", daemon=True).start()

    def _next_id(self, prefix: str) -> str:
        with self._lock:
            self._counter += 1
            return ids.encode(prefix, ID_OFFSET + self._counter)

    def _stamp(self) -> str:
        return self.org.store.now()[:-1] + "+0000"

    def create(self, payload: Any, version: str) -> Job:
        if not isinstance(payload, dict):
            raise BulkError(400, "InvalidJob", "The job body must be a JSON object")
        op = payload.get("operation")
        if op not in OPERATIONS:
            raise BulkError(400, "InvalidJob", f"Invalid operation: {op} (query jobs are not emulated)")
        if str(payload.get("contentType") or "JSON") != "JSON":
            raise BulkError(400, "InvalidJob", "Only the JSON content type is emulated")
        obj = self.org.schema.get(str(payload.get("object") or ""))
        if obj is None:
            raise BulkError(400, "InvalidJob", f"Unable to find object: {payload.get('object')}")
        ext_name = payload.get("externalIdFieldName")
        if op == "upsert":
            ext = obj.field(str(ext_name or ""))
            if ext is None or not (ext.external_id or ext.name == "Id"):
                raise BulkError(400, "InvalidJob", f"The field {ext_name} is not an External ID field on {obj.name}")
            ext_name = ext.name
        mode = payload.get("concurrencyMode", "Parallel")  # simple-salesforce sends 0 (parallel) or 1 (serial)
        job = Job(self._next_id("750"), op, obj.name, ext_name if op == "upsert" else None,
                  "Serial" if mode in (1, "1", "Serial") else "Parallel", version, self._stamp(),
                  self.org.store.user_id)
        self.jobs[job.id] = job
        return job

    def job(self, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise BulkError(400, "InvalidJob", f"Invalid job id: {job_id}")
        return job

    def batch(self, job: Job, batch_id: str) -> Batch:
        for b in job.batches:
            if b.id == batch_id:
                return b
        raise BulkError(400, "InvalidBatch", f"Invalid batch id: {batch_id}")

    def add_batch(self, job: Job, body: bytes) -> Batch:
        if job.state != "Open":
            raise BulkError(400, "InvalidJobState", f"Job {job.id} is not open for new batches (state {job.state})")
        batch = Batch(self._next_id("751"), job.id, self._stamp())
        if len(body) > MAX_BYTES:
            batch.state, batch.message = "Failed", f"InvalidBatch : Exceeded max size limit of {MAX_BYTES}"
        job.batches.append(batch)
        if batch.state == "Queued":
            (self.root / f"{batch.id}.request.json").write_bytes(body)
            self._queue.put((job, batch))
        return batch

    def results(self, batch: Batch) -> bytes:
        if batch.state not in ("Completed", "Failed"):
            raise BulkError(400, "InvalidBatch", f"Batch {batch.id} is not finished (state {batch.state})")
        path = self.root / f"{batch.id}.result.json"
        return path.read_bytes() if path.exists() else b"[]"

    def _work(self) -> None:
        while True:
            job, batch = self._queue.get()
            started = time.monotonic()
            batch.state = "InProgress"
            try:
                self._process(job, batch)
                batch.state = "Completed"
            except BulkError as e:
                batch.state, batch.message = "Failed", f"{e.code} : {e.message}"
            except Exception as e:  # a sandbox bug fails the batch, never the worker
                batch.state, batch.message = "Failed", f"InternalServerError : {type(e).__name__}: {e}"
            batch.processing_ms = int((time.monotonic() - started) * 1000)

    def _process(self, job: Job, batch: Batch) -> None:
        org = self.org
        try:
            records = json.loads((self.root / f"{batch.id}.request.json").read_bytes())
        except ValueError:
            raise BulkError(400, "InvalidBatch", "Failed to parse JSON") from None
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise BulkError(400, "InvalidBatch", "The batch must be a JSON array of records")
        if len(records) > MAX_RECORDS:
            raise BulkError(400, "InvalidBatch", f"Records in a batch must be at most {MAX_RECORDS}")
        obj = org.schema.objects[job.object]
        ext = obj.field(job.external_id) if job.external_id else None
        op = job.operation
        if op in ("delete", "hardDelete"):
            rows = [RowIn(id=r.get("Id")) for r in records]
        else:
            rows = [org.parser.json_row(obj, r, op) for r in records]
            if op == "update":
                for row in rows:
                    if not row.id:
                        row.errors.append(err("MISSING_ARGUMENT", "Id not specified in an update call", ["Id"]))
        with org.store.transaction() as c:
            written = org.writer.apply(c, obj, op, rows, ext)
        out = [{"success": r.success, "created": bool(r.created and r.success), "id": r.id if r.success else None,
                "errors": r.errors} for r in written]
        (self.root / f"{batch.id}.result.json").write_bytes(json.dumps(out).encode())
        batch.processed, batch.failed = len(out), sum(not r["success"] for r in out)
        org.limits.spend("DailyBulkApiBatches")


def _json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data).encode(), status, media_type="application/json")


def install(app: FastAPI, org: Org) -> None:
    """Mount the Bulk 1.0 routes; ``org.bulk1`` holds the registry."""
    bulk = Bulk1(org)
    base = "/services/async/{version}/job"

    def checked(request: Request, version: str) -> None:
        if version not in VERSIONS:
            raise BulkError(404, "InvalidVersion", f"Invalid API version: {version}")
        session = request.headers.get("x-sfdc-session") or ""
        token = session.removeprefix("Bearer ").strip()
        if not org_of(request).tokens.valid(token):
            raise BulkError(400, "InvalidSessionId", "Invalid session id")

    def handle(fn: Any) -> Any:
        async def route(request: Request, version: str, job_id: str = "", batch_id: str = "") -> Response:
            try:
                checked(request, version)
                return await fn(request, version, job_id, batch_id)
            except BulkError as e:
                return _json({"exceptionCode": e.code, "exceptionMessage": e.message}, e.status)
        return route

    async def body_json(request: Request) -> Any:
        try:
            return json.loads(await request.body())
        except ValueError:
            raise BulkError(400, "InvalidJob", "Failed to parse the request body as JSON") from None

    @handle
    async def create_job(request: Request, version: str, *_: str) -> Response:
        return _json(bulk.create(await body_json(request), version).info(), 201)

    @handle
    async def get_job(request: Request, version: str, job_id: str, _: str) -> Response:
        return _json(bulk.job(job_id).info())

    @handle
    async def change_job(request: Request, version: str, job_id: str, _: str) -> Response:
        job, state = bulk.job(job_id), (await body_json(request) or {}).get("state")
        if state not in ("Closed", "Aborted") or job.state != "Open":
            raise BulkError(400, "InvalidJobState", f"Job state {job.state} cannot change to {state}")
        job.state = state
        return _json(job.info())

    @handle
    async def add_batch(request: Request, version: str, job_id: str, _: str) -> Response:
        return _json(bulk.add_batch(bulk.job(job_id), await request.body()).info(), 201)

    @handle
    async def list_batches(request: Request, version: str, job_id: str, _: str) -> Response:
        return _json({"batchInfo": [b.info() for b in bulk.job(job_id).batches]})

    @handle
    async def get_batch(request: Request, version: str, job_id: str, batch_id: str) -> Response:
        return _json(bulk.batch(bulk.job(job_id), batch_id).info())

    @handle
    async def batch_result(request: Request, version: str, job_id: str, batch_id: str) -> Response:
        return Response(bulk.results(bulk.batch(bulk.job(job_id), batch_id)), media_type="application/json")

    @handle
    async def batch_request(request: Request, version: str, job_id: str, batch_id: str) -> Response:
        path = bulk.root / f"{bulk.batch(bulk.job(job_id), batch_id).id}.request.json"
        return Response(path.read_bytes() if path.exists() else b"[]", media_type="application/json")

    routes = [("", "POST", create_job), ("/{job_id}", "GET", get_job), ("/{job_id}", "POST", change_job),
              ("/{job_id}/batch", "POST", add_batch), ("/{job_id}/batch", "GET", list_batches),
              ("/{job_id}/batch/{batch_id}", "GET", get_batch),
              ("/{job_id}/batch/{batch_id}/result", "GET", batch_result),
              ("/{job_id}/batch/{batch_id}/request", "GET", batch_request)]
    for suffix, method, fn in routes:
        app.add_api_route(base + suffix, fn, methods=[method], include_in_schema=False)
