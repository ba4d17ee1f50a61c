"""Reading what Salesforce already holds for a set of keys, in as few requests as the API allows.

Up to ``REST_LIMIT`` values are looked up with REST queries of ``IN (...)`` lists (chunks small
enough for the 16 KB request-URI limit, a handful of requests); up to ``SELECTIVE_LIMIT`` with
Bulk 2.0 query jobs of ``IN`` lists as long as SOQL allows (100,000 characters: about 3,000
emails a job, which reads only the matching rows); beyond that one Bulk 2.0 query job reads every
row with a value in the match field and the frame is filtered here (a few requests whatever the
size). Values are escaped the way SOQL wants; nothing from the data is ever pasted into a query
unescaped. Independent reads run side by side (at most :data:`CONCURRENT_READS` at once): a Bulk
job's time is mostly waiting for it, and the waits overlap.
"""

from __future__ import annotations

import hashlib
import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

import pandas as pd

from mcsf.mapping import isin, normalize_email

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from mcsf.hooks.salesforce import McsfSalesforceHook
    from mcsf.staging import Stage

log = logging.getLogger("mcsf")
REST_LIMIT = 1500
IN_CHUNK = 250
#: Past this many values one read of every row costs less than the IN-list jobs (10 of them).
SELECTIVE_LIMIT = 30_000
SOQL_MAX_CHARS = 100_000  # Salesforce's limit on the length of a SOQL statement
CONCURRENT_READS = 3
SHARED_READ = "every_row_"  # names of whole-object reads in a run's shared stage
_SOQL_ESCAPES = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f", '"': '\\"'}


def soql_datetime(moment: datetime) -> str:
    """A SOQL datetime literal in UTC, whole seconds (floored, so consecutive windows still tile)."""
    if moment.tzinfo is None:
        raise ValueError(f"{moment!r} has no time zone")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def soql_quote(value: str) -> str:
    """A SOQL string literal for ``value`` (backslash escapes as Salesforce documents them)."""
    return "'" + "".join(_SOQL_ESCAPES.get(ch, ch) for ch in value) + "'"


def fetch_by_values(
    sf: McsfSalesforceHook,
    object_name: str,
    fields: Iterable[str],
    match_field: str,
    values: Iterable[str],
    *,
    where: str | None = None,
    shared: Stage | None = None,
) -> pd.DataFrame:
    """Rows of ``object_name`` whose ``match_field`` equals one of ``values`` (case-insensitively,
    as SOQL compares text).

    :param fields: fields to read (``match_field`` and ``Id`` are always read)
    :param where: an extra SOQL condition, ANDed
    :param shared: the run's shared stage: a read of every row (past :data:`SELECTIVE_LIMIT`
        values) is staged there, and the run's other audiences asking the same read it from there
        instead of Salesforce (their extracts run one after another, before any load of the run;
        the first load drops it: :func:`forget_shared_reads`)
    """
    wanted = sorted({v for v in values if v})
    columns = list(dict.fromkeys(["Id", match_field, *fields]))
    if not wanted:
        return pd.DataFrame(columns=columns)
    select = f"SELECT {', '.join(columns)} FROM {object_name}"
    extra = f" AND ({where})" if where else ""
    if len(wanted) <= SELECTIVE_LIMIT:
        rest = len(wanted) <= REST_LIMIT
        room = SOQL_MAX_CHARS - len(select) - len(match_field) - len(extra) - 20
        queries = [f"{select} WHERE {match_field} IN ({chunk}){extra}"
                   for chunk in in_lists(wanted, max_items=IN_CHUNK if rest else len(wanted), max_chars=room)]
        # a Bulk job finds about a row per value (emails, keys): its first status poll is timed by that
        run = sf.query_frame if rest else partial(sf.bulk_query_frame, expected_rows=-(-len(wanted) // len(queries)))
        found = pd.concat(side_by_side(sf, [(run, (q,)) for q in queries]), ignore_index=True)
    else:
        found = _every_row(sf, object_name, columns, f"{match_field} != null{extra}", shared)
        found = found[isin(found[match_field].map(normalize_email), {normalize_email(v) for v in wanted})]
    for column in columns:
        if column not in found.columns:
            found[column] = None
    return found[columns].reset_index(drop=True)


def forget_shared_reads(shared: Stage) -> None:
    """Drop the run's shared whole-object reads (:func:`fetch_by_values` with ``shared``) once its
    loads begin: an extract cleared and run again after that must see what the loads wrote."""
    gone = shared.remove(SHARED_READ)
    if gone:
        log.info("%s whole-object reads shared by this run's extracts dropped: loads are starting", gone)


def _every_row(sf: McsfSalesforceHook, object_name: str, columns: list[str], where: str,
               shared: Stage | None) -> pd.DataFrame:
    """Every row matching ``where`` (counted first, see :func:`fetch_all`), or as another audience
    of the run staged them."""
    if shared is None:
        return fetch_all(sf, object_name, columns, where, expected_rows=None)
    name = SHARED_READ + hashlib.sha256(f"{object_name}|{','.join(columns)}|{where}".encode()).hexdigest()[:16]
    if shared.exists(name):
        found = shared.read(name)
        log.info("%s: %s rows as an earlier audience of this run read them (no request)", object_name, len(found))
        return found
    found = fetch_all(sf, object_name, columns, where, expected_rows=None)
    shared.write(name, found)
    return found


def side_by_side(sf: McsfSalesforceHook, calls: list[tuple[Callable[..., Any], tuple[Any, ...]]]) -> list[Any]:
    """``fn(*args)`` of every call, in order, at most :data:`CONCURRENT_READS` running at once.

    The hook logs in first, so the threads share one session instead of each logging in.
    """
    if len(calls) <= 1:
        return [fn(*args) for fn, args in calls]
    sf.conn  # noqa: B018 - log in once, before the threads share the session
    with ThreadPoolExecutor(max_workers=CONCURRENT_READS, thread_name_prefix="salesforce-read") as pool:
        return list(pool.map(lambda call: call[0](*call[1]), calls))


def in_lists(values: list[str], *, max_items: int, max_chars: int) -> Iterator[str]:
    """``values`` as the insides of SOQL ``IN (...)`` lists: quoted, comma-joined, each list at most
    ``max_items`` values and ``max_chars`` characters long."""
    chunk: list[str] = []
    size = 0
    for value in values:
        quoted = soql_quote(value)
        if chunk and (len(chunk) == max_items or size + len(quoted) + 2 > max_chars):
            yield ", ".join(chunk)
            chunk, size = [], 0
        chunk.append(quoted)
        size += len(quoted) + 2
    if chunk:
        yield ", ".join(chunk)


def query(sf: McsfSalesforceHook, soql: str, rows: int, *, bulk_above: int = REST_LIMIT) -> pd.DataFrame:
    """``soql``'s records by the cheaper API for ``rows`` expected: REST pages, or one Bulk 2.0 query job."""
    return sf.bulk_query_frame(soql, expected_rows=rows) if rows > bulk_above else sf.query_frame(soql)


def count(sf: McsfSalesforceHook, object_name: str, where: str) -> int:
    """``SELECT COUNT()``: how many rows match ``where`` (one request)."""
    return int(sf.conn.query(f"SELECT COUNT() FROM {object_name} WHERE {where}")["totalSize"])


def fetch_all(
    sf: McsfSalesforceHook, object_name: str, fields: Iterable[str], where: str, *, expected_rows: int | None
) -> pd.DataFrame:
    """Every row matching ``where``: REST pages of 2000 for up to ``REST_LIMIT`` expected rows,
    one Bulk 2.0 query job beyond.

    :param expected_rows: the caller's estimate (e.g. the audience's member count) — it only
        picks the cheaper API, the result is complete either way. None: unknown, counted first
        (one request, and the only one when nothing matches)
    """
    columns = list(dict.fromkeys(["Id", *fields]))
    if expected_rows is None:
        expected_rows = count(sf, object_name, where)
        if not expected_rows:
            return pd.DataFrame(columns=columns)
    found = query(sf, f"SELECT {', '.join(columns)} FROM {object_name} WHERE {where}", expected_rows)
    for column in columns:
        if column not in found.columns:
            found[column] = None
    return found[columns].reset_index(drop=True)
