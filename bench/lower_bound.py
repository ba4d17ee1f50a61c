"""The fewest HTTP requests each scenario can be done in, from the APIs' page and batch sizes.

Every request counts, logins included, whatever the API (docs/benchmarks.md gives the same
formulas in prose). The bound is for the scenario's data, not for any one implementation: reads
of the same kind across audiences are assumed merged where one request could serve them all.

- ``pages(n, size) = max(1, ceil(n / size))``: a read costs one request even when it finds nothing.
- Mailchimp: collections in pages of 1000; batch subscribe 500 members per request.
- Salesforce: one OAuth login per run; a SOQL read of ``r`` rows costs ``min(pages(r, 2000), 3)``
  (REST pages, or one Bulk 2.0 query job: create, one status poll, one result page); a lookup of
  ``k`` keys costs 1 while one ``IN (...)`` list fits a request URI (:data:`IN_LIST` keys), else
  ``min(ceil(k / IN_LIST), 3)``; a write of ``n`` rows of one object and operation costs
  ``min(ceil(n / 200), 5 * ceil(n * row_bytes / 100 MB) [+1 when a row failed])`` — sObject
  Collections of 200, or Bulk 2.0 ingest jobs of at most 100 MB of CSV, each needing create,
  upload, close, one status poll and successfulResults (+ failedResults).
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

MC_PAGE = 1000
MC_BATCH = 500
SF_PAGE = 2000
SF_COMPOSITE = 200
IN_LIST = 300  # emails of ~40 characters per IN (...) list in a 16 KB request URI
BULK_UPLOAD_BYTES = 100 * 1024 * 1024
BULK_INGEST_REQUESTS = 5
BULK_QUERY_REQUESTS = 3
DEFAULT_ROW_BYTES = 300


def pages(n: int, size: int) -> int:
    return max(1, math.ceil(n / size))


def sf_read(rows: int) -> int:
    return min(pages(rows, SF_PAGE), BULK_QUERY_REQUESTS)


def sf_lookup(keys: int) -> int:
    if keys <= 0:
        return 0
    return 1 if keys <= IN_LIST else min(math.ceil(keys / IN_LIST), BULK_QUERY_REQUESTS)


def sf_write(rows: int, row_bytes: float = DEFAULT_ROW_BYTES, failed: bool = False) -> int:
    if rows <= 0:
        return 0
    jobs = math.ceil(rows * row_bytes / BULK_UPLOAD_BYTES)
    return min(math.ceil(rows / SF_COMPOSITE), BULK_INGEST_REQUESTS * jobs + int(failed))


def writes(by_object: dict[str, dict[str, int]], row_bytes: dict[str, float]) -> dict[str, int]:
    """Salesforce write requests for the rows a run wrote, merged per object and operation.

    :param by_object: ``{"Lead (create)": {"created", "updated", "failed"}, ...}`` summed over audiences
    :param row_bytes: measured CSV bytes per row by object (default :data:`DEFAULT_ROW_BYTES`)
    """
    merged: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for name, counts in by_object.items():
        rows = int(counts.get("created", 0)) + int(counts.get("updated", 0)) + int(counts.get("failed", 0))
        merged[name][0] += rows
        merged[name][1] += int(counts.get("failed", 0))
    return {name: sf_write(rows, row_bytes.get(name.split(" ")[0], DEFAULT_ROW_BYTES), failed > 0)
            for name, (rows, failed) in merged.items() if rows}


def audience_sync(audiences: dict[str, dict[str, Any]], changed: dict[str, int], *, full: bool,
                  by_object: dict[str, dict[str, int]], row_bytes: dict[str, float]) -> dict[str, Any]:
    """Scenarios 1-3: the hourly sync of ``changed[list_id]`` members (all of them when ``full``).

    Mailchimp: the account's audiences with their stats (1 for all: ``MC_Audience__c``'s counts
    change also when no member does, e.g. one deleted for good); per audience the members (pages
    of 1000), one page of segments, every static segment's members on a full read (saved segments
    are rules; their membership is not copied), and when members changed its interest categories
    (1) and their interests (1 per category). Salesforce: the login, one read of every
    audience's sync state, and when members changed a lookup per object (subscribers, Contacts,
    Leads) by the changed emails, plus the existing segments and their members (full read) and
    interests; then the writes.
    """
    mc = 1  # the account's audiences and their stats
    sf = total = 0
    for list_id, info in audiences.items():
        n = changed.get(list_id, 0)
        total += n
        mc += pages(n, MC_PAGE) + 1
        if full:
            mc += sum(pages(m, MC_PAGE) for m in info["segment_members"])
        if n:
            mc += 1 + info["interest_categories"]
    sf += 1 + 1  # login, sync state of every audience
    if total:
        sf += 3 * sf_lookup(total) + 1  # subscribers, Contacts, Leads by email; interests
        if full:
            sf += 1 + sf_read(sum(sum(i["segment_members"]) for i in audiences.values()))
    written = writes(by_object, row_bytes)
    sf += sum(written.values())
    return {"mailchimp": mc, "salesforce": sf, "total": mc + sf, "salesforce_writes": written}


def activity(campaigns: dict[str, dict[str, Any]], audiences: int, *, events_written: int, failed: bool,
             row_bytes: dict[str, float]) -> dict[str, Any]:
    """Scenario 4: per audience its campaigns (1 page); per campaign the email activity of its
    recipients with events since the window's start (pages of 1000) and its unsubscribes (1).
    Salesforce: login, existing campaigns (1), activity already held for the window (1), the
    retention read per audience (1), campaign and activity writes."""
    mc = audiences + sum(pages(c["active"], MC_PAGE) + 1 for c in campaigns.values())
    written = {"MC_Campaign__c": sf_write(len(campaigns)),
               "MC_Activity__c": sf_write(events_written, row_bytes.get("MC_Activity__c", DEFAULT_ROW_BYTES), failed)}
    sf = 1 + 1 + 1 + audiences + sum(written.values())
    return {"mailchimp": mc, "salesforce": sf, "total": mc + sf, "salesforce_writes": written}


def push(matched: int) -> dict[str, Any]:
    """Scenario 5: read the matching Contacts (login + a Bulk 2.0 query), batch-subscribe them 500 a request."""
    mc = math.ceil(matched / MC_BATCH)
    sf = 1 + sf_read(matched)
    return {"mailchimp": mc, "salesforce": sf, "total": mc + sf}
