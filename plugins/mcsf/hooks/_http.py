"""Retry and request counting shared by the Mailchimp and Salesforce hooks.

Only transient failures are retried here: HTTP 429, 5xx and broken connections. Anything else
is the caller's error and surfaces at once; task-level retries live in the DAG's default_args.
"""

from __future__ import annotations

import email.utils
import random
import threading
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

import requests
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter
from tenacity.wait import wait_base

if TYPE_CHECKING:
    import logging
    from collections.abc import Callable

    from tenacity import RetryCallState

TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
# Statuses by which a server says it did not process the request, so even a POST may be re-sent.
NOT_PROCESSED_STATUSES = frozenset({429, 503})
MAX_ATTEMPTS = 6
MAX_BACKOFF_SECONDS = 30.0
MAX_RETRY_AFTER_SECONDS = 60.0


class RequestCounter(Counter):
    """A :class:`collections.Counter` that several threads may increment at once."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lock = threading.Lock()
        self._mine = threading.local()

    def add(self, key: str, n: int = 1) -> None:
        """Add ``n`` to ``key`` atomically."""
        with self._lock:
            self[key] += n
        self._mine.total = self.of_this_thread() + n

    def of_this_thread(self) -> int:
        """Requests counted from the calling thread (what one of several writes side by side used)."""
        return getattr(self._mine, "total", 0)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class wait_retry_after(wait_base):  # named like tenacity's own strategies
    """Exponential backoff with jitter, but never shorter than the server's ``Retry-After``.

    The hint is read from the ``retry_after`` attribute of the exception being retried.
    """

    def __init__(self) -> None:
        # Starts short: a 429 for too many simultaneous connections clears as soon as one frees.
        self.backoff = wait_exponential_jitter(initial=0.25, max=MAX_BACKOFF_SECONDS, jitter=0.25)

    def __call__(self, retry_state: RetryCallState) -> float:
        backoff = self.backoff(retry_state)
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        hinted = getattr(exc, "retry_after", None)
        if hinted is None:
            return backoff
        return min(max(hinted + random.uniform(0, 0.25), backoff), MAX_RETRY_AFTER_SECONDS)


def retrying(
    label: str,
    log: logging.Logger,
    is_transient: Callable[[BaseException], bool],
    retries: RequestCounter,
    describe: Callable[[BaseException], str] = str,
    max_attempts: int = MAX_ATTEMPTS,
) -> Retrying:
    """A bounded tenacity ``Retrying`` that logs each retry at WARNING.

    :param label: what is being called, e.g. ``"GET /lists/{list_id}/members"``; never a secret
    :param log: the hook's logger
    :param is_transient: whether an exception is worth another attempt
    :param retries: counts retries by reason (status code or ``"connection"``)
    :param describe: short text for the log line and the retry counter key
    :param max_attempts: attempts in all, the first included
    """

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        reason = describe(exc) if exc is not None else "?"
        retries.add(reason)
        log.warning(
            "%s failed (%s); retry %d of %d in %.1f s",
            label,
            reason,
            state.attempt_number,
            max_attempts - 1,
            state.next_action.sleep if state.next_action else 0.0,
        )

    return Retrying(
        stop=stop_after_attempt(max_attempts),
        wait=wait_retry_after(),
        retry=retry_if_exception(is_transient),
        before_sleep=before_sleep,
        reraise=True,
    )


def is_connection_error(exc: BaseException) -> bool:
    """A broken or refused connection, a timeout, or a response cut off mid-body (not TLS trust)."""
    if isinstance(exc, requests.exceptions.SSLError):
        return False  # a certificate problem does not heal by retrying
    return isinstance(
        exc,
        requests.exceptions.ConnectionError
        | requests.exceptions.ChunkedEncodingError
        | requests.exceptions.Timeout,
    )


def never_sent(exc: BaseException) -> bool:
    """True when the request certainly did not reach the server (safe to re-send any method)."""
    return isinstance(exc, requests.exceptions.ConnectTimeout) or (
        isinstance(exc, requests.exceptions.ConnectionError)
        and "NewConnectionError" in repr(exc.args[0] if exc.args else exc)
    )


class _RetryableResponse(Exception):
    """A transient status; carries the response so the last one can be handed back."""

    def __init__(self, response: requests.Response) -> None:
        super().__init__(response.status_code)
        self.response = response
        self.retry_after = parse_retry_after(response.headers.get("Retry-After"))


class RetryingSession(requests.Session):
    """A ``requests.Session`` that counts every request and retries transient failures.

    Retrying at the transport keeps each retry to one HTTP request (never a whole Bulk job) and
    gives direct access to ``Retry-After``. A request that is not safe to replay (see
    ``replay_safe``) is re-sent only when the server said it did not process it (429, 503) or
    the connection was never made. When retries run out, the last response is returned, so the
    caller's usual error handling (simple-salesforce's typed exceptions) applies.

    A CA bundle set as ``session.verify`` wins over ``REQUESTS_CA_BUNDLE`` (requests lets the
    environment override a session's ``verify`` otherwise).

    :param log: where retries are logged
    :param endpoint: ``(method, url) -> key`` for :attr:`requests_used`, e.g. ``"GET /query"``
    :param replay_safe: ``(method, url) -> bool``: may an ambiguous failure be re-sent
    :param timeout: default ``(connect, read)`` timeout in seconds
    """

    def __init__(
        self,
        log: logging.Logger,
        endpoint: Callable[[str, str], str],
        replay_safe: Callable[[str, str], bool],
        timeout: tuple[float, float] = (15.0, 300.0),
    ) -> None:
        super().__init__()
        self.log = log
        self.endpoint = endpoint
        self.replay_safe = replay_safe
        self.default_timeout = timeout
        self.requests_used = RequestCounter()
        self.retries = RequestCounter()
        self.max_attempts = MAX_ATTEMPTS

    def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any) -> Any:
        settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
        if isinstance(self.verify, str) and verify in (None, True):
            settings["verify"] = self.verify
        return settings

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.default_timeout)
        return super().request(method, url, *args, **kwargs)

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        method, url = request.method or "GET", request.url or ""
        key = self.endpoint(method, url)
        safe = self.replay_safe(method, url)

        def transient(exc: BaseException) -> bool:
            if isinstance(exc, _RetryableResponse):
                return safe or exc.response.status_code in NOT_PROCESSED_STATUSES
            return is_connection_error(exc) and (safe or never_sent(exc))

        def describe(exc: BaseException) -> str:
            if isinstance(exc, _RetryableResponse):
                return str(exc.response.status_code)
            return f"connection: {type(exc).__name__}"

        try:
            for attempt in retrying(key, self.log, transient, self.retries, describe, self.max_attempts):
                with attempt:
                    self.requests_used.add(key)
                    response = super().send(request, **kwargs)
                    if response.status_code in TRANSIENT_STATUSES:
                        raise _RetryableResponse(response)
                    return response
        except _RetryableResponse as exc:
            return exc.response
        raise AssertionError("unreachable: tenacity re-raises the last error")
