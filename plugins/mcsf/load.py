"""Writes to Salesforce: upserts on external ids of only what changed, with every refusal kept.

:func:`write` is the one way rows reach Salesforce (the audience sync and the activity sync both
use it): it skips empty frames, honours dry runs, strips mcsf's private ``_`` columns, asks the
hook (which picks composite collections or Bulk 2.0 and retries transient row errors) and turns
Salesforce's per-row refusals into rejects with Salesforce's own message.
"""

from __future__ import annotations

import logging
import re
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from mcsf.hooks.salesforce import McsfSalesforceHook
    from mcsf.staging import Stage

log = logging.getLogger("mcsf")
REJECT_COLUMNS = ["object", "key", "step", "reason"]


@dataclass
class Outcome:
    """Counts of one write plus the refused rows (as rejects) and, of :func:`write`, the written
    rows' ``sf__Id`` and ``sf__Created`` (bool; by the frame's index; streams keep only counts)."""

    created: int = 0
    updated: int = 0
    failed: int = 0
    rejects: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=REJECT_COLUMNS))
    succeeded: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["sf__Id", "sf__Created"]))

    def add(self, other: Outcome) -> Outcome:
        return Outcome(
            self.created + other.created,
            self.updated + other.updated,
            self.failed + other.failed,
            pd.concat([self.rejects, other.rejects], ignore_index=True) if len(other.rejects) else self.rejects,
        )


def rejects_frame(object_name: str, keys: pd.Series, step: str, reasons: pd.Series | str) -> pd.DataFrame:
    """Rejects in their staged form; ``keys`` must not be emails (use the subscriber key or hash)."""
    return pd.DataFrame({
        "object": object_name,
        "key": keys.astype(str).to_numpy(),
        "step": step,
        "reason": reasons.to_numpy() if isinstance(reasons, pd.Series) else reasons,
    })


def write(
    sf: McsfSalesforceHook | None,
    object_name: str,
    frame: pd.DataFrame,
    *,
    external_id: str | None,
    stage: Stage | None = None,
    dry_run: bool = False,
) -> Outcome:
    """Upsert (``external_id`` given) or update by ``Id`` (``external_id=None``) ``frame``.

    :param stage: where a dry run stages the rows it would have written
    """
    key = external_id or "Id"  # how rejects name a refused row
    body = _body(frame)
    if body.empty:
        return Outcome()
    if dry_run or sf is None:
        if stage is not None:
            stage.write(f"would_write_{object_name}", body)
        return _would_write(frame)
    # counts and refusals are all a load keeps: no echo of the sent rows (a copy of a Bulk job's frame)
    result = sf.upsert(object_name, external_id, body, echo=False) if external_id \
        else sf.update(object_name, body, echo=False)
    succeeded = result.successes.assign(sf__Created=result.successes["sf__Created"].astype(bool))
    created = int(succeeded["sf__Created"].sum())
    outcome = Outcome(
        created=created,
        updated=len(succeeded) - created,
        failed=len(result.failures),
        succeeded=succeeded,
    )
    if len(result.failures):
        keys = result.failures[key] if key in result.failures else result.failures.get("sf__Id", pd.Series(dtype=str))
        reasons = "Salesforce refused: " + result.failures["sf__Error"].astype(str)
        outcome.rejects = rejects_frame(object_name, keys, "load", reasons)
        log.warning("%s: Salesforce refused %s of %s rows", object_name, len(result.failures), len(body))
    return outcome


def _body(frame: pd.DataFrame) -> pd.DataFrame:
    """What Salesforce is sent: the frame without mcsf's private ``_`` columns."""
    return frame[[c for c in frame.columns if not c.startswith("_")]]


def _would_write(frame: pd.DataFrame) -> Outcome:
    """A dry run's counts: rows marked ``_is_new`` would be created, the others updated."""
    is_new = frame["_is_new"] if "_is_new" in frame else pd.Series(False, index=frame.index)
    return Outcome(created=int(is_new.sum()), updated=int((~is_new).sum()))


def write_stream(
    sf: McsfSalesforceHook | None,
    object_name: str,
    frames: Iterable[pd.DataFrame],
    *,
    external_id: str,
    columns: list[str],
    stage: Stage | None = None,
    dry_run: bool = False,
    in_flight: int = 2,
) -> Outcome:
    """:func:`write` of each frame of a stream too big to hold (millions of activity records).

    The stream is cut again into frames of one Bulk 2.0 upload each (:func:`per_bulk_job`), so a
    million rows cost as few jobs as their bytes allow. Up to ``in_flight`` writes run at once: a
    frame is turned into CSV and uploaded while Salesforce processes the one before (Bulk 2.0 jobs
    of one object may run side by side). Memory holds ``in_flight`` such frames and the one being
    gathered. A dry run stages every would-be row in one file (``columns``).
    """
    if dry_run or sf is None:
        total = Outcome()

        def bodies() -> Iterable[pd.DataFrame]:
            nonlocal total
            for frame in frames:
                total = total.add(_would_write(frame))
                yield _body(frame)

        if stage is not None:
            stage.write_chunks(f"would_write_{object_name}", bodies(), [c for c in columns if not c.startswith("_")])
        else:
            for _ in bodies():
                pass
        return total
    total = Outcome()
    pending: deque = deque()
    with ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="salesforce-write") as pool:
        for frame in per_bulk_job(sf, frames):
            if len(pending) >= in_flight:
                total = total.add(pending.popleft().result())
            pending.append(pool.submit(write, sf, object_name, frame, external_id=external_id))
        while pending:
            total = total.add(pending.popleft().result())
    return total


def per_bulk_job(sf: McsfSalesforceHook, frames: Iterable[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """``frames`` gathered and cut into frames of about one Bulk 2.0 upload each, in order; the
    first non-empty frame's CSV bytes per row say how many rows that is
    (:meth:`~mcsf.hooks.salesforce.McsfSalesforceHook.bulk_rows_per_job`)."""
    size = 0
    held: list[pd.DataFrame] = []
    count = 0
    for frame in frames:
        if frame.empty:
            continue
        size = size or sf.bulk_rows_per_job(_body(frame))
        held.append(frame)
        count += len(frame)
        while count >= size:
            joined = pd.concat(held, ignore_index=True) if len(held) > 1 else held[0]
            rest = joined.iloc[size:].copy()  # a copy, so the frame sent can be freed once written
            yield joined.iloc[:size]
            held, count = ([rest] if len(rest) else []), len(rest)
    if held:
        yield pd.concat(held, ignore_index=True)


def delete(sf: McsfSalesforceHook | None, object_name: str, ids: list[str], *, dry_run: bool = False) -> Outcome:
    """Delete rows by Id (retention, members who left a segment)."""
    if not ids:
        return Outcome()
    if dry_run or sf is None:
        return Outcome()
    result = sf.delete(object_name, ids)
    outcome = Outcome(failed=len(result.failures))
    if len(result.failures):
        outcome.rejects = rejects_frame(object_name, result.failures["sf__Id"], "delete",
                                        "Salesforce refused: " + result.failures["sf__Error"].astype(str))
    return outcome


_VALUES = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+|\b(?=\w*\d)[\w:]{6,}\b|'[^']*'|\"[^\"]*\"")


def reason_group(reason: str) -> str:
    """A reason with the row's own values masked, for counting in summaries.

    ``Salesforce refused: INVALID_FIELD:Foreign key external ID: 4dca…:9f0… not found for field
    MC_Subscriber_Key__c in entity MC_Subscriber__c:--`` becomes ``Salesforce refused:
    INVALID_FIELD: Foreign key external ID: … not found for field MC_Subscriber_Key__c in entity
    MC_Subscriber__c`` — the meaning stays, ids, emails and quoted values go.
    """
    text = str(reason).strip().removesuffix(":--").replace(":--", "")
    _, sep, rest = text.partition("Salesforce refused: ")
    if sep:
        code, _, message = rest.partition(":")
        text = f"Salesforce refused: {code}: {message.strip()}" if message else f"Salesforce refused: {code}"
    return _VALUES.sub("…", text)[:200]


def summarize(outcomes: dict[str, Outcome], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    counts = {
        "created": sum(o.created for o in outcomes.values()),
        "updated": sum(o.updated for o in outcomes.values()),
        "load_failed": sum(o.failed for o in outcomes.values()),
        "by_object": {name: {"created": o.created, "updated": o.updated, "failed": o.failed}
                      for name, o in outcomes.items() if o.created or o.updated or o.failed},
    }
    counts.update(extra or {})
    return counts
