"""Timestamps the way Mailchimp writes them, and a clock tests can freeze.

Mailchimp returns second-resolution UTC timestamps as ``2015-10-21T15:41:36+00:00``. The store
keeps exactly that text, so string comparison in SQL equals time comparison and the
``(list_id, last_changed)`` index serves window filters directly.
"""

from __future__ import annotations

import re
import threading
from datetime import UTC, date, datetime

__all__ = ["UTC", "Clock", "fmt", "hour_floor", "normalize", "parse"]

_PLUS_LOST = re.compile(r"(T\d\d:\d\d:\d\d(?:\.\d+)?) (\d\d:?\d\d)$")


def fmt(moment: datetime) -> str:
    """Format an aware datetime as Mailchimp does (UTC, seconds, ``+00:00``)."""
    return moment.astimezone(UTC).replace(microsecond=0).isoformat()


def parse(text: str) -> datetime:
    """Parse an ISO 8601 timestamp or date; naive values are taken as UTC.

    A ``+`` that a hand-written URL did not encode arrives as a space: put it back rather
    than reject a timestamp a person obviously meant.

    :raises ValueError: when the text is not ISO 8601
    """
    text = _PLUS_LOST.sub(r"\1+\2", text.strip())
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    if len(text) == 10:
        moment = datetime.combine(date.fromisoformat(text), datetime.min.time())
    else:
        moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def normalize(text: str) -> str:
    """Parse and re-format, for comparisons against stored timestamps."""
    return fmt(parse(text))


def hour_floor(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


class Clock:
    """Wall-clock UTC time, or a frozen instant set through the private API.

    Tests of hourly windows need writes to land at a known ``last_changed``.
    """

    def __init__(self) -> None:
        self._frozen: datetime | None = None
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            if self._frozen is not None:
                return self._frozen
            return datetime.now(UTC).replace(microsecond=0)

    def now_text(self) -> str:
        return fmt(self.now())

    def freeze(self, moment: datetime | None) -> None:
        with self._lock:
            self._frozen = moment.astimezone(UTC).replace(microsecond=0) if moment else None

    @property
    def frozen(self) -> datetime | None:
        return self._frozen
