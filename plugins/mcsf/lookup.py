"""Reading what Salesforce already holds for a set of keys, in as few requests as the API allows.

Up to ``REST_LIMIT`` values are looked up with REST queries of ``IN (...)`` lists (chunks small
enough for the 16 KB request-URI limit, a handful of requests); beyond that one Bulk 2.0 query
job reads every row with a value in the match field and the frame is filtered here (a few
requests whatever the size). Values are escaped the way SOQL wants; nothing from the data is
ever pasted into a query unescaped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from mcsf.mapping import normalize_email

if TYPE_CHECKING:
    from collections.abc import Iterable

    from mcsf.hooks.salesforce import McsfSalesforceHook

REST_LIMIT = 1500
IN_CHUNK = 250
_SOQL_ESCAPES = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f", '"': '\\"'}


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
) -> pd.DataFrame:
    """Rows of ``object_name`` whose ``match_field`` equals one of ``values`` (case-insensitively,
    as SOQL compares text).

    :param fields: fields to read (``match_field`` and ``Id`` are always read)
    :param where: an extra SOQL condition, ANDed
    """
    wanted = sorted({v for v in values if v})
    columns = list(dict.fromkeys(["Id", match_field, *fields]))
    if not wanted:
        return pd.DataFrame(columns=columns)
    select = f"SELECT {', '.join(columns)} FROM {object_name}"
    extra = f" AND ({where})" if where else ""
    if len(wanted) <= REST_LIMIT:
        frames = []
        for start in range(0, len(wanted), IN_CHUNK):
            chunk = ", ".join(soql_quote(v) for v in wanted[start:start + IN_CHUNK])
            frames.append(sf.query_frame(f"{select} WHERE {match_field} IN ({chunk}){extra}"))
        found = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
    else:
        found = sf.bulk_query_frame(f"{select} WHERE {match_field} != null{extra}")
        keep = {normalize_email(v) for v in wanted}
        found = found[found[match_field].map(normalize_email).isin(keep)]
    for column in columns:
        if column not in found.columns:
            found[column] = None
    return found[columns].reset_index(drop=True)


def fetch_all(
    sf: McsfSalesforceHook, object_name: str, fields: Iterable[str], where: str, *, expected_rows: int
) -> pd.DataFrame:
    """Every row matching ``where``: REST pages of 2000 for up to ``REST_LIMIT`` expected rows,
    one Bulk 2.0 query job beyond.

    :param expected_rows: the caller's estimate (e.g. the audience's member count) — it only
        picks the cheaper API, the result is complete either way
    """
    columns = list(dict.fromkeys(["Id", *fields]))
    soql = f"SELECT {', '.join(columns)} FROM {object_name} WHERE {where}"
    found = sf.query_frame(soql) if expected_rows <= REST_LIMIT else sf.bulk_query_frame(soql)
    for column in columns:
        if column not in found.columns:
            found[column] = None
    return found[columns].reset_index(drop=True)
