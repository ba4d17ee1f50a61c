"""Hook for the Mailchimp Marketing API 3.0, built on the official ``mailchimp-marketing`` client.

Every request goes through :meth:`MailchimpHook.call`, which bounds the requests in flight
(Mailchimp allows 10 simultaneous connections per account and answers 429 beyond that),
retries transient failures and counts requests per endpoint for the run summary.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from itertools import islice
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
from airflow.sdk import BaseHook

from mcsf.hooks._http import (
    MAX_ATTEMPTS,
    TRANSIENT_STATUSES,
    RequestCounter,
    is_connection_error,
    retrying,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from datetime import datetime

    import mailchimp_marketing

DEFAULT_MAX_CONNECTIONS = 8
MAX_CONNECTIONS_LIMIT = 10  # Mailchimp: "a limit of 10 simultaneous connections" per account
MAX_PAGE_SIZE = 1000
BATCH_SUBSCRIBE_SIZE = 500
DEFAULT_TIMEOUT_SECONDS = 120  # Mailchimp's own call timeout


class MailchimpApiError(Exception):
    """A Mailchimp API call failed; built from the problem document Mailchimp returns.

    :param status: HTTP status, None when no response arrived (connection error)
    :param title: the problem's title, e.g. "Invalid Resource"
    :param detail: the problem's detail
    :param errors: field errors of a validation failure, ``[{"field", "message"}]``
    :param label: the endpoint called, e.g. ``"POST /lists/{list_id}"``
    :param bare: the error came without a problem document
    """

    def __init__(
        self,
        status: int | None,
        title: str,
        detail: str,
        errors: list[dict[str, Any]] | None = None,
        label: str = "",
        bare: bool = False,
    ) -> None:
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = errors or []
        self.label = label
        self.bare = bare
        self.hint = ""  # what to do about it, set by the hook (it knows the connection id)
        super().__init__(status, title, detail, self.errors, label, bare)

    @property
    def transient(self) -> bool:
        """Whether trying again later may succeed (429, 5xx, broken connection).

        A bare 403 counts too: at high volume Mailchimp throttles with 429 or 403 without a body.
        """
        return self.status is None or self.status in TRANSIENT_STATUSES or (self.status == 403 and self.bare)

    def __str__(self) -> str:
        text = f"{self.label}: {self.status or 'no response'} {self.title}: {self.detail}".lstrip(": ")
        if self.errors:
            text += " [" + "; ".join(f"{e.get('field')}: {e.get('message')}" for e in self.errors) + "]"
        if self.hint:
            text += f" — {self.hint}"
        return text


@dataclass
class BatchUpsertResult:
    """What a batch subscribe did, summed over its chunks of 500.

    ``errors`` items carry ``email_address, error, error_code, field, field_message``.
    """

    created: list[dict[str, Any]] = field(default_factory=list)
    updated: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)


class MailchimpHook(BaseHook):
    """Talk to the Mailchimp Marketing API 3.0.

    Connection: the API key in *password* (its ``-us6`` suffix names the data centre), or an
    OAuth token in extra ``access_token`` (then extra ``server`` names the data centre); an
    optional base URL in *host* (``http://127.0.0.1:8080/3.0``, a proxy); extra
    ``max_connections`` (default 8, at most 10).

    :param mailchimp_conn_id: the Airflow connection id
    :param max_connections: requests in flight at most, across all threads using this hook;
        overrides the connection's extra
    """

    conn_name_attr = "mailchimp_conn_id"
    default_conn_name = "mailchimp_default"
    conn_type = "mailchimp"
    hook_name = "Mailchimp"

    def __init__(
        self, mailchimp_conn_id: str = default_conn_name, max_connections: int | None = None
    ) -> None:
        super().__init__()
        self.mailchimp_conn_id = mailchimp_conn_id
        self._max_connections = max_connections
        self.requests_used: RequestCounter = RequestCounter()
        self.retries: RequestCounter = RequestCounter()
        self.max_attempts = MAX_ATTEMPTS
        self._init_lock = threading.Lock()
        self._slots: threading.BoundedSemaphore | None = None

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Extra fields of the connection form."""
        from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget, BS3TextFieldWidget
        from flask_babel import lazy_gettext
        from wtforms import IntegerField, PasswordField, StringField
        from wtforms.validators import NumberRange, Optional

        return {
            "access_token": PasswordField(
                lazy_gettext("OAuth access token (instead of an API key)"), widget=BS3PasswordFieldWidget()
            ),
            "server": StringField(
                lazy_gettext("Data centre for OAuth, e.g. us6"), widget=BS3TextFieldWidget()
            ),
            "max_connections": IntegerField(
                lazy_gettext("Max simultaneous connections"),
                validators=[Optional(), NumberRange(min=1, max=MAX_CONNECTIONS_LIMIT)],
                widget=BS3TextFieldWidget(),
                default=DEFAULT_MAX_CONNECTIONS,
            ),
        }

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Relabel and hide the standard connection fields."""
        return {
            "hidden_fields": ["port", "schema", "login"],
            "relabeling": {"password": "API key", "host": "Base URL (optional)"},
            "placeholders": {"host": "https://us6.api.mailchimp.com/3.0", "password": "0123abcd…-us6"},
        }

    # -- client and transport -------------------------------------------------------------------

    @cached_property
    def _connection(self) -> Any:
        return self.get_connection(self.mailchimp_conn_id)

    @cached_property
    def max_connections(self) -> int:
        """Requests in flight at most: the constructor's value, else extra, else 8; capped at 10."""
        wanted = self._max_connections
        if wanted is None:
            wanted = int(self._connection.extra_dejson.get("max_connections") or DEFAULT_MAX_CONNECTIONS)
        if wanted > MAX_CONNECTIONS_LIMIT:
            self.log.warning(
                "max_connections %s exceeds Mailchimp's limit; using %s", wanted, MAX_CONNECTIONS_LIMIT
            )
        return max(1, min(wanted, MAX_CONNECTIONS_LIMIT))

    @cached_property
    def client(self) -> mailchimp_marketing.Client:
        """The official client, configured from the connection."""
        import mailchimp_marketing

        conn = self._connection
        extra = conn.extra_dejson
        config: dict[str, Any] = {"timeout": int(extra.get("timeout") or DEFAULT_TIMEOUT_SECONDS)}
        base_url = self._base_url(conn.host, conn.port, conn.schema)
        if conn.password:
            config["api_key"] = conn.password
            if not base_url and "-" not in conn.password:
                raise ValueError(
                    f"Connection {self.mailchimp_conn_id!r}: the API key lacks its data-centre suffix "
                    "(like -us6); copy the whole key from Mailchimp"
                )
        elif extra.get("access_token"):
            config["access_token"] = extra["access_token"]
            if not base_url and not extra.get("server"):
                raise ValueError(
                    f"Connection {self.mailchimp_conn_id!r}: with an OAuth access token, set extra "
                    "'server' to the account's data centre (like us6) or give a base URL in host"
                )
            if extra.get("server"):
                config["server"] = extra["server"]
        else:
            raise ValueError(
                f"Connection {self.mailchimp_conn_id!r} has neither an API key (password) "
                "nor an extra 'access_token'"
            )
        client = mailchimp_marketing.Client()
        client.set_config(config)
        if base_url:
            # The client ignores Configuration.host and replaces every "server" in the URL by the
            # data centre; with our own base URL there is nothing to replace.
            client.api_client.host = base_url
            client.api_client.server = ""
        return client

    @staticmethod
    def _base_url(host: str | None, port: int | None, schema: str | None) -> str | None:
        """The connection's base URL: host as a whole URL, or host + port + schema (path)."""
        if not host:
            return None
        if "://" not in host:
            netloc = f"{host}:{port}" if port else host
            host = f"https://{netloc}/{(schema or '3.0').strip('/')}"
        parts = urlsplit(host)
        return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"

    def _ready(self) -> threading.BoundedSemaphore:
        """Build the client and the connection slots once, before any thread needs them."""
        if self._slots is None:
            with self._init_lock:
                if self._slots is None:
                    _ = self.client
                    self._slots = threading.BoundedSemaphore(self.max_connections)
        return self._slots

    def call(self, label: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call one client method: bounded concurrency, transient failures retried, counted.

        Retries (:attr:`max_attempts` in all, 6 by default; exponential backoff with jitter up to
        30 s) on 429, 5xx and broken connections. Mailchimp's Retry-After cannot be honoured: the
        official client raises ``ApiClientError(text, status_code)`` and drops the response headers.

        :param label: the endpoint as a template, e.g. ``"GET /lists/{list_id}/members"``
        :param fn: a bound method of :attr:`client`
        :return: the decoded JSON body (None for an empty success)
        :raises MailchimpApiError: on a non-transient error, or when the retries are used up
        """
        slots = self._ready()
        for attempt in retrying(label, self.log, _is_transient, self.retries, _reason, self.max_attempts):
            with attempt:
                with slots:
                    self.requests_used.add(label)
                    try:
                        result = fn(*args, **kwargs)
                    except Exception as err:
                        raise self._with_hint(_api_error(label, err)) from None
                if isinstance(result, requests.Response):
                    # The client hands back the raw Response when the body is empty, errors included.
                    if not result.ok:
                        raise self._with_hint(_api_error(label, _EmptyBodyError(result.status_code)))
                    return None
                return result
        raise AssertionError("unreachable: tenacity re-raises the last error")

    def _with_hint(self, err: MailchimpApiError) -> MailchimpApiError:
        """Tell an analyst what to change when the key itself is refused (revoked, rotated, mistyped):
        a run cannot recover from that by retrying, and the message should name the connection."""
        if err.status == 401:
            err.hint = (f"Mailchimp refused the credentials of Airflow connection {self.mailchimp_conn_id!r}; "
                        "the API key was probably revoked or rotated: put a valid key in that connection")
        return err

    # -- single resources -----------------------------------------------------------------------

    def get_root(self) -> dict[str, Any]:
        """The account: ``account_id, account_name, role, …`` (GET /)."""
        return self.call("GET /", self.client.root.get_root, exclude_fields=["_links"])

    def get_list(self, list_id: str) -> dict[str, Any]:
        """One audience (GET /lists/{list_id}).

        :param list_id: the audience id
        """
        return self.call(
            "GET /lists/{list_id}", self.client.lists.get_list, list_id, exclude_fields=["_links"]
        )

    def get_campaign(self, campaign_id: str) -> dict[str, Any] | None:
        """One campaign's id, type, status and audience (GET /campaigns/{campaign_id}); None: no such campaign.

        :param campaign_id: the campaign id
        """
        try:
            return self.call("GET /campaigns/{campaign_id}", self.client.campaigns.get, campaign_id,
                             fields=["id", "type", "status", "recipients.list_id"])
        except MailchimpApiError as err:
            if err.status == 404:
                return None
            raise

    def get_lists(self) -> dict[str, dict[str, Any]]:
        """Every audience of the account by id, with ``name`` and ``stats`` (GET /lists, pages of 1000).

        One request answers for all audiences: the hourly preflight's proof that the key works.
        """
        pages = self.iter_pages("GET /lists", self.client.lists.get_all_lists, "lists", fields=["id", "name", "stats"])
        return {item["id"]: item for page in pages for item in page}

    def get_segment(self, list_id: str, segment_id: str | int) -> dict[str, Any]:
        """One segment (GET /lists/{list_id}/segments/{segment_id}).

        :param list_id: the audience id
        :param segment_id: the segment id
        """
        return self.call(
            "GET /lists/{list_id}/segments/{segment_id}",
            self.client.lists.get_segment,
            list_id,
            str(segment_id),
            exclude_fields=["_links"],
        )

    def list_merge_fields(self, list_id: str) -> list[dict[str, Any]]:
        """All merge fields of an audience.

        :param list_id: the audience id
        """
        return self._collect(
            "GET /lists/{list_id}/merge-fields",
            self.client.lists.get_list_merge_fields,
            "merge_fields",
            list_id=list_id,
        )

    def create_merge_field(self, list_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create one merge field (POST /lists/{list_id}/merge-fields).

        :param list_id: the audience id
        :param body: ``name``, ``type`` and optionally ``tag, required, options, …``
        """
        return self.call(
            "POST /lists/{list_id}/merge-fields", self.client.lists.add_list_merge_field, list_id, body
        )

    def list_interest_categories(self, list_id: str) -> list[dict[str, Any]]:
        """All interest categories (groups) of an audience.

        :param list_id: the audience id
        """
        return self._collect(
            "GET /lists/{list_id}/interest-categories",
            self.client.lists.get_list_interest_categories,
            "categories",
            list_id=list_id,
        )

    def list_interests(self, list_id: str, category_id: str) -> list[dict[str, Any]]:
        """All interests of one interest category.

        :param list_id: the audience id
        :param category_id: the interest category id
        """
        return self._collect(
            "GET /lists/{list_id}/interest-categories/{interest_category_id}/interests",
            self.client.lists.list_interest_category_interests,
            "interests",
            list_id=list_id,
            interest_category_id=category_id,
        )

    def _collect(self, label: str, fn: Callable[..., Any], items_key: str, **params: Any) -> list[dict]:
        return [item for page in self.iter_pages(label, fn, items_key, **params) for item in page]

    # -- collections ----------------------------------------------------------------------------

    def iter_pages(
        self,
        label: str,
        fn: Callable[..., Any],
        items_key: str,
        *,
        page_size: int = MAX_PAGE_SIZE,
        progress: Callable[[int, int], None] | None = None,
        fields: Sequence[str] | None = None,
        **params: Any,
    ) -> Iterator[list[dict[str, Any]]]:
        """Yield a collection page by page, in the API's order.

        The first page tells ``total_items``; the other offsets are fetched concurrently (within
        :attr:`max_connections`) with a look-ahead of as many pages, so memory stays flat.
        Offset paging is not a snapshot: items that change while a big collection is read can
        shift between pages; a window filter (``before_*``) keeps the set stable.

        :param label: the endpoint template, for counting and logs
        :param fn: the client method, e.g. ``client.lists.get_list_members_info``
        :param items_key: the key of the items in the response, e.g. ``"members"``
        :param page_size: items per request, at most 1000
        :param progress: called as ``progress(items_done, total_items)`` after each page
        :param fields: item fields to return (e.g. ``["id", "email_address"]``); all when None
        :param params: further query or path parameters of ``fn``; None values are left out
        """
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must lie between 1 and {MAX_PAGE_SIZE}, not {page_size}")
        query = {k: v for k, v in params.items() if v is not None}
        if fields:
            query["fields"] = [f"{items_key}.{name}" for name in fields] + ["total_items"]
        else:
            query["exclude_fields"] = [f"{items_key}._links", "_links"]

        def fetch(offset: int) -> list[dict[str, Any]]:
            return self.call(label, fn, count=page_size, offset=offset, **query).get(items_key) or []

        first = self.call(label, fn, count=page_size, offset=0, **query)
        total = int(first.get("total_items") or 0)
        page = first.pop(items_key, None) or []
        done = len(page)
        offsets = iter(range(page_size, total, page_size))
        # The look-ahead starts before the first page is handed out, so the caller's work on a page
        # overlaps the fetching of the next ones; at most ``workers`` pages wait in memory.
        workers = min(self.max_connections, max(0, -(-(total - page_size) // page_size)))
        pool = ThreadPoolExecutor(max_workers=max(workers, 1), thread_name_prefix="mailchimp-page")
        pending = deque(pool.submit(fetch, offset) for offset in islice(offsets, workers))
        try:
            while True:
                if progress:
                    progress(done, total)
                yield page
                if not pending:
                    break
                page = pending.popleft().result()
                offset = next(offsets, None)
                if offset is not None:
                    pending.append(pool.submit(fetch, offset))
                done += len(page)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        if done != total:
            self.log.warning(
                "%s: read %s items but total_items said %s (the collection changed while paging)",
                label,
                done,
                total,
            )

    def iter_members(
        self,
        list_id: str,
        *,
        since_last_changed: datetime | None = None,
        before_last_changed: datetime | None = None,
        status: str | None = None,
        fields: Sequence[str] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> Iterator[list[dict[str, Any]]]:
        """Pages of an audience's members, optionally only those changed in a window.

        :param list_id: the audience id
        :param since_last_changed: changed at or after this aware datetime
        :param before_last_changed: changed before this aware datetime
        :param status: subscribed, unsubscribed, cleaned, pending, transactional or archived
        :param fields: member fields to return; all when None
        :param progress: see :meth:`iter_pages`
        """
        return self.iter_pages(
            "GET /lists/{list_id}/members",
            self.client.lists.get_list_members_info,
            "members",
            list_id=list_id,
            since_last_changed=_iso(since_last_changed),
            before_last_changed=_iso(before_last_changed),
            status=status,
            fields=fields,
            progress=progress,
        )

    def iter_segments(
        self,
        list_id: str,
        *,
        since_updated_at: datetime | None = None,
        before_updated_at: datetime | None = None,
        since_created_at: datetime | None = None,
        before_created_at: datetime | None = None,
    ) -> Iterator[list[dict[str, Any]]]:
        """Pages of an audience's segments, optionally in a created/updated window.

        :param list_id: the audience id
        :param since_updated_at: updated at or after (aware datetime)
        :param before_updated_at: updated before
        :param since_created_at: created at or after
        :param before_created_at: created before
        """
        return self.iter_pages(
            "GET /lists/{list_id}/segments",
            self.client.lists.list_segments,
            "segments",
            list_id=list_id,
            since_updated_at=_iso(since_updated_at),
            before_updated_at=_iso(before_updated_at),
            since_created_at=_iso(since_created_at),
            before_created_at=_iso(before_created_at),
        )

    def iter_segment_members(
        self, list_id: str, segment_id: str | int, *, every_status: bool = False, fields: Sequence[str] | None = None
    ) -> Iterator[list[dict[str, Any]]]:
        """Pages of a segment's members.

        :param list_id: the audience id
        :param segment_id: the segment id
        :param every_status: include cleaned, transactional and unsubscribed members (Mailchimp
            leaves them out by default), so membership does not change with a member's status
        :param fields: member fields to return (``["id"]`` for membership alone); all when None
        """
        flags = {"include_cleaned": True, "include_transactional": True, "include_unsubscribed": True} \
            if every_status else {}
        return self.iter_pages(
            "GET /lists/{list_id}/segments/{segment_id}/members",
            self.client.lists.get_segment_members_list,
            "members",
            list_id=list_id,
            segment_id=str(segment_id),
            fields=fields,
            **flags,
        )

    def iter_campaigns(
        self,
        *,
        list_id: str | None = None,
        since_send_time: datetime | None = None,
        before_send_time: datetime | None = None,
        status: str | None = "sent",
        type: str | None = None,
    ) -> Iterator[list[dict[str, Any]]]:
        """Pages of campaigns, by default the sent ones.

        :param list_id: only campaigns sent to this audience
        :param since_send_time: sent at or after (aware datetime)
        :param before_send_time: sent before
        :param status: save, paused, schedule, sending or sent; None for all
        :param type: regular, plaintext, absplit, rss or variate; None for all
        """
        return self.iter_pages(
            "GET /campaigns",
            self.client.campaigns.list,
            "campaigns",
            list_id=list_id,
            since_send_time=_iso(since_send_time),
            before_send_time=_iso(before_send_time),
            status=status,
            type=type,
        )

    def iter_email_activity(
        self, campaign_id: str, *, since: datetime | None = None
    ) -> Iterator[list[dict[str, Any]]]:
        """Pages of per-recipient activity (opens, clicks, bounces) of a campaign.

        The API has no upper bound: cut the window's end on the client side.

        :param campaign_id: the campaign id
        :param since: only activity after this aware datetime
        """
        return self.iter_pages(
            "GET /reports/{campaign_id}/email-activity",
            self.client.reports.get_email_activity_for_campaign,
            "emails",
            campaign_id=campaign_id,
            since=_iso(since),
        )

    def iter_sent_to(self, campaign_id: str) -> Iterator[list[dict[str, Any]]]:
        """Pages of a campaign's recipients.

        :param campaign_id: the campaign id
        """
        return self.iter_pages(
            "GET /reports/{campaign_id}/sent-to",
            self.client.reports.get_campaign_recipients,
            "sent_to",
            campaign_id=campaign_id,
        )

    def iter_unsubscribed(self, campaign_id: str) -> Iterator[list[dict[str, Any]]]:
        """Pages of the members who unsubscribed from a campaign.

        :param campaign_id: the campaign id
        """
        return self.iter_pages(
            "GET /reports/{campaign_id}/unsubscribed",
            self.client.reports.get_unsubscribed_list_for_campaign,
            "unsubscribes",
            campaign_id=campaign_id,
        )

    # -- writes ---------------------------------------------------------------------------------

    def batch_upsert_members(
        self, list_id: str, members: list[dict[str, Any]], *, update_existing: bool = True
    ) -> BatchUpsertResult:
        """Add or update members, 500 per request, requests sent concurrently.

        Re-sending a chunk after a broken connection is harmless with ``update_existing``;
        without it, members created by the lost attempt come back as ``ERROR_CONTACT_EXISTS``.

        :param list_id: the audience id
        :param members: member bodies: ``email_address``, ``status`` / ``status_if_new``,
            ``merge_fields``, ``interests``, …
        :param update_existing: update members that already exist instead of reporting an error
        """
        label = "POST /lists/{list_id}"
        chunks = [members[i : i + BATCH_SUBSCRIBE_SIZE] for i in range(0, len(members), BATCH_SUBSCRIBE_SIZE)]
        result = BatchUpsertResult()
        if not chunks:
            return result
        self._ready()

        def send(chunk: list[dict[str, Any]]) -> dict[str, Any]:
            body = {"members": chunk, "update_existing": update_existing}
            return self.call(label, self.client.lists.batch_list_members, list_id, body)

        with ThreadPoolExecutor(max_workers=min(self.max_connections, len(chunks))) as pool:
            for response in pool.map(send, chunks):
                result.created.extend(response.get("new_members") or [])
                result.updated.extend(response.get("updated_members") or [])
                result.errors.extend(response.get("errors") or [])
        self.log.info(
            "Batch upsert to audience %s: %s members sent in %s requests; %s created, %s updated, %s errors",
            list_id,
            len(members),
            len(chunks),
            len(result.created),
            len(result.updated),
            len(result.errors),
        )
        return result

    def ensure_merge_fields(self, list_id: str, declared: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Create the declared merge fields whose tag the audience lacks; idempotent.

        :param list_id: the audience id
        :param declared: merge field bodies, each with ``tag``, ``name`` and ``type``
        :return: the merge fields created now (empty when all existed)
        """
        missing_tag = [d.get("name") for d in declared if not d.get("tag")]
        if missing_tag:
            raise ValueError(f"declared merge fields need a tag to be matched by: {missing_tag}")
        existing = {f["tag"].upper() for f in self.list_merge_fields(list_id)}
        created = []
        for body in declared:
            if body["tag"].upper() in existing:
                continue
            try:
                created.append(self.create_merge_field(list_id, body))
            except MailchimpApiError as err:
                # A create whose response was lost and then retried meets its own tag; accept that.
                if err.status != 400 or body["tag"].upper() not in {
                    f["tag"].upper() for f in self.list_merge_fields(list_id)
                }:
                    raise
            existing.add(body["tag"].upper())
        if created:
            self.log.info(
                "Audience %s: created merge fields %s", list_id, ", ".join(f["tag"] for f in created)
            )
        return created

    def test_connection(self) -> tuple[bool, str]:
        """Call GET / and name the account and the key's role."""
        try:
            root = self.get_root()
        except (MailchimpApiError, ValueError) as err:
            return False, str(err)
        return True, (
            f"Connected to Mailchimp account {root.get('account_name')!r} "
            f"({root.get('account_id')}) with role {root.get('role')}"
        )


class _EmptyBodyError(Exception):
    """An error status without a body (Mailchimp sends 429/403 bare at high volume)."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status_code = status
        self.text = ""


def _api_error(label: str, err: Exception) -> MailchimpApiError:
    """Turn the client's ``ApiClientError(text, status_code)`` into a MailchimpApiError."""
    status = getattr(err, "status_code", None)
    text = getattr(err, "text", err)
    if status is None:
        cause = text if isinstance(text, BaseException) else err
        if isinstance(cause, BaseException) and not is_connection_error(cause):
            # Not an HTTP failure at all (e.g. a TypeError from the client): keep it visible.
            raise err
        return MailchimpApiError(None, "Connection error", type(cause).__name__, label=label)
    problem: Any = text
    if isinstance(text, str):
        try:
            problem = json.loads(text)
        except ValueError:
            problem = None
    if not isinstance(problem, dict):
        return MailchimpApiError(status, "Error without a problem document", "", label=label, bare=True)
    return MailchimpApiError(
        status,
        str(problem.get("title") or ""),
        str(problem.get("detail") or ""),
        problem.get("errors"),
        label=label,
    )


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, MailchimpApiError) and exc.transient


def _reason(exc: BaseException) -> str:
    if isinstance(exc, MailchimpApiError):
        return str(exc.status) if exc.status else "connection"
    return type(exc).__name__


def _iso(value: datetime | None) -> str | None:
    """ISO 8601 with offset, as Mailchimp's filters want; a naive datetime is refused."""
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"datetime {value!r} has no time zone; pass an aware datetime")
    return value.isoformat(timespec="seconds")
