"""Salesforce hook for mcsf, built on the provider's ``SalesforceHook`` (simple-salesforce underneath).

It adds what a sync needs on top of the provider: the OAuth 2.0 client-credentials login on a My
Domain URL, a CA bundle for every request, transient-failure retries and request counting at the
transport, streaming SOQL, Bulk 2.0 queries, and frame writes that pick sObject Collections or
Bulk 2.0 by which needs fewer requests, with per-row results.

Frame conventions for writes: columns are field names; ``Rel__r.Ext_Id__c`` columns reference a
parent by external id; a None/NaN cell leaves the field unchanged; :data:`CLEAR` sets it to null.
Rows Salesforce refuses come back in :class:`WriteResult` ``failures``; an error of the whole request
or job (a malformed request, a Bulk 2.0 job that fails on an unknown column) raises.
"""

from __future__ import annotations

import csv
import io
import math
import re
import threading
import time
from dataclasses import dataclass
from datetime import date, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from airflow.providers.salesforce.hooks.salesforce import SalesforceHook
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceAuthenticationFailed, SalesforceError
from simple_salesforce.util import exception_handler

from mcsf.hooks._http import RetryingSession

if TYPE_CHECKING:
    from collections.abc import Iterator

    import pandas as pd
    import requests

    from mcsf.hooks._http import RequestCounter

CLEAR = "#N/A"  # a cell value meaning "set this field to null" (Bulk 2.0's own convention)
COMPOSITE_BATCH = 200  # sObject Collections take at most 200 records per request
BULK_JOB_REQUESTS = 6  # create, upload, close, poll, successfulResults, failedResults
BULK_MAX_UPLOAD_BYTES = 100 * 1024 * 1024
BULK_ROWS_PER_SECOND = 20_000  # a first guess at Bulk 2.0 ingest speed, only to time the first status poll
BULK_QUERY_ROWS_PER_SECOND = 50_000  # the same for query jobs
TRANSIENT_ROW_ERRORS = frozenset({"UNABLE_TO_LOCK_ROW", "API_TEMPORARILY_UNAVAILABLE"})
Operation = Literal["insert", "update", "upsert", "delete"]
Via = Literal["auto", "composite", "bulk"]

_API_PREFIX = re.compile(r"^/services/data/v[\d.]+")
_ENDPOINTS = [
    (re.compile(r"/composite/sobjects/[^/]+/[^/]+"), "/composite/sobjects/{obj}/{field}"),
    (re.compile(r"/sobjects/[^/]+/describe/?"), "/sobjects/{obj}/describe"),
    (re.compile(r"/sobjects/[^/]+/[^/]+/[^/]+"), "/sobjects/{obj}/{field}/{value}"),
    (re.compile(r"/sobjects/[^/]+/[^/]+"), "/sobjects/{obj}/{id}"),
    (re.compile(r"/sobjects/[^/]+/?"), "/sobjects/{obj}"),
    (re.compile(r"/jobs/(ingest|query)/[^/]+/([^/]+)"), r"/jobs/\1/{id}/\2"),
    (re.compile(r"/jobs/(ingest|query)/[^/]+"), r"/jobs/\1/{id}"),
    (re.compile(r"/(query|queryAll)/[^/]+"), r"/\1/{locator}"),
]


def endpoint_key(method: str, url: str) -> str:
    """``"PUT /jobs/ingest/{id}/batches"`` for ``PUT …/services/data/v59.0/jobs/ingest/750…/batches``."""
    path = _API_PREFIX.sub("", urlsplit(url).path).rstrip("/") or "/"
    for pattern, template in _ENDPOINTS:
        if pattern.fullmatch(path):
            path = pattern.sub(template, path)
            break
    return f"{method} {path}"


def _replay_safe(method: str, url: str) -> bool:
    """Everything but a POST is idempotent here; of the POSTs, a repeated login or job creation
    is harmless (an extra job stays empty), a repeated insert is not."""
    return method != "POST" or endpoint_key(method, url) in {
        "POST /services/oauth2/token",
        "POST /jobs/ingest",
        "POST /jobs/query",
    }


class SalesforceBulkJobError(SalesforceError):
    """A Bulk 2.0 job ended Failed or Aborted, or did not finish in time."""

    def __init__(self, message: str) -> None:
        Exception.__init__(self, message)
        self.message = message

    def __str__(self) -> str:
        return self.message


@dataclass
class WriteResult:
    """Per-row outcome of a write.

    ``successes``: ``sf__Id``, ``sf__Created`` (bool) + the original columns;
    ``failures``: ``sf__Id``, ``sf__Error`` (``"CODE:message"``) + the original columns; both keep
    the input frame's index. ``requests``: HTTP requests the write used, retries included.
    """

    successes: pd.DataFrame
    failures: pd.DataFrame
    requests: int


LEARN_FROM_ROWS = 10_000  # smaller jobs are mostly fixed costs: they say little about the org's speed
COUNT_STEP = 10_000  # Salesforce counts an ingest job's processed rows by its batches of 10,000
MEASURE_ROWS = 5 * COUNT_STEP  # rows between two polls that measure the org's speed


def next_job_rate(used: float, observed: float, done_at_first_poll: bool) -> float:
    """The speed to time the next Bulk job's polls by (rows per second; ingest and query jobs are
    learnt apart), from a job timed from its upload.

    :param used: the speed this job's first poll was timed by
    :param observed: rows / seconds from upload to the poll that found the job complete (a lower
        bound of the true speed: the job ended somewhere before that poll)
    :param done_at_first_poll: whether the first poll found it complete. Then the job may have
        waited for the poll, so the next one is polled a little earlier (10 % faster); otherwise
        the observed speed is taken. One or two polls a job, however fast or slow the org.
    """
    return max(used, observed) * 1.1 if done_at_first_poll else observed


def progress_wait(rows: int, processed: int, rate: float) -> float:
    """Seconds until a big ingest job that has ``processed`` of its ``rows`` can be complete, at
    ``rate`` rows per second, with 10 % to spare: a poll that comes a little late costs a
    second, one that comes early costs a request and another wait. A queued job (0 processed) cannot
    be done before its own rows are processed, however soon it starts."""
    return max(0.5, min((rows - processed) / rate * 1.1, 300.0))


class McsfSalesforceHook(SalesforceHook):
    """The provider's Salesforce hook plus client-credentials login, retries, counting and writes.

    Connection extras on top of the provider's: ``instance_url`` + ``consumer_key`` +
    ``consumer_secret`` without a username select the OAuth 2.0 client-credentials flow on
    ``{instance_url}/services/oauth2/token``; ``ca_bundle`` is a CA file path trusted for every
    request. Any other setup is handed to the provider's login.

    :param salesforce_conn_id: the Airflow connection id
    :param session_id: an access token to use as is (with ``instance_url`` in the connection)
    """

    hook_name = "Salesforce (mcsf)"
    job_timeout_seconds = 3600.0
    row_retry_backoff_seconds = 0.5  # before re-submitting rows that met a lock; doubles, at most 5 s

    def __init__(
        self, salesforce_conn_id: str = SalesforceHook.default_conn_name, session_id: str | None = None
    ):
        super().__init__(salesforce_conn_id=salesforce_conn_id, session_id=session_id)
        self.session: RetryingSession = RetryingSession(self.log, endpoint_key, _replay_safe)
        self._describes: dict[str, dict[str, Any]] = {}
        # rows/s by job kind, learnt from this hook's jobs (next_job_rate)
        self._job_rates = {"ingest": float(BULK_ROWS_PER_SECOND), "query": float(BULK_QUERY_ROWS_PER_SECOND)}
        self._object_names: set[str] | None = None
        # Bulk writes of one hook running in threads (load.write_stream) take turns to build and
        # upload a job's CSV and to match its results (the memory-hungry steps), not to wait for it.
        self._bulk_turn = threading.Lock()

    @property
    def requests_used(self) -> RequestCounter:
        """HTTP requests made, by normalized endpoint (e.g. ``"PATCH /composite/sobjects/{obj}/{field}"``)."""
        return self.session.requests_used

    @property
    def retries(self) -> RequestCounter:
        """Transient failures retried, by status code or ``"connection: …"``."""
        return self.session.retries

    # -- login ----------------------------------------------------------------------------------

    @cached_property
    def conn(self) -> Salesforce:
        """A logged-in simple-salesforce client on this hook's counting, retrying session."""
        connection = self.get_connection(self.conn_id)
        extras = connection.extra_dejson
        ca_bundle = self._get_field(extras, "ca_bundle")
        if ca_bundle:
            self.session.verify = ca_bundle
        instance_url = self._get_field(extras, "instance_url")
        key, secret = self._get_field(extras, "consumer_key"), self._get_field(extras, "consumer_secret")
        if instance_url and key and secret and not connection.login and not self.session_id:
            return self._client_credentials_login(instance_url, key, secret, extras)
        return SalesforceHook.conn.func(self)  # type: ignore[attr-defined]

    def _client_credentials_login(
        self, instance_url: str, consumer_key: str, consumer_secret: str, extras: dict[str, Any]
    ) -> Salesforce:
        from simple_salesforce import api

        token_url = f"{instance_url.rstrip('/')}/services/oauth2/token"
        response = self.session.post(
            token_url,
            data={
                "grant_type": "client_credentials",
                "client_id": consumer_key,
                "client_secret": consumer_secret,
            },
            headers={"Accept": "application/json"},
        )
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            body = {"error": response.status_code, "error_description": response.text[:200]}
        if response.status_code != 200 or "access_token" not in body:
            raise SalesforceAuthenticationFailed(
                body.get("error", response.status_code),
                f"client-credentials login at {token_url} failed: {body.get('error_description', '')}",
            )
        self.log.info(
            "Logged in to %s with the client-credentials flow", body.get("instance_url") or instance_url
        )
        return Salesforce(
            instance_url=body.get("instance_url") or instance_url,
            session_id=body["access_token"],
            session=self.session,
            version=self._get_field(extras, "version") or api.DEFAULT_API_VERSION,
        )

    def _request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """One call on the client's session; re-authenticates once on 401; typed errors on >= 300.

        :param url: relative to the REST base (``"query/"``), instance-absolute
            (``"/services/data/…"``) or absolute
        """
        headers = kwargs.pop("headers", {})
        for attempt in (1, 2):
            sf = self.conn
            if url.startswith("/"):
                full = f"https://{sf.sf_instance}{url}"
            elif "://" in url:
                full = url
            else:
                full = sf.base_url + url
            response = sf.session.request(method, full, headers={**sf.headers, **headers}, **kwargs)
            if response.status_code == 401 and attempt == 1 and not self.session_id:
                self.log.warning("Salesforce session expired or invalid; logging in again")
                self.__dict__.pop("conn", None)
                continue
            if response.status_code >= 300:
                exception_handler(response, name=endpoint_key(method, full))
            return response
        raise AssertionError("unreachable")

    # -- reads ----------------------------------------------------------------------------------

    def object_names(self) -> set[str]:
        """Names of the objects the org lets this user see (describeGlobal, fetched once per hook)."""
        if self._object_names is None:
            self._object_names = {o["name"] for o in self._request("GET", "sobjects/").json()["sobjects"]}
        return self._object_names

    def describe(self, object_name: str) -> dict[str, Any]:
        """The object's describe, fetched once per hook.

        :param object_name: e.g. ``"Lead"``
        """
        if object_name not in self._describes:
            self._describes[object_name] = self._request("GET", f"sobjects/{object_name}/describe/").json()
        return self._describes[object_name]

    @property
    def describes(self) -> dict[str, dict[str, Any]]:
        """The describes this hook holds (fetched or :meth:`remember_describes`), by object name."""
        return dict(self._describes)

    def remember_describes(self, describes: dict[str, dict[str, Any]]) -> None:
        """Hold ``describes`` (an earlier hook's :attr:`describes` in the same run) instead of fetching them again."""
        self._describes.update(describes)

    @property
    def job_rates(self) -> dict[str, float]:
        """Rows per second this hook's Bulk jobs showed, by kind (``ingest``, ``query``): what its
        next job's polls are timed by."""
        return dict(self._job_rates)

    def remember_job_rates(self, rates: dict[str, Any]) -> None:
        """Start from the speeds an earlier hook of the run learnt (its :attr:`job_rates`), so a task
        process does not learn the org's speed again from the first guess; other values are ignored."""
        for kind, rate in rates.items():
            if kind in self._job_rates and isinstance(rate, int | float) and rate > 0:
                self._job_rates[kind] = float(rate)

    def field_map(self, object_name: str) -> dict[str, dict[str, Any]]:
        """Field name -> field describe.

        :param object_name: e.g. ``"Lead"``
        """
        return {f["name"]: f for f in self.describe(object_name)["fields"]}

    def query_iter(self, soql: str, *, include_deleted: bool = False) -> Iterator[dict[str, Any]]:
        """Stream the records of a SOQL query, page by page (``nextRecordsUrl``), without ``attributes``.

        :param soql: the query
        :param include_deleted: use queryAll (deleted and archived records too)
        """
        page = self._request("GET", "queryAll/" if include_deleted else "query/", params={"q": soql}).json()
        while True:
            for record in page["records"]:
                yield _strip_attributes(record)
            if page.get("done", True) or not page.get("nextRecordsUrl"):
                return
            page = self._request("GET", page["nextRecordsUrl"]).json()

    def query_frame(self, soql: str) -> pd.DataFrame:
        """A SOQL query's records as a frame; parent fields flattened to ``Rel__r.Field__c`` columns.

        :param soql: the query
        """
        import pandas as pd

        rows = [_flatten(record) for record in self.query_iter(soql)]
        selected = _select_list(soql)
        seen: dict[str, str] = {}
        for row in rows:
            for key in row:
                seen.setdefault(key.lower(), key)
        if not rows:
            columns = selected
        elif selected and all(c.lower() in seen for c in selected):
            columns = [seen[c.lower()] for c in selected]
        else:  # aggregates, aliases: take what came back, minus empty parents of flattened fields
            columns = [k for k in seen.values() if not any(o.startswith(k + ".") for o in seen.values())]
        return pd.DataFrame(rows, columns=columns)

    def bulk_query_frame(self, soql: str, *, include_deleted: bool = False, expected_rows: int = 0) -> pd.DataFrame:
        """Run a Bulk 2.0 query job and read all its result pages; every column has string dtype.

        Cheaper than :meth:`query_frame` for big reads (one result page holds many more rows).
        Empty values come back as <NA> (the CSV cannot tell empty from null).

        :param soql: the query
        :param include_deleted: run a queryAll job
        :param expected_rows: how many rows it will likely find (0: unknown), to time the first
            status poll by, as :meth:`_wait_for_job` does for ingest jobs
        """
        import pandas as pd

        job = self._request(
            "POST",
            "jobs/query",
            json={
                "operation": "queryAll" if include_deleted else "query",
                "query": soql,
                "contentType": "CSV",
                "columnDelimiter": "COMMA",
                "lineEnding": "LF",
            },
        ).json()
        self._wait_for_job("query", job["id"], rows=expected_rows)
        frames, locator = [], ""
        while True:
            response = self._request(
                "GET",
                f"jobs/query/{job['id']}/results",
                params={"locator": locator} if locator else None,
                headers={"Accept": "text/csv"},
            )
            if response.content.strip():
                frames.append(
                    pd.read_csv(
                        io.BytesIO(response.content), dtype="string", keep_default_na=False, na_values=[""]
                    )
                )
            locator = response.headers.get("Sforce-Locator") or ""
            if locator in ("", "null"):
                break
        if not frames:
            return pd.DataFrame({c: pd.Series(dtype="string") for c in _select_list(soql)})
        return pd.concat(frames, ignore_index=True)

    def _wait_for_job(self, kind: str, job_id: str, rows: int = 0) -> dict[str, Any]:
        """Poll a Bulk 2.0 job until it completes: 0.5 s first, then 1.5 times longer, at most 5 s.

        :param rows: rows uploaded to an ingest job, or expected from a query job. A big job is first
            polled when it could be done, at the speed this hook's earlier jobs of the kind showed
            (at first :data:`BULK_ROWS_PER_SECOND` or :data:`BULK_QUERY_ROWS_PER_SECOND`). A big
            ingest job found still running is then polled when its rows still to do could be done
            (:func:`progress_wait`; ``numberRecordsProcessed`` says how many are done), and two
            polls that saw it running measure the org's speed — whether the org ran it at once, in
            parallel with other jobs or after them. Other jobs are polled every 5 s or a quarter of
            the first wait. A million rows take a few polls, not dozens (each is a request against
            the org's daily API limit).
        """
        started = time.monotonic()
        deadline = started + self.job_timeout_seconds
        rate = self._job_rates[kind]
        by_progress = kind == "ingest" and rows >= LEARN_FROM_ROWS
        delay = max(0.5, min(rows / rate, 300.0 if by_progress else 60.0))
        most = max(5.0, delay / 4)
        ref_at: float | None = None  # when a poll saw it running, having done ref_done rows
        ref_done, polls, measured = 0, 0, False
        while True:
            time.sleep(delay)
            polls += 1
            info = self._request("GET", f"jobs/{kind}/{job_id}").json()
            now, state = time.monotonic(), info.get("state")
            processed = int(info.get("numberRecordsProcessed") or 0)
            if state == "JobComplete":
                done = processed if kind == "query" else rows
                # From the upload only when the first poll found it done (or for jobs polled by the
                # clock): a job that waited behind others would make the org look slower than it is.
                if done >= LEARN_FROM_ROWS and not measured and (polls == 1 or not by_progress):
                    self._job_rates[kind] = next_job_rate(rate, done / (now - started), polls == 1 and rows > 0)
                return info
            if state in ("Failed", "Aborted"):
                raise SalesforceBulkJobError(
                    f"Bulk 2.0 {kind} job {job_id} ended {state}: {info.get('errorMessage') or 'no message'}"
                )
            if now > deadline:
                self._abort_job(kind, job_id)
                raise SalesforceBulkJobError(
                    f"Bulk 2.0 {kind} job {job_id} still {state} after {self.job_timeout_seconds:.0f} s"
                )
            if not by_progress:
                delay = min(delay * 1.5, most)
                continue
            if state == "InProgress" and processed > 0:
                # Two polls that saw it running measure the org's speed, over at least
                # MEASURE_ROWS (counts move in steps of COUNT_STEP). Fewer rows between them still
                # cap the speed: it did less than a step more than the counts moved.
                if ref_at is not None and processed - ref_done >= MEASURE_ROWS:
                    rate = self._job_rates[kind] = (processed - ref_done) / (now - ref_at)
                    measured = True
                elif ref_at is not None and not measured and now > ref_at:
                    rate = min(rate, (processed - ref_done + COUNT_STEP) / (now - ref_at))
                if ref_at is None or measured:
                    ref_at, ref_done = now, processed
            delay = progress_wait(rows, processed, rate)

    def _abort_job(self, kind: str, job_id: str) -> None:
        try:
            self._request("PATCH", f"jobs/{kind}/{job_id}", json={"state": "Aborted"})
        except SalesforceError as err:
            self.log.warning("Could not abort Bulk 2.0 %s job %s: %s", kind, job_id, err)

    # -- writes ---------------------------------------------------------------------------------

    def upsert(
        self,
        object_name: str,
        external_id_field: str,
        frame: pd.DataFrame,
        *,
        row_retries: int = 3,
        via: Via = "auto",
        echo: bool = True,
    ) -> WriteResult:
        """Insert or update rows matched on an external id.

        :param object_name: e.g. ``"MC_Subscriber__c"``
        :param external_id_field: the external id field, a column of ``frame``
        :param frame: one row per record (see the module docstring for conventions)
        :param row_retries: re-submissions of rows that failed with a transient row error
        :param via: ``"auto"`` (fewest requests), ``"composite"`` or ``"bulk"``
        :param echo: False: ``successes`` holds only ``sf__Id`` and ``sf__Created`` (no copy of a
            million sent rows when only counts and refusals are wanted); failures keep every column
        """
        if external_id_field not in frame.columns:
            raise ValueError(f"upsert of {object_name}: the frame has no column {external_id_field!r}")
        return self._write("upsert", object_name, frame, external_id_field, row_retries, via, echo)

    def update(
        self, object_name: str, frame_with_Id: pd.DataFrame, *, row_retries: int = 3, via: Via = "auto",
        echo: bool = True,
    ) -> WriteResult:
        """Update rows by ``Id``.

        :param object_name: e.g. ``"Lead"``
        :param frame_with_Id: one row per record, with an ``Id`` column
        :param row_retries: re-submissions of rows that failed with a transient row error
        :param via: ``"auto"``, ``"composite"`` or ``"bulk"``
        :param echo: as for :meth:`upsert`
        """
        if "Id" not in frame_with_Id.columns:
            raise ValueError(f"update of {object_name}: the frame has no Id column")
        return self._write("update", object_name, frame_with_Id, None, row_retries, via, echo)

    def insert(
        self, object_name: str, frame: pd.DataFrame, *, row_retries: int = 3, via: Via = "auto"
    ) -> WriteResult:
        """Create one record per row. Prefer :meth:`upsert`: a re-run of an insert duplicates.

        :param object_name: e.g. ``"Lead"``
        :param frame: one row per record
        :param row_retries: re-submissions of rows that failed with a transient row error
        :param via: ``"auto"``, ``"composite"`` or ``"bulk"``
        """
        return self._write("insert", object_name, frame, None, row_retries, via)

    def delete(
        self, object_name: str, ids: list[str], *, row_retries: int = 3, via: Via = "auto"
    ) -> WriteResult:
        """Delete records by Id (to the recycle bin).

        :param object_name: e.g. ``"MC_Activity__c"``
        :param ids: record ids
        :param row_retries: re-submissions of rows that failed with a transient row error
        :param via: ``"auto"``, ``"composite"`` or ``"bulk"``
        """
        import pandas as pd

        return self._write("delete", object_name, pd.DataFrame({"Id": list(ids)}), None, row_retries, via)

    def _write(
        self,
        operation: Operation,
        object_name: str,
        frame: pd.DataFrame,
        external_id_field: str | None,
        row_retries: int,
        via: Via,
        echo: bool = True,
    ) -> WriteResult:
        import numpy as np

        requests_before = self.requests_used.of_this_thread()
        n = len(frame)
        rows = _Rows.empty(n)  # one array per outcome column, not a tuple per row (a Bulk job is a million)
        todo, retried, used_bulk = np.arange(n), 0, False
        for round_ in range(row_retries + 1):
            if not len(todo):
                break
            part = frame if len(todo) == n else frame.iloc[todo]  # no copy of a whole frame
            use_bulk = via == "bulk" or (
                via == "auto" and math.ceil(len(part) / COMPOSITE_BATCH) > BULK_JOB_REQUESTS
            )
            used_bulk |= use_bulk
            write = self._bulk_write if use_bulk else self._composite_write
            got = write(operation, object_name, part, external_id_field)
            if len(got) != len(todo):
                raise RuntimeError(f"{operation} {object_name}: {len(got)} outcomes for {len(todo)} rows")
            rows.put(todo, got)
            failed = np.flatnonzero(got.errors != None)  # noqa: E711 - elementwise
            again = todo[[i for i in failed if _error_code(got.errors[i]) in TRANSIENT_ROW_ERRORS]] \
                if round_ < row_retries else todo[:0]
            if len(again):
                retried += len(again)
                self.log.warning(
                    "%s %s: %s rows failed with a transient error (row lock); re-submitting",
                    operation,
                    object_name,
                    len(again),
                )
                time.sleep(min(self.row_retry_backoff_seconds * 2**round_, 5.0))
            todo = again
        result = _result_frames(frame, rows, self.requests_used.of_this_thread() - requests_before, echo)
        self.log.info(
            "%s %s%s: %s rows via %s; %s succeeded (%s created), %s failed; %s rows re-submitted after "
            "transient errors; %s requests",
            operation.capitalize(),
            object_name,
            f" on {external_id_field}" if external_id_field else "",
            n,
            "Bulk 2.0" if used_bulk else "sObject Collections",
            len(result.successes),
            int(result.successes["sf__Created"].sum()) if n else 0,
            len(result.failures),
            retried,
            result.requests,
        )
        return result

    def _composite_write(
        self, operation: Operation, object_name: str, part: pd.DataFrame, external_id_field: str | None
    ) -> _Rows:
        """sObject Collections, 200 rows per request, ``allOrNone=false``; results come in row order."""
        outcomes: list[tuple[str | None, bool, str | None]] = []
        for start in range(0, len(part), COMPOSITE_BATCH):
            chunk = part.iloc[start : start + COMPOSITE_BATCH]
            if operation == "delete":
                response = self._request(
                    "DELETE",
                    "composite/sobjects",
                    params={"ids": ",".join(chunk["Id"].astype(str)), "allOrNone": "false"},
                )
            else:
                body = {
                    "allOrNone": False,
                    "records": [
                        {"attributes": {"type": object_name}, **_json_record(row)}
                        for row in chunk.to_dict("records")
                    ],
                }
                if operation == "upsert":
                    response = self._request(
                        "PATCH", f"composite/sobjects/{object_name}/{external_id_field}", json=body
                    )
                else:
                    response = self._request(
                        "POST" if operation == "insert" else "PATCH", "composite/sobjects", json=body
                    )
            results = response.json()
            if len(results) != len(chunk):  # Salesforce answers one result per record, in order
                raise RuntimeError(
                    f"{operation} {object_name}: {len(results)} results for {len(chunk)} records"
                )
            for item in results:
                if item.get("success"):
                    was_created = bool(item.get("created", operation == "insert"))
                    outcomes.append((item.get("id"), was_created, None))
                else:
                    outcomes.append((item.get("id"), False, _format_errors(item.get("errors") or [])))
        return _Rows.of(outcomes)

    def bulk_rows_per_job(self, frame: pd.DataFrame, *, sample: int = 10_000, spare: float = 0.08) -> int:
        """About how many rows like ``frame``'s fill one Bulk 2.0 upload (:data:`BULK_MAX_UPLOAD_BYTES`
        of CSV as this hook writes it), from a random sample of its rows, ``spare`` kept for rows
        longer than the sample's. A stream cut at this size costs one job per upload's worth of rows,
        where cutting it by a fixed row count costs a job per cut (and two when a cut is over 100 MB).
        """
        import pyarrow.compute as pc

        body = frame.sample(n=min(sample, len(frame)), random_state=0) if len(frame) > sample else frame
        if body.empty:
            return BULK_MAX_UPLOAD_BYTES  # nothing to measure: no limit from this frame
        per_row = pc.sum(pc.binary_length(_csv_lines([_csv_column(body[c]) for c in body.columns]))).as_py() / len(body)
        return max(1, int(BULK_MAX_UPLOAD_BYTES * (1 - spare) / per_row))

    def _bulk_write(
        self, operation: Operation, object_name: str, part: pd.DataFrame, external_id_field: str | None
    ) -> _Rows:
        """Bulk 2.0 ingest: one job per <= 100 MB of CSV; results matched back to rows by content.

        The CSV stays in Arrow buffers (a job's upload is one copy of them), not a Python string
        per row. Writes of one hook in several threads take turns (``_bulk_turn``) to build and upload
        a job and to match its results, not to wait for it: two 100 MB jobs in flight hold one job's
        peak, not two.
        """
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        header = ["Id"] if operation == "delete" else [str(c) for c in part.columns]
        # what tells a job's rows apart in its results: the upsert's external id, or the Id
        key = external_id_field if operation == "upsert" else "Id" if "Id" in header else None
        if not len(part):
            return _Rows.empty(0)
        with self._bulk_turn:
            head = _csv_lines([pa.array([name], type=pa.string()) for name in header])[0].as_py().encode()
            # Column at a time in pyarrow, not cell by cell: a million rows are a few seconds, not a minute.
            lines = _csv_lines([_csv_column(part[c]) for c in header])
            ends = np.cumsum(pc.binary_length(lines).to_numpy(zero_copy_only=False), dtype=np.int64)
        outcomes: list[_Rows] = []
        start = 0
        while start < len(lines):
            done_before = int(ends[start - 1]) if start else 0
            # as many rows as fit beside the header, and at least one
            stop = max(start + 1, int(np.searchsorted(ends, done_before + BULK_MAX_UPLOAD_BYTES - len(head), "right")))
            job = lines.slice(start, stop - start)
            with self._bulk_turn:
                job_id = self._bulk_upload(operation, object_name, external_id_field, b"".join((head, _data(job))))
            info = self._wait_for_job("ingest", job_id, rows=len(job))
            with self._bulk_turn:
                keys = _csv_column(part[key].iloc[start:stop]) if key else None
                outcomes.append(self._bulk_results(job_id, info, header, job, keys, key))
                del keys
            start = stop
        return _Rows.concat(outcomes)

    def _bulk_upload(self, operation: Operation, object_name: str, external_id_field: str | None,
                     body: bytes) -> str:
        """Create a Bulk 2.0 ingest job, upload ``body`` (CSV) and close it; its id."""
        spec: dict[str, Any] = {
            "object": object_name,
            "operation": operation,
            "contentType": "CSV",
            "columnDelimiter": "COMMA",
            "lineEnding": "LF",
        }
        if external_id_field:
            spec["externalIdFieldName"] = external_id_field
        job_id = self._request("POST", "jobs/ingest", json=spec).json()["id"]
        try:
            self._request("PUT", f"jobs/ingest/{job_id}/batches", data=body,
                          headers={"Content-Type": "text/csv; charset=UTF-8"})
            self._request("PATCH", f"jobs/ingest/{job_id}", json={"state": "UploadComplete"})
        except BaseException:
            self._abort_job("ingest", job_id)  # leave no open job behind
            raise
        return job_id

    def _bulk_results(self, job_id: str, info: dict[str, Any], header: list[str], lines: Any,
                      keys: Any = None, key: str | None = None) -> _Rows:
        """A completed job's outcome for each of the ``lines`` it was sent.

        Result order is not guaranteed: each result row is found again by what it echoes of the row
        sent. When the job's ``keys`` (the ``key`` column's cells, as sent) are all different, by
        that column alone: a result file is then read for three columns and matched on one, not
        on every cell of a million rows. Otherwise by the whole line, written back into CSV the
        same way.
        """
        import pyarrow as pa
        import pyarrow.compute as pc

        failed = int(info.get("numberRecordsFailed") or 0)
        succeeded = int(info.get("numberRecordsProcessed") or 0) - failed
        by_key = keys is not None and pc.count_distinct(keys).as_py() == len(keys)
        matched_on = [key] if by_key else header
        results, rebuilt = [], []  # (kind, its first two columns), and the cells matched on, as sent
        for kind, count in (("successfulResults", succeeded), ("failedResults", failed)):
            if count > 0:
                got = _result_table(self._request("GET", f"jobs/ingest/{job_id}/{kind}",
                                                  headers={"Accept": "text/csv"}).content, keep=matched_on)
                if got.num_rows:
                    rebuilt.append(_csv_lines([got.column(c).combine_chunks() if c in got.column_names
                                               else pa.array([""] * got.num_rows, pa.string()) for c in matched_on]))
                    results.append((kind, got.select([0, 1])))  # the echoed cells can go
                del got
        positions = _match_lines(_csv_lines([keys]) if by_key else lines, rebuilt)
        del rebuilt
        outcomes = _Rows.empty(len(lines), error="UNPROCESSED:the row is missing from the job's results")
        unmatched = 0
        for (kind, got), found in zip(results, positions, strict=True):
            hit = found >= 0
            unmatched += int((~hit).sum())
            at = found[hit]
            first = got.column(0).combine_chunks().filter(pa.array(hit))
            outcomes.ids[at] = pc.if_else(pc.equal(first, ""), None, first).to_numpy(zero_copy_only=False)
            second = got.column(1).combine_chunks().filter(pa.array(hit))
            if kind == "successfulResults":
                outcomes.created[at] = pc.equal(second, "true").fill_null(False).to_numpy(zero_copy_only=False)
                outcomes.errors[at] = None
            else:
                outcomes.created[at] = False
                outcomes.errors[at] = pc.if_else(pc.equal(second, ""), "UNKNOWN:", second).fill_null(
                    "UNKNOWN:").to_numpy(zero_copy_only=False)
        if unmatched:
            self.log.warning("Bulk 2.0 job %s: %s result rows matched no submitted row", job_id, unmatched)
        return outcomes

    def test_connection(self) -> tuple[bool, str]:
        """Log in and describe Account."""
        try:
            fields = self.field_map("Account")
        except Exception as err:
            return False, f"{type(err).__name__}: {err}"
        sf = self.conn
        return True, f"Connected to {sf.sf_instance} (API {sf.sf_version}); Account has {len(fields)} fields"


def _strip_attributes(value: Any) -> Any:
    """Drop the ``attributes`` entries, at every depth (parent records, sub-queries)."""
    if isinstance(value, dict):
        return {k: _strip_attributes(v) for k, v in value.items() if k != "attributes"}
    if isinstance(value, list):
        return [_strip_attributes(v) for v in value]
    return value


def _flatten(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, dict) and "records" not in value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


_SELECT = re.compile(r"^\s*select\s+(.*?)\s+from\s", re.IGNORECASE | re.DOTALL)


def _select_list(soql: str) -> list[str]:
    """The plain field names of a SOQL select list (empty when it has sub-queries)."""
    match = _SELECT.match(soql)
    if not match or "(" in match.group(1):
        return []
    return [f.strip() for f in match.group(1).split(",") if f.strip()]


def _missing(value: Any) -> bool:
    """None, NaN, NA or NaT: the cell leaves the field unchanged."""
    if value is None:
        return True
    if isinstance(value, float):
        return value != value  # NaN
    return type(value).__name__ in ("NAType", "NaTType")


def _plain(value: Any) -> Any:
    """A JSON/CSV-ready value: numpy scalars unboxed, datetimes in ISO 8601 (naive ones taken as UTC)."""
    if isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return value.isoformat(timespec="milliseconds") + "Z"
        return value.isoformat(timespec="milliseconds")
    if isinstance(value, date):
        return value.isoformat()
    if type(value).__name__ == "datetime64":
        import pandas as pd

        return _plain(pd.Timestamp(value).to_pydatetime())
    if hasattr(value, "item"):  # a numpy scalar
        return _plain(value.item())
    return value


def _json_record(row: dict[str, Any]) -> dict[str, Any]:
    """A frame row as a composite record: missing cells left out, CLEAR as null, ``A__r.B`` nested."""
    record: dict[str, Any] = {}
    for column, value in row.items():
        if _missing(value):
            continue
        relation, dot, field_name = str(column).partition(".")
        if value == CLEAR:
            # A reference cannot be nulled through the parent's external id: null the lookup field.
            if dot:
                relation = relation[:-3] + "__c" if relation.endswith("__r") else relation + "Id"
            record[relation] = None
        elif dot:
            record.setdefault(relation, {})[field_name] = _plain(value)
        else:
            record[relation] = _plain(value)
    return record


def _csv_cell(value: Any) -> str:
    """A cell for Bulk 2.0: missing is empty (unchanged), CLEAR stays ``#N/A`` (null)."""
    if _missing(value):
        return ""
    value = _plain(value)
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


_DISTINCT_SAFE = frozenset({"integer", "floating", "boolean", "datetime", "datetime64", "date", "decimal", "empty"})


def _csv_column(values: pd.Series) -> Any:
    """A column's cells as :func:`_csv_cell` makes them, as a pyarrow string array.

    Text goes through as is (missing: empty); other values are converted once per distinct value
    (a rating, a flag, a date repeats), unless kinds mix (``1 == True`` would merge them).
    """
    import pandas as pd
    import pyarrow as pa

    kind = pd.api.types.infer_dtype(values, skipna=True)
    if kind == "string":
        return pa.array(values.to_numpy(dtype=object), type=pa.string(), from_pandas=True).fill_null("")
    raw = values.to_numpy(dtype=object)
    if kind in _DISTINCT_SAFE:
        codes, uniques = pd.factorize(raw, use_na_sentinel=True)
        cells = [_csv_cell(v) for v in uniques] + [""]  # code -1, a missing value, takes the last: empty
        return pa.array([cells[c] for c in codes.tolist()], type=pa.string())
    return pa.array([_csv_cell(v) for v in raw.tolist()], type=pa.string())


def _result_table(content: bytes, keep: list[str] | None = None) -> Any:
    """A Bulk 2.0 result file (``sf__Id``, ``sf__Created`` or ``sf__Error``, then the columns sent) as a
    pyarrow table of text: every cell a string, empty ones ``""``. Parsed from the bytes as they came
    (a result of a million rows stays compact, not a frame of Python strings).

    :param keep: of the columns sent, only these are read (the first two always are)
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    end = content.find(b"\n")
    head = content[:end if end >= 0 else len(content)].decode("utf-8-sig")
    if not head.strip():
        return pa.table({})
    names = next(csv.reader([head]))
    return pacsv.read_csv(
        pa.BufferReader(content),  # no copy of the file
        read_options=pacsv.ReadOptions(column_names=names, skip_rows=1),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(names, pa.string()), strings_can_be_null=False,
            include_columns=None if keep is None else names[:2] + [n for n in names[2:] if n in keep]),
    )


def _csv_lines(columns: list[Any]) -> Any:
    """Rows as CSV lines, as Bulk 2.0 reads them (a pyarrow string array; ``binary_length`` gives
    their bytes): cells joined by commas, a cell in double quotes only when it holds a comma, a
    double quote (doubled) or a line break (Salesforce trims nothing, so nothing else needs them),
    LF after every row. Quoting every cell would add two bytes a cell: a tenth of a subscriber row,
    and a Bulk job per audience. Large strings (64-bit offsets): a frame's CSV may pass 2 GB."""
    import pyarrow as pa
    import pyarrow.compute as pc

    text = pa.large_string()
    quote, lf, none, comma = (pa.scalar(v, text) for v in ('"', "\n", "", ","))

    def cell(column: Any) -> Any:
        column = column.cast(text)
        needs = pc.match_substring_regex(column, _NEEDS_QUOTES)
        if not pc.any(needs).as_py():  # most columns (ids, keys, emails): used as they are, no copy
            return column
        doubled = pc.replace_substring(column, '"', '""')
        return pc.if_else(needs, pc.binary_join_element_wise(quote, doubled, quote, none), column)

    cells = [cell(c) for c in columns]
    cells[-1] = pc.binary_join_element_wise(cells[-1], lf, none)  # the LF: one column copied, not every line
    return pc.binary_join_element_wise(*cells, comma) if len(cells) > 1 else cells[0]


def _data(lines: Any) -> Any:
    """A string array's values end to end: a slice of its data buffer (no copy)."""
    import numpy as np
    import pyarrow as pa

    if not len(lines):
        return b""
    _, offsets, data = lines.buffers()
    at = np.frombuffer(offsets, dtype=np.int64 if pa.types.is_large_string(lines.type) else np.int32)
    return data[int(at[lines.offset]):int(at[lines.offset + len(lines)])]


def _match_lines(sent: Any, found: list[Any]) -> list[Any]:
    """For each array of ``found`` lines, the position in ``sent`` of each line (-1: none left).

    Equal lines pair up in order, so two identical rows sent get the two results back; each sent
    row is matched at most once over all of ``found``. Arrow and numpy, not a dict of strings.
    """
    import numpy as np
    import pyarrow.compute as pc

    encoded = pc.dictionary_encode(sent)
    sent_codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    groups = np.bincount(sent_codes, minlength=len(encoded.dictionary))  # sent copies of each line
    by_line = np.argsort(sent_codes, kind="stable")  # sent rows grouped by line, in order
    group_start = np.concatenate([[0], np.cumsum(groups)[:-1]])
    taken = np.zeros(len(groups), dtype=np.int64)  # copies of each line matched so far
    matched = []
    for lines in found:
        codes = pc.index_in(lines, value_set=encoded.dictionary).fill_null(-1)
        codes = codes.to_numpy(zero_copy_only=False).astype(np.int64)
        position = np.full(len(codes), -1, dtype=np.int64)
        known = np.flatnonzero(codes >= 0)
        order = known[np.argsort(codes[known], kind="stable")]
        sorted_codes = codes[order]
        # the n-th copy of a line found takes the first copy not yet matched, and so on
        nth = np.arange(len(order)) - np.searchsorted(sorted_codes, sorted_codes, "left") + taken[sorted_codes]
        ok = nth < groups[sorted_codes]
        position[order[ok]] = by_line[group_start[sorted_codes[ok]] + nth[ok]]
        taken += np.bincount(sorted_codes[ok], minlength=len(groups))
        matched.append(position)
    return matched


_NEEDS_QUOTES = '[,"\r\n]'


def _format_errors(errors: list[dict[str, Any]]) -> str:
    return "; ".join(f"{e.get('statusCode', 'UNKNOWN')}:{e.get('message', '')}" for e in errors) or "UNKNOWN:"


def _error_code(error: str) -> str:
    return error.split(":", 1)[0].strip()


@dataclass
class _Rows:
    """Per-row outcomes of a write, a numpy array per column: Salesforce id (None: none), created,
    error (``"CODE:message"``; None: succeeded)."""

    ids: Any
    created: Any
    errors: Any

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def empty(cls, n: int, *, error: str | None = None) -> _Rows:
        import numpy as np

        return cls(np.full(n, None, dtype=object), np.zeros(n, dtype=bool), np.full(n, error, dtype=object))

    @classmethod
    def of(cls, outcomes: list[tuple[str | None, bool, str | None]]) -> _Rows:
        rows = cls.empty(len(outcomes))
        for i, (record_id, was_created, error) in enumerate(outcomes):
            rows.ids[i], rows.created[i], rows.errors[i] = record_id, was_created, error
        return rows

    @classmethod
    def concat(cls, parts: list[_Rows]) -> _Rows:
        import numpy as np

        if len(parts) == 1:
            return parts[0]
        return cls(*(np.concatenate([getattr(p, name) for p in parts]) for name in ("ids", "created", "errors")))

    def put(self, at: Any, other: _Rows) -> None:
        self.ids[at], self.created[at], self.errors[at] = other.ids, other.created, other.errors


def _result_frames(frame: pd.DataFrame, rows: _Rows, requests_used: int, echo: bool = True) -> WriteResult:
    import numpy as np

    bad = rows.errors != None  # noqa: E711 - elementwise
    ok = np.flatnonzero(~bad)
    bad = np.flatnonzero(bad)
    successes = frame.iloc[ok].copy() if echo else frame.iloc[ok, :0].copy()
    successes.insert(0, "sf__Created", rows.created[ok])
    successes.insert(0, "sf__Id", rows.ids[ok])
    failures = frame.iloc[bad].copy()
    failures.insert(0, "sf__Error", rows.errors[bad])
    failures.insert(0, "sf__Id", rows.ids[bad])
    return WriteResult(successes=successes, failures=failures, requests=requests_used)
