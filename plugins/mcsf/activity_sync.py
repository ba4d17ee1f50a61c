"""The nightly activity sync, one function per DAG task (extract, map, validate, load).

Preflight and report are the hourly sync's own (:mod:`mcsf.audience`). Every step walks the
staged events in chunks, so 5,000,000 events a day fit in flat memory.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mcsf import activity
from mcsf import load as writes
from mcsf.audience import _context, _requests, hooks, shared_job_rates
from mcsf.mapping import diff, isin
from mcsf.validate import Rule, validate_rows

if TYPE_CHECKING:
    from mcsf.config import AudienceMapping
    from mcsf.hooks.salesforce import McsfSalesforceHook
    from mcsf.staging import Stage, Window

log = logging.getLogger("mcsf")
DAG_ID = "mcsf_campaign_activity_sync"
MAPPED_COLUMNS = [activity.ACTIVITY_KEY, "Campaign__r.MC_Campaign_Id__c", "Subscriber__r.MC_Subscriber_Key__c",
                  "Audience__r.MC_Audience_Id__c", "Action__c", "Bounce_Type__c", "Occurred_At__c", "URL__c",
                  "Full_URL__c", "_reasons"]
RULES = [
    Rule(activity.ACTIVITY_KEY, "not_null", "event without a key"),
    Rule("Action__c", "in_set", "unknown activity action", {"send", "open", "click", "bounce", "unsubscribe"}),
    Rule("Bounce_Type__c", "in_set", "unknown bounce type", {"hard", "soft"}),
    Rule("Occurred_At__c", "not_null", "event without a timestamp"),
]


def extract(audience: dict[str, Any]) -> dict[str, Any]:
    mapping, window, stage = _context(audience)
    mc, _ = hooks()
    counts = activity.extract_activity(mapping, window, stage, mc=mc, campaigns_filter=audience.get("campaigns"))
    log.info("SUMMARY extract %s %s: %s campaigns, %s events in the window (%s more of members outside the "
             "synced segment, skipped), requests %s", mapping.label, window, counts["campaigns"], counts["events"],
             counts["outside_segment"], _requests(mc))
    return {**audience, "extract": {**counts, "members": counts["events"]}, "requests": _requests(mc)}


def map_(audience: dict[str, Any]) -> dict[str, Any]:
    mapping, window, stage = _context(audience)
    seen: set[bytes] = set()
    totals = Counter()

    def mapped():
        for batch in stage.iter_batches("events"):
            rows = activity.map_events(batch, mapping.audience_id)  # unique within the batch
            digests = [bytes.fromhex(key) for key in rows[activity.ACTIVITY_KEY].tolist()]
            # membership one key at a time: Series.isin(set) would copy the growing set every batch
            fresh = np.fromiter((d not in seen for d in digests), dtype=bool, count=len(digests))
            seen.update(d for d, new in zip(digests, fresh, strict=True) if new)
            totals["events"] += len(batch)
            totals["duplicates"] += len(batch) - int(fresh.sum())
            yield rows[fresh]

    totals["mapped"] = stage.write_chunks("mapped", mapped(), MAPPED_COLUMNS)
    log.info("SUMMARY map %s %s: %s events -> %s activity records (%s duplicate events collapsed)",
             mapping.label, window, totals["events"], totals["mapped"], totals["duplicates"])
    return {**audience, "mapped": totals["mapped"], "duplicates": totals["duplicates"]}


def validate(audience: dict[str, Any]) -> dict[str, Any]:
    mapping, window, stage = _context(audience)
    failures: Counter[str] = Counter()
    rejected_frames = []
    counts = Counter()

    def valid():
        for batch in stage.iter_batches("mapped"):
            verdict = validate_rows(batch, RULES)
            failures.update(verdict.failures)
            counts["passed"] += len(verdict.passed)
            counts["rejected"] += len(verdict.rejected)
            if len(verdict.rejected):
                rejected_frames.append(writes.rejects_frame(activity.ACTIVITY, verdict.rejected[activity.ACTIVITY_KEY],
                                                            "validate", verdict.rejected["_reason"]))
            yield verdict.passed

    stage.write_chunks("valid", valid(), MAPPED_COLUMNS)
    stage.write("rejects_validate", pd.concat(rejected_frames, ignore_index=True) if rejected_frames
                else pd.DataFrame(columns=writes.REJECT_COLUMNS))
    log.info("SUMMARY validate %s %s: %s passed, %s rejected (%s)", mapping.label, window, counts["passed"],
             counts["rejected"], ", ".join(f"{r} ×{n}" for r, n in failures.most_common(5)) or "none")
    return {**audience, "validate": {**counts, "reject_reasons": dict(failures)}}


def load(audience: dict[str, Any]) -> dict[str, Any]:
    mapping, window, stage = _context(audience)
    _, sf = hooks()
    with shared_job_rates(sf, stage):
        return _load(audience, mapping, window, stage, sf)


def _load(audience: dict[str, Any], mapping: AudienceMapping, window: Window, stage: Stage,
          sf: McsfSalesforceHook) -> dict[str, Any]:
    dry = audience["dry_run"]
    writer = None if dry else sf
    campaigns = stage.read("campaigns")
    existing_campaigns = activity.lookup.fetch_by_values(
        sf, activity.CAMPAIGN, list(activity.CAMPAIGN_TYPES_SF), "MC_Campaign_Id__c",
        campaigns["MC_Campaign_Id__c"].tolist() if len(campaigns) else [])
    outcome = writes.write(writer, activity.CAMPAIGN, diff(campaigns, existing_campaigns, "MC_Campaign_Id__c",
                                                           activity.CAMPAIGN_TYPES_SF),
                           external_id="MC_Campaign_Id__c", stage=stage, dry_run=dry)
    record_id = activity.audience_record_id(sf, mapping.audience_id, audience.get("sync_state"))
    known = activity.existing_keys(sf, window, record_id)
    unchanged = 0

    def new_records():
        nonlocal unchanged
        for batch in stage.iter_batches("valid"):
            new = batch[~isin(batch[activity.ACTIVITY_KEY], known)]
            unchanged += len(batch) - len(new)
            yield new.assign(_is_new=True)

    loaded = writes.write_stream(writer, activity.ACTIVITY, new_records(), external_id=activity.ACTIVITY_KEY,
                                 columns=MAPPED_COLUMNS, stage=stage, dry_run=dry)
    kept = activity.retention(writer, sf, mapping, window, record_id, dry_run=dry)
    rejects = pd.concat([outcome.rejects, loaded.rejects, kept.rejects], ignore_index=True)
    stage.write("rejects_load", rejects)
    reasons = Counter(writes.reason_group(r) for r in rejects["reason"]) if len(rejects) else Counter()
    counts = writes.summarize({"MC_Campaign__c": outcome, "MC_Activity__c": loaded},
                              {"unchanged": unchanged, "deleted": kept.updated, "reject_reasons": dict(reasons),
                               "dry_run": dry})
    log.info("SUMMARY load %s %s: campaigns %s created %s updated; activity %s created, %s already there, "
             "%s refused; retention deleted %s%s", mapping.label, window, outcome.created, outcome.updated,
             loaded.created, unchanged, loaded.failed, kept.updated, " (DRY RUN: nothing written)" if dry else "")
    return {**audience, "load": counts, "requests": _requests(None, sf, audience.get("requests"))}
