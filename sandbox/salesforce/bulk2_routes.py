"""Bulk API 2.0 routes: ``/services/data/vXX.X/jobs/ingest`` and ``/jobs/query``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import FileResponse, Response

from sandbox.salesforce.app import Org, Version, org_of, sf_json
from sandbox.salesforce.bulk2 import DELIMITERS, INGEST_OPS, TERMINAL, Job, Jobs
from sandbox.salesforce.errors import not_found, sf_error
from sandbox.salesforce.query import compile_soql
from sandbox.salesforce.rest import Payload
from sandbox.salesforce.soql import SoqlError

if TYPE_CHECKING:
    from fastapi import FastAPI

RESULT_FILES = {"successfulResults": "success.csv", "failedResults": "failed.csv",
                "unprocessedRecords": "unprocessed.csv"}


def _jobs(request: Request) -> Jobs:
    return org_of(request).jobs


def _job(request: Request, job_id: str, kind: str) -> Job:
    job = _jobs(request).get(job_id, kind)
    if job is None:
        raise not_found()
    return job


def _invalid(message: str) -> Exception:
    return sf_error(400, "INVALIDJOB", message)


def _common(payload: dict[str, Any]) -> dict[str, str]:
    delimiter = payload.get("columnDelimiter") or "COMMA"
    line_ending = payload.get("lineEnding") or "LF"
    if delimiter not in DELIMITERS:
        raise _invalid(f"InvalidJob : Invalid column delimiter: {delimiter}")
    if line_ending not in ("LF", "CRLF"):
        raise _invalid(f"InvalidJob : Invalid line ending: {line_ending}")
    if (payload.get("contentType") or "CSV") != "CSV":
        raise _invalid("InvalidJob : Bulk API 2.0 supports only the CSV content type")
    return {"delimiter": delimiter, "line_ending": line_ending}


def _create_ingest(org: Org, payload: dict[str, Any], version: str) -> Job:
    op = payload.get("operation")
    if op not in INGEST_OPS:
        raise _invalid(f"InvalidJob : Invalid operation: {op}")
    obj = org.schema.get(str(payload.get("object") or ""))
    if obj is None:
        raise _invalid(f"InvalidJob : Unable to find object: {payload.get('object')}")
    ext_name = payload.get("externalIdFieldName")
    if op == "upsert":
        if not ext_name:
            raise _invalid(f"InvalidJob : External ID was blank for {obj.name}. An External ID must be specified "
                           "for upsert.")
        ext = obj.field(ext_name)
        if ext is None or not (ext.external_id or ext.name == "Id"):
            raise _invalid(f"InvalidJob : The field {ext_name} is not an External ID field on {obj.name}")
        ext_name = ext.name
    return org.jobs.create("ingest", version, operation=op, object=obj.name,
                           external_id=ext_name if op == "upsert" else None, **_common(payload))


def _create_query(org: Org, payload: dict[str, Any], version: str) -> Job:
    op = payload.get("operation") or "query"
    if op not in ("query", "queryAll"):
        raise _invalid(f"InvalidJob : Invalid operation: {op}")
    text = str(payload.get("query") or "")
    try:
        plan = compile_soql(org.schema, text, op == "queryAll")
    except SoqlError as e:
        raise sf_error(400, e.code, e.render(text)) from None
    if plan.count:
        raise sf_error(400, "API_ERROR", "Aggregate Relationships and COUNT() are not supported in Bulk API 2.0 query")
    if not org.limits.spend("DailyBulkV2QueryJobs"):
        raise sf_error(403, "REQUEST_LIMIT_EXCEEDED", "Bulk API 2.0 query job limit exceeded")
    job = org.jobs.create("query", version, operation=op, object=plan.obj.name, query=text, **_common(payload))
    org.jobs.start(job)
    return job


def _state_change(request: Request, job: Job, payload: Any) -> Response:
    jobs = _jobs(request)
    state = payload.get("state") if isinstance(payload, dict) else None
    if state == "UploadComplete" and job.kind == "ingest" and job.state == "Open":
        jobs.start(job)
    elif state == "Aborted" and job.state not in TERMINAL:
        jobs.abort(job)
    else:
        raise sf_error(400, "INVALIDJOBSTATE", f"Job state {job.state} cannot change to {state}")
    return sf_json(job.info(full=False))


def install(app: FastAPI, org: Org) -> None:
    org.jobs = Jobs(org, org.store.state_dir)
    base = "/services/data/{version}/jobs"

    def create(kind: str) -> Any:
        def handler(request: Request, version: Version, payload: Payload = None) -> Response:
            if not isinstance(payload, dict):
                raise sf_error(400, "JSON_PARSER_ERROR", "The request body must be a JSON object")
            make = _create_ingest if kind == "ingest" else _create_query
            return sf_json(make(org_of(request), payload, version).info(full=False))
        return handler

    def listing(kind: str) -> Any:
        def handler(request: Request, version: Version) -> Response:
            jobs = sorted(_jobs(request).all(kind), key=lambda j: j.id)
            return sf_json({"done": True, "records": [j.info(full=False) for j in jobs], "nextRecordsUrl": None})
        return handler

    def one(kind: str) -> Any:
        def get(request: Request, job_id: str, version: Version) -> Response:
            return sf_json(_job(request, job_id, kind).info())

        def patch(request: Request, job_id: str, version: Version, payload: Payload = None) -> Response:
            return _state_change(request, _job(request, job_id, kind), payload)

        def delete(request: Request, job_id: str, version: Version) -> Response:
            job = _job(request, job_id, kind)
            if job.state not in (*TERMINAL, "Open"):
                raise sf_error(400, "INVALIDJOBSTATE", f"Cannot delete a job in state {job.state}")
            _jobs(request).delete(job)
            return Response(status_code=204)
        return get, patch, delete

    for kind in ("ingest", "query"):
        path = f"{base}/{kind}"
        for p in (path, path + "/"):
            app.add_api_route(p, create(kind), methods=["POST"], include_in_schema=False)
            app.add_api_route(p, listing(kind), methods=["GET"], include_in_schema=False)
        get, patch, delete = one(kind)
        for p in (path + "/{job_id}", path + "/{job_id}/"):
            app.add_api_route(p, get, methods=["GET"], include_in_schema=False)
            app.add_api_route(p, patch, methods=["PATCH"], include_in_schema=False)
            app.add_api_route(p, delete, methods=["DELETE"], include_in_schema=False)

    @app.put(base + "/ingest/{job_id}/batches", include_in_schema=False)
    @app.put(base + "/ingest/{job_id}/batches/", include_in_schema=False)
    async def upload(request: Request, job_id: str, version: Version) -> Response:
        job = _job(request, job_id, "ingest")
        if job.state != "Open":
            raise sf_error(409, "INVALIDJOBSTATE", f"Data can only be uploaded to an Open job (state: {job.state})")
        path = _jobs(request).dir(job) / f"upload-{job.uploads}.csv"
        size = 0
        with open(path, "wb") as fh:
            async for chunk in request.stream():
                size += len(chunk)
                fh.write(chunk)
        if size > 150 * 1024 * 1024:
            path.unlink()
            raise sf_error(400, "INVALIDJOB", "InvalidBatch : The upload exceeds 150 MB")
        job.uploads += 1
        return Response(status_code=201)

    @app.get(base + "/ingest/{job_id}/{which}", include_in_schema=False)
    def ingest_results(request: Request, job_id: str, which: str, version: Version) -> Response:
        job = _job(request, job_id, "ingest")
        name = RESULT_FILES.get(which)
        if name is None:
            raise not_found()
        if job.state not in TERMINAL:
            raise sf_error(400, "INVALIDJOBSTATE", f"Results are not available while the job is {job.state}")
        path = _jobs(request).dir(job) / name
        if not path.exists():
            return Response(b"", media_type="text/csv")
        return FileResponse(path, media_type="text/csv")

    @app.get(base + "/query/{job_id}/results", include_in_schema=False)
    def query_results(request: Request, job_id: str, version: Version, locator: str | None = None,
                      maxRecords: int | None = None) -> Response:
        job = _job(request, job_id, "query")
        if job.state != "JobComplete":
            raise sf_error(412, "JOB_NOT_COMPLETE", "can only download query results of successfully completed bulk "
                           f"job with status: JOB_COMPLETE. Current status: {job.state}")
        try:
            body, nxt, n = _jobs(request).results_page(job, locator or None, maxRecords)
        except (ValueError, IndexError):
            raise sf_error(400, "INVALID_LOCATOR", f"Invalid locator: {locator}") from None
        return Response(body, media_type="text/csv",
                        headers={"Sforce-Locator": nxt, "Sforce-NumberOfRecords": str(n)})
