"""Bulk API 2.0 jobs: the ingest and query job engine (routes live in :mod:`bulk2_routes`).

Uploads are streamed to files under ``<state>/bulk/<jobId>/``; after ``UploadComplete`` one of
:data:`INGEST_WORKERS` worker threads reads the CSV (:mod:`bulkcsv`) in chunks of 10,000 rows,
writes each chunk in one transaction through the shared DML engine (concurrent jobs take turns
chunk by chunk, as Salesforce processes jobs' batches in parallel; later ones wait in
``UploadComplete``), and appends to the result CSVs. Query jobs write one result CSV plus the byte
offset of every record, so any ``locator``/``maxRecords`` page is a single seek.
"""

from __future__ import annotations

import base64
import csv
import json
import math
import queue
import random
import shutil
import threading
import time
from array import array
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from sandbox.salesforce import bulkcsv, ids
from sandbox.salesforce.query import compile_soql
from sandbox.salesforce.rowparse import HeaderError

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from sandbox.salesforce.app import Org
    from sandbox.salesforce.schema import ObjectDef

DELIMITERS = {"COMMA": ",", "TAB": "\t", "PIPE": "|", "SEMICOLON": ";", "CARET": "^", "BACKQUOTE": "`"}
INGEST_OPS = ("insert", "update", "upsert", "delete", "hardDelete")
CHUNK = 10_000
INGEST_WORKERS = 4  # ingest jobs processed at the same time
TERMINAL = ("JobComplete", "Failed", "Aborted")


@dataclass
class Job:
    id: str
    kind: str  # ingest | query
    operation: str
    object: str
    version: str
    created: str
    state: str = "Open"
    modstamp: str = ""
    external_id: str | None = None
    delimiter: str = "COMMA"
    line_ending: str = "LF"
    query: str | None = None
    uploads: int = 0
    processed: int = 0
    failed: int = 0
    processing_ms: int = 0
    error_message: str | None = None
    created_by: str = ""
    abort_requested: bool = field(default=False, repr=False)

    @property
    def eol(self) -> str:
        return "\r\n" if self.line_ending == "CRLF" else "\n"

    def info(self, full: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id, "operation": self.operation, "object": self.object, "createdById": self.created_by,
            "createdDate": self.created, "systemModstamp": self.modstamp or self.created, "state": self.state,
            "concurrencyMode": "Parallel", "contentType": "CSV", "apiVersion": float(self.version),
            "lineEnding": self.line_ending, "columnDelimiter": self.delimiter,
        }
        if self.kind == "ingest":
            out["externalIdFieldName"] = self.external_id
            out["contentUrl"] = f"services/data/v{self.version}/jobs/ingest/{self.id}/batches"
        if full:
            out.update({"jobType": "V2Ingest" if self.kind == "ingest" else "V2Query",
                        "numberRecordsProcessed": self.processed, "retries": 0,
                        "totalProcessingTime": self.processing_ms, "apiActiveProcessingTime": self.processing_ms,
                        "apexProcessingTime": 0})
            if self.kind == "ingest":
                out["numberRecordsFailed"] = self.failed
            if self.error_message:
                out["errorMessage"] = self.error_message
        return out


def error_text(errors: list[dict[str, Any]]) -> str:
    """Bulk's ``sf__Error`` form: ``CODE:message:field,field --``."""
    return ";".join(f"{e['statusCode']}:{e['message']}:" + (f"{','.join(e['fields'])} --" if e["fields"] else "--")
                    for e in errors)


def quote_row(values: list[str], delimiter: str, eol: str) -> str:
    return bulkcsv.quote_cells(values, delimiter) + eol


def encode_locator(n: int) -> str:
    return base64.b64encode(str(n).encode()).decode().rstrip("=")


def decode_locator(text: str) -> int:
    return int(base64.b64decode(text + "=" * (-len(text) % 4)).decode())


class Jobs:
    def __init__(self, org: Org, state_dir: Path) -> None:
        self.org = org
        self.root = state_dir / "bulk"
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._queues = {"ingest": queue.Queue(), "query": queue.Queue()}  # type: ignore[var-annotated]
        for (info,) in org.store.conn().execute("SELECT info FROM _sf_jobs ORDER BY id"):
            job = Job(**json.loads(info))
            if job.state in ("UploadComplete", "InProgress"):
                job.state, job.error_message = "Failed", "The sandbox restarted while this job was running"
            self._jobs[job.id] = job
        for kind, q in self._queues.items():
            for n in range(INGEST_WORKERS if kind == "ingest" else 1):
                threading.Thread(target=self._work, args=(q,), name=f"sf-bulk-{kind}-{n}", daemon=True).start()

    # -- bookkeeping -------------------------------------------------------------------------
    def dir(self, job: Job) -> Path:
        return self.root / job.id

    def save(self, job: Job) -> None:
        job.modstamp = self.org.store.now()[:-1] + "+0000"
        data = {k: v for k, v in asdict(job).items() if k != "abort_requested"}
        with self.org.store.transaction() as c:
            c.execute("INSERT OR REPLACE INTO _sf_jobs VALUES (?, ?, ?)", (job.id, job.kind, json.dumps(data)))

    def create(self, kind: str, version: str, **fields: Any) -> Job:
        with self._lock:
            n = int(self.org.store.kv_get("job_counter") or 0) + 1
            self.org.store.kv_set("job_counter", str(n))
        job = Job(id=ids.encode("750", n), kind=kind, version=version,
                  created=self.org.store.now()[:-1] + "+0000", created_by=self.org.store.user_id, **fields)
        self.dir(job).mkdir(parents=True, exist_ok=True)
        self._jobs[job.id] = job
        self.save(job)
        return job

    def get(self, job_id: str, kind: str) -> Job | None:
        job = self._jobs.get(job_id)
        return job if job is not None and job.kind == kind else None

    def all(self, kind: str) -> list[Job]:
        return [j for j in self._jobs.values() if j.kind == kind]

    def delete(self, job: Job) -> None:
        self._jobs.pop(job.id, None)
        with self.org.store.transaction() as c:
            c.execute("DELETE FROM _sf_jobs WHERE id = ?", (job.id,))
        shutil.rmtree(self.dir(job), ignore_errors=True)

    def start(self, job: Job) -> None:
        job.state = "UploadComplete"
        self.save(job)
        self._queues[job.kind].put(job.id)

    def abort(self, job: Job) -> None:
        if job.state in ("Open", "UploadComplete"):
            job.state = "Aborted"
        job.abort_requested = True
        self.save(job)

    # -- worker ------------------------------------------------------------------------------
    def _work(self, q: queue.Queue) -> None:  # type: ignore[type-arg]
        while True:
            job = self._jobs.get(q.get())
            if job is None or job.state != "UploadComplete":
                continue
            job.state = "InProgress"
            self.save(job)
            started = time.monotonic()
            try:
                (self._ingest if job.kind == "ingest" else self._query)(job)
                if job.state == "InProgress":
                    job.state = "JobComplete"
            except HeaderError as e:
                job.state, job.error_message = "Failed", str(e)
            except csv.Error as e:
                job.state, job.error_message = "Failed", f"InvalidBatch : Failed to parse CSV: {e}"
            except UnicodeDecodeError as e:  # the upload itself is wrong, not the sandbox
                job.state, job.error_message = "Failed", (f"InvalidBatch : Failed to parse CSV: not UTF-8 "
                                                          f"(a byte 0x{e.object[e.start]:02x})")
            except Exception as e:  # a bug in the sandbox must not kill the worker thread
                job.state, job.error_message = "Failed", f"InternalServerError : {type(e).__name__}: {e}"
            job.processing_ms = int((time.monotonic() - started) * 1000)
            self.save(job)

    def _parsed(self, job: Job, obj: ObjectDef, delim: str) -> Iterator[tuple[Any, ...]]:
        """``("header", names)`` per upload, then ``("rows", chunk, batch)`` per chunk of rows.

        A reader thread parses one chunk ahead: SQLite releases the GIL while it writes, so parsing
        chunk n+1 overlaps with writing chunk n.
        """
        items: queue.Queue[tuple[Any, ...]] = queue.Queue(maxsize=2)
        stop = threading.Event()

        def put(item: tuple[Any, ...]) -> None:
            while not stop.is_set():
                try:
                    items.put(item, timeout=0.5)
                    return
                except queue.Full:
                    continue

        def produce() -> None:
            try:
                for n in range(job.uploads):
                    plan = None
                    for item in bulkcsv.read(self.dir(job) / f"upload-{n}.csv", delim, CHUNK):
                        if isinstance(item, list):
                            plan = self.org.parser.csv_columns(obj, item, job.operation)
                            put(("header", item))
                        elif plan is not None:
                            aborted = job.abort_requested
                            put(("rows", item, None if aborted else plan.batch(item.n, item.cells, item.long_rows)))
            except Exception as e:  # handed to the consumer, which fails the job with it
                put(("error", e))
            else:
                put(("end",))

        threading.Thread(target=produce, name=f"sf-bulk-parse-{job.id}", daemon=True).start()
        try:
            while (item := items.get())[0] != "end":
                if item[0] == "error":
                    raise item[1]
                yield item
        finally:
            stop.set()

    def _ingest(self, job: Job) -> None:
        org = self.org
        obj = org.schema.get(job.object)
        ext = obj.field(job.external_id) if job.external_id else None
        delim, eol = DELIMITERS[job.delimiter], job.eol
        rate = org.controls.rate("lock")
        rng = random.Random(f"{org.controls.seed}:{job.id}")

        def lock() -> bool:
            hit = rng.random() < rate
            if hit:
                org.controls.record("lock")  # so /_sandbox/requests shows every injected fault
            return hit

        d = self.dir(job)
        with open(d / "success.csv", "w", newline="", encoding="utf-8") as ok_f, \
                open(d / "failed.csv", "w", newline="", encoding="utf-8") as bad_f, \
                open(d / "unprocessed.csv", "w", newline="", encoding="utf-8") as rest_f:
            header_done = False
            for item in self._parsed(job, obj, delim):
                if item[0] == "header":
                    if not header_done:  # result files carry the first upload's header
                        plain = {"delimiter": delim, "lineterminator": eol}
                        ok_f.write(f'"sf__Id"{delim}"sf__Created"{delim}')
                        csv.writer(ok_f, **plain).writerow(item[1])  # type: ignore[arg-type]
                        bad_f.write(f'"sf__Id"{delim}"sf__Error"{delim}')
                        csv.writer(bad_f, **plain).writerow(item[1])  # type: ignore[arg-type]
                        csv.writer(rest_f, **plain).writerow(item[1])  # type: ignore[arg-type]
                        header_done = True
                    continue
                _, chunk, batch = item
                if job.abort_requested or batch is None:
                    rest_f.write("".join(line + eol for line in chunk.echo))
                    continue
                with org.store.transaction() as c:
                    out = org.writer.apply_batch(c, obj, job.operation, batch, ext, lock if rate > 0 else None)
                ok, bad = [], []
                for i, (rid, created, line) in enumerate(zip(out.ids, out.created, chunk.echo, strict=True)):
                    tail = f"{delim}{line}{eol}" if line else eol  # a blank line echoes no cells
                    if errors := out.errors.get(i):
                        bad.append(bulkcsv.quote_cells([rid or "", error_text(errors)], delim) + tail)
                    else:
                        ok.append(f'"{rid}"{delim}"{"true" if created else "false"}"{tail}')
                ok_f.write("".join(ok))
                bad_f.write("".join(bad))
                job.processed += chunk.n
                job.failed += len(bad)
        org.limits.spend("DailyBulkApiBatches", max(1, math.ceil(job.processed / CHUNK)))
        if job.abort_requested:
            job.state = "Aborted"

    def _query(self, job: Job) -> None:
        plan = compile_soql(self.org.schema, job.query or "", job.operation == "queryAll")
        delim, eol = DELIMITERS[job.delimiter], job.eol
        conn = self.org.store.conn()
        offsets = array("Q")
        d = self.dir(job)
        with open(d / "results.csv", "wb") as out:
            head = quote_row(plan.header, delim, eol).encode()
            out.write(head)
            pos, position, after = len(head), 0, 0
            while rows := plan.page(conn, CHUNK, position, after):
                if job.abort_requested:
                    job.state = "Aborted"
                    return
                parts = []
                for r in rows:
                    b = quote_row(plan.csv_row(r), delim, eol).encode()
                    offsets.append(pos)
                    pos += len(b)
                    parts.append(b)
                out.write(b"".join(parts))
                position += len(rows)
                after = rows[-1][0]
            offsets.append(pos)
        with open(d / "offsets.bin", "wb") as fh:
            offsets.tofile(fh)
        (d / "header.bin").write_bytes(head)
        job.processed = position

    def results_page(self, job: Job, locator: str | None, max_records: int | None) -> tuple[bytes, str, int]:
        """``(csv bytes, next locator or "null", number of records)`` of a finished query job."""
        d = self.dir(job)
        offsets = array("Q")
        with open(d / "offsets.bin", "rb") as fh:
            offsets.frombytes(fh.read())
        total = len(offsets) - 1
        start = decode_locator(locator) if locator else 0
        end = total if max_records is None else min(total, start + max_records)
        with open(d / "results.csv", "rb") as fh:
            fh.seek(offsets[start])
            body = fh.read(offsets[end] - offsets[start])
        return (d / "header.bin").read_bytes() + body, encode_locator(end) if end < total else "null", end - start
