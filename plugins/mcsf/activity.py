"""The nightly campaign-activity sync: campaigns and their sends, opens, clicks, bounces and
unsubscribes of one day into Salesforce, plus retention.

Shares everything but the extract and the row shapes with the hourly sync: the same preflight,
staging, Great Expectations validation (:mod:`mcsf.validate`), writer (:func:`mcsf.load.write`)
and summary. Activity is immutable, so a re-run only writes events whose key Salesforce does not
hold yet; the key is sha256 of ``campaign|member|action|timestamp|url``, so duplicates collapse.

Which campaigns: standard email (``regular``) and SMS campaigns sent to an ``activity`` audience
within ``ACTIVITY_LOOKBACK_DAYS`` before the window's end (opens and clicks trail a send by
days; the Mailchimp app shows these two types only). Events are read with ``since`` = the
window's start and cut at its end here, so an event at 23:59:59 lands in its own day only.
"""

from __future__ import annotations

import hashlib
import logging
import os
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mcsf import load as writes
from mcsf import lookup
from mcsf.mapping import canonical, canonical_series

if TYPE_CHECKING:
    from collections.abc import Iterator

    from mcsf.config import AudienceMapping
    from mcsf.hooks.mailchimp import MailchimpHook
    from mcsf.hooks.salesforce import McsfSalesforceHook
    from mcsf.staging import Stage, Window

log = logging.getLogger("mcsf")
ACTIVITY = "MC_Activity__c"
ACTIVITY_KEY = "MC_Activity_Key__c"
CAMPAIGN = "MC_Campaign__c"
CAMPAIGN_TYPES = frozenset({"regular", "sms"})
ACTIVITY_LOOKBACK_DAYS = int(os.environ.get("MCSF_ACTIVITY_LOOKBACK_DAYS", "30"))
URL_LENGTH = 255
EVENT_COLUMNS = ["campaign_id", "email_hash", "action", "type", "timestamp", "url"]
CAMPAIGN_NUMBERS = {"Emails_Sent__c": "emails_sent", "Opens__c": "opens", "Unique_Opens__c": "unique_opens",
                    "Clicks__c": "clicks", "Unique_Clicks__c": "unique_clicks", "Bounces__c": "bounces",
                    "Unsubscribes__c": "unsubscribes"}
CAMPAIGN_TYPES_SF = {"Name": "string", "Type__c": "picklist", "Status__c": "string", "Subject__c": "string",
                     "Send_Time__c": "datetime", **dict.fromkeys(CAMPAIGN_NUMBERS, "double")}


def activity_key(campaign_id: str, email_hash: str, action: str, timestamp: str, url: str | None) -> str:
    """The deterministic external id of one event (same event, same key, whatever the run)."""
    return hashlib.sha256(f"{campaign_id}|{email_hash}|{action}|{timestamp}|{url or ''}".encode()).hexdigest()


def _in_window(timestamp: str | None, window: Window) -> bool:
    if not timestamp:
        return False
    moment = datetime.fromisoformat(str(timestamp).replace("Z", "+00:00"))
    return window.start <= moment < window.end


def campaign_row(campaign: dict[str, Any]) -> dict[str, Any]:
    """A Mailchimp campaign as an ``MC_Campaign__c`` row (pure)."""
    settings = campaign.get("settings") or {}
    summary = campaign.get("report_summary") or {}
    numbers = {**summary, "emails_sent": campaign.get("emails_sent"),
               "bounces": summary.get("bounces"), "unsubscribes": summary.get("unsubscribed")}
    return {
        "MC_Campaign_Id__c": campaign["id"],
        "Audience__r.MC_Audience_Id__c": (campaign.get("recipients") or {}).get("list_id"),
        "Name": str(settings.get("title") or settings.get("subject_line") or campaign["id"])[:80],
        "Type__c": campaign.get("type"),
        "Status__c": str(campaign.get("status") or "")[:20],
        "Subject__c": (str(settings.get("subject_line"))[:255] if settings.get("subject_line") else None),
        "Send_Time__c": canonical(campaign.get("send_time") or None, "datetime"),
        **{sf: (None if numbers.get(mc) is None else str(numbers[mc])) for sf, mc in CAMPAIGN_NUMBERS.items()},
    }


def events_of(mc: MailchimpHook, campaign: dict[str, Any], window: Window) -> Iterator[dict[str, Any]]:
    """Every event of one campaign inside ``window`` as flat dicts (``EVENT_COLUMNS``)."""
    cid = campaign["id"]
    if _in_window(campaign.get("send_time"), window):
        for page in mc.iter_sent_to(cid):
            for row in page:
                yield {"campaign_id": cid, "email_hash": row.get("email_id"), "action": "send", "type": None,
                       "timestamp": campaign["send_time"], "url": None}
    for page in mc.iter_email_activity(cid, since=window.start):
        for member in page:
            for event in member.get("activity") or []:
                if _in_window(event.get("timestamp"), window):
                    yield {"campaign_id": cid, "email_hash": member.get("email_id"), "action": event.get("action"),
                           "type": event.get("type"), "timestamp": event.get("timestamp"), "url": event.get("url")}
    for page in mc.iter_unsubscribed(cid):
        for row in page:
            if _in_window(row.get("timestamp"), window):
                yield {"campaign_id": cid, "email_hash": row.get("email_id"), "action": "unsubscribe",
                       "type": None, "timestamp": row.get("timestamp"), "url": None}


def extract_activity(mapping: AudienceMapping, window: Window, stage: Stage, *, mc: MailchimpHook,
                     campaigns_filter: list[str] | None = None, chunk_rows: int = 250_000) -> dict[str, Any]:
    """Stage ``campaigns`` and ``events`` (streamed in chunks, so memory stays flat)."""
    since = window.end - timedelta(days=ACTIVITY_LOOKBACK_DAYS)
    campaigns = [
        c for page in mc.iter_campaigns(list_id=mapping.audience_id, since_send_time=since,
                                        before_send_time=window.end, status="sent")
        for c in page
        if c.get("type") in CAMPAIGN_TYPES and (not campaigns_filter or c["id"] in campaigns_filter)
    ]
    stage.write("campaigns", pd.DataFrame([campaign_row(c) for c in campaigns]))
    # An audience synced for one segment only has no subscriber records for the others: their
    # activity is outside the sync, not an error.
    synced = ({m["id"] for page in mc.iter_segment_members(mapping.audience_id, mapping.segment_id, fields=["id"])
               for m in page}
              if mapping.segment_id is not None else None)
    skipped = 0

    def chunks() -> Iterator[pd.DataFrame]:
        nonlocal skipped
        batch: list[dict[str, Any]] = []
        for campaign in campaigns:
            for event in events_of(mc, campaign, window):
                if synced is not None and event["email_hash"] not in synced:
                    skipped += 1
                    continue
                batch.append(event)
                if len(batch) >= chunk_rows:
                    yield pd.DataFrame(batch, columns=EVENT_COLUMNS)
                    batch = []
        yield pd.DataFrame(batch, columns=EVENT_COLUMNS)

    events = stage.write_chunks("events", chunks(), EVENT_COLUMNS)
    return {"campaigns": len(campaigns), "events": events, "outside_segment": skipped}


def map_events(events: pd.DataFrame, list_id: str) -> pd.DataFrame:
    """Events -> ``MC_Activity__c`` rows keyed by :func:`activity_key`; duplicates collapse (pure).

    Adds ``_reasons`` for events Salesforce could not hold (no member, unknown action).
    """
    if events.empty:
        return pd.DataFrame(columns=[ACTIVITY_KEY, "_reasons"])
    url = events["url"].astype(object).where(events["url"].notna(), None)
    # One vectorised pass over millions of timestamps; a bad one still stops the run, as before.
    stamp, errors = canonical_series(events["timestamp"], "datetime", "event timestamp")
    if errors.notna().any():
        raise ValueError(errors[errors.notna()].iloc[0])
    rows = pd.DataFrame({
        # plain Python lists, not (Arrow-backed) Series: iterating those costs more than the hashing
        ACTIVITY_KEY: [activity_key(*k) for k in zip(*(column.tolist() for column in (
            events["campaign_id"], events["email_hash"], events["action"], stamp, url.fillna(""))), strict=True)],
        "Campaign__r.MC_Campaign_Id__c": events["campaign_id"],
        "Subscriber__r.MC_Subscriber_Key__c": list_id + ":" + events["email_hash"].fillna(""),
        "Audience__r.MC_Audience_Id__c": list_id,
        "Action__c": events["action"],
        "Bounce_Type__c": events["type"].astype(object).where(events["action"] == "bounce", None),
        "Occurred_At__c": stamp,
        "URL__c": url.map(lambda u: None if u is None else (u if len(u) <= URL_LENGTH else u[:URL_LENGTH - 1] + "…")),
        "Full_URL__c": url,
    })
    rows["_reasons"] = np.where(events["email_hash"].isna().to_numpy(), "event without a member id", "").astype(object)
    return rows.drop_duplicates(ACTIVITY_KEY).reset_index(drop=True)


def audience_record_id(reader: McsfSalesforceHook, list_id: str, sync_state: list[dict[str, Any]] | None) -> str | None:
    """The audience's ``MC_Audience__c`` Id: from the sync state preflight read, else asked (None: not there)."""
    known = next((row.get("Id") for row in sync_state or [] if row.get("Id")), None)
    if known:
        return known
    found = reader.query_frame(f"SELECT Id FROM MC_Audience__c WHERE MC_Audience_Id__c = {lookup.soql_quote(list_id)}")
    return None if found.empty else found["Id"].iloc[0]


def existing_keys(sf: McsfSalesforceHook, window: Window, audience_id: str | None) -> pd.Series:
    """Keys of the audience's activity Salesforce already holds for the window (counted first: a
    first run of a day costs one request)."""
    if audience_id is None:  # no audience record yet, so no activity of it either
        return pd.Series([], dtype=object)
    where = (f"Audience__c = {lookup.soql_quote(audience_id)} "
             f"AND Occurred_At__c >= {lookup.soql_datetime(window.start)} "
             f"AND Occurred_At__c < {lookup.soql_datetime(window.end)}")
    found = lookup.fetch_all(sf, ACTIVITY, [ACTIVITY_KEY], where, expected_rows=None)
    return found[ACTIVITY_KEY]


def retention(sf: McsfSalesforceHook | None, reader: McsfSalesforceHook, mapping: AudienceMapping,
              window: Window, audience_id: str | None, *, dry_run: bool) -> writes.Outcome:
    """Delete this audience's activity older than ``activity_retention_days`` before the window's end."""
    if not mapping.activity_retention_days or audience_id is None:
        return writes.Outcome()
    cutoff = window.end - timedelta(days=mapping.activity_retention_days)
    old = lookup.fetch_all(reader, ACTIVITY, [], f"Audience__c = {lookup.soql_quote(audience_id)} "
                           f"AND Occurred_At__c < {lookup.soql_datetime(cutoff)}", expected_rows=None)
    ids = old["Id"].tolist() if len(old) else []
    result = writes.delete(sf, ACTIVITY, ids, dry_run=dry_run)
    result.updated = len(ids) - result.failed  # deleted
    log.info("retention %s: %s activity records older than %s days (before %s) deleted%s", mapping.label, len(ids),
             mapping.activity_retention_days, cutoff.date(), " (DRY RUN: none deleted)" if dry_run else "")
    return result
