"""Query-string parsing and partial responses (``fields`` / ``exclude_fields``).

Each endpoint declares the parameters Mailchimp documents for it; anything else is a 400, so
a typo in a client (``since_last_change``) fails loudly here instead of silently returning the
whole audience. Booleans are read case-insensitively because the official client sends
Python's ``True``/``False``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sandbox.mailchimp import timeutil
from sandbox.mailchimp.errors import ApiError, bad_param

if TYPE_CHECKING:
    from collections.abc import Iterable

    from starlette.datastructures import QueryParams

PAGING = ("fields", "exclude_fields", "count", "offset")
INT64_MAX = 2**63 - 1  # what the store (SQLite) holds: a larger offset answers 400, not 500
PROJECTION = ("fields", "exclude_fields")
MAX_COUNT = 1000
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no", ""}


class Query:
    """The query string of one request, checked against the endpoint's parameters.

    :param raw: Starlette's query params
    :param allowed: the names this endpoint accepts
    """

    def __init__(self, raw: QueryParams, allowed: Iterable[str]) -> None:
        self.raw = raw
        allowed_set = set(allowed)
        unknown = sorted(k for k in raw if k not in allowed_set)
        if unknown:
            raise ApiError(400, f"Unknown query parameter(s): {', '.join(unknown)}. "
                           "See the API reference for the parameters this endpoint accepts.",
                           title="Invalid Resource")

    def str(self, name: str, default: str | None = None) -> str | None:
        value = self.raw.get(name)
        return default if value is None or value == "" else value

    def int(self, name: str, default: int, maximum: int | None = None) -> int:
        text = self.raw.get(name)
        if text is None or text == "":
            return default
        try:
            value = int(text)
        except ValueError:
            raise bad_param(name, "an integer") from None
        if value < 0 or value > (INT64_MAX if maximum is None else maximum):
            raise bad_param(name, f"an integer between 0 and {INT64_MAX if maximum is None else maximum}")
        return value

    def bool(self, name: str, default: bool = False) -> bool:
        text = self.raw.get(name)
        if text is None:
            return default
        low = text.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise bad_param(name, "true or false")

    def enum(self, name: str, choices: Iterable[str], default: str | None = None) -> str | None:
        value = self.str(name)
        if value is None:
            return default
        options = list(choices)
        matched = {c.lower(): c for c in options}.get(value.lower())
        if matched is None:
            raise bad_param(name, "one of " + ", ".join(options))
        return matched

    def time(self, name: str) -> str | None:
        """An ISO 8601 filter value, normalized to the stored UTC form."""
        value = self.str(name)
        if value is None:
            return None
        try:
            return timeutil.normalize(value)
        except ValueError:
            raise bad_param(name, "an ISO 8601 time such as 2015-10-21T15:41:36+00:00") from None

    def csv(self, name: str) -> list[str]:
        value = self.str(name)
        return [part.strip() for part in value.split(",") if part.strip()] if value else []

    def page(self) -> tuple[int, int]:
        """``(count, offset)`` with Mailchimp's defaults (10, 0) and maximum (1000)."""
        return self.int("count", 10, MAX_COUNT), self.int("offset", 0)


def _tree(paths: Iterable[str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path in paths:
        node = tree
        for part in path.split("."):
            node = node.setdefault(part, {})
    return tree


def _include(value: Any, tree: dict[str, Any]) -> Any:
    if not tree:
        return value
    if isinstance(value, list):
        return [_include(item, tree) for item in value]
    if isinstance(value, dict):
        return {k: _include(value[k], sub) for k, sub in tree.items() if k in value}
    return value


def _exclude(value: Any, tree: dict[str, Any]) -> Any:
    if isinstance(value, list):
        return [_exclude(item, tree) for item in value]
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            sub = tree.get(key)
            if sub is None:
                out[key] = item
            elif sub:
                out[key] = _exclude(item, sub)
        return out
    return value


def project(doc: Any, query: Query) -> Any:
    """Apply ``fields`` then ``exclude_fields`` (comma-separated dot paths) to a response."""
    fields, excluded = query.csv("fields"), query.csv("exclude_fields")
    if fields:
        doc = _include(doc, _tree(fields))
    if excluded:
        doc = _exclude(doc, _tree(excluded))
    return doc
