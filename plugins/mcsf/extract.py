"""Extract one audience for one data interval: Mailchimp changes plus what Salesforce holds for them.

Reads exactly ``[start, end)``: members by ``since_last_changed``/``before_last_changed``, segments
by ``since_updated_at``/``before_updated_at``. A *full* extract (a Param, or the mapping changed
since the audience was last loaded) reads the whole audience instead. Everything is staged as
Parquet; the return value is small (paths are implied by the stage, counts are returned).
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING, Any

import pandas as pd

from mcsf import lookup
from mcsf.mapping import SUBSCRIBER, SUBSCRIBER_FIELDS, SUBSCRIBER_KEY, isin, normalize_email
from mcsf.report import Progress

if TYPE_CHECKING:
    from collections.abc import Iterable

    from mcsf.config import AudienceMapping
    from mcsf.hooks.mailchimp import MailchimpHook
    from mcsf.hooks.salesforce import McsfSalesforceHook
    from mcsf.staging import Stage, Window

MEMBER_FIELDS = ("id", "email_address", "status", "merge_fields", "interests", "member_rating",
                 "last_changed", "timestamp_opt", "language", "vip", "tags", "list_id")
AUDIENCE_FIELDS = ("Name", "MC_Audience_Id__c", "Member_Count__c", "Unsubscribe_Count__c",
                   "Cleaned_Count__c", "Sync_Mode__c", "Mapping_Fingerprint__c")
SYNC_STATE_COLUMNS = ("Id", *AUDIENCE_FIELDS)  # an audience's MC_Audience__c row as preflight reads it
PERSON_BASE = ("Email", "LastModifiedDate", "HasOptedOutOfEmail")
SEGMENTS_AT_ONCE = 4


def flatten_member(member: dict[str, Any]) -> dict[str, Any]:
    """One Mailchimp member as a flat row (merge values as ``merge.TAG``, address parts as
    ``merge.TAG.part``, interests as ``;``-joined ids that are on, tags as ``;``-joined names)."""
    row: dict[str, Any] = {
        "list_id": member.get("list_id"),
        "email_hash": member.get("id"),
        "email_address": member.get("email_address"),
        "status": member.get("status"),
        "member_rating": member.get("member_rating"),
        "last_changed": member.get("last_changed"),
        "timestamp_opt": member.get("timestamp_opt") or None,
        "language": member.get("language") or None,
        "vip": member.get("vip"),
        "tags": ";".join(sorted(t.get("name", "") for t in member.get("tags") or [])) or None,
        "interests": ";".join(sorted(k for k, on in (member.get("interests") or {}).items() if on)) or None,
    }
    for tag, value in (member.get("merge_fields") or {}).items():
        if isinstance(value, dict):
            for part, part_value in value.items():
                row[f"merge.{tag}.{part}"] = None if part_value in ("", None) else str(part_value)
        else:
            row[f"merge.{tag}"] = None if value in ("", None) else str(value)
    return row


def members_frame(pages: Iterable[list[dict[str, Any]]]) -> pd.DataFrame:
    """All pages flattened into one frame; text columns as object (None for no value)."""
    rows = [flatten_member(m) for page in pages for m in page]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=["list_id", "email_hash", "email_address", "status"])
    return frame.drop_duplicates("email_hash", keep="last").reset_index(drop=True)


def mapping_fingerprint(mapping: AudienceMapping) -> str:
    """sha256 of what decides the values written (fields, lead settings, segment)."""
    payload = mapping.model_dump(mode="json", include={"fields", "leads", "segment_id", "sync_mode"})
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def extract_audience(
    mapping: AudienceMapping,
    window: Window,
    stage: Stage,
    *,
    full: bool,
    mc: MailchimpHook,
    sf: McsfSalesforceHook,
    member_count: int,
    sync_state: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """Stage ``members``, ``segments``, ``segment_members``, ``sf_audience``, ``sf_subscribers``,
    ``sf_contacts``, ``sf_leads`` for one audience and return counts and whether it was full.

    :param member_count: the audience's size (from preflight), to pick the cheaper read path
    """
    list_id = mapping.audience_id
    # Preflight reads every audience's row in one query; without it (tests, callers of this function
    # alone) it is read here. Salesforce is then only asked when members changed: no login otherwise.
    sf_audience = sync_state if sync_state is not None else read_sync_state(sf, [list_id])[list_id]
    fingerprint = mapping_fingerprint(mapping)
    reason = full_reason(mapping, sf_audience, full)
    full = reason is not None
    stage.write("sf_audience", sf_audience)

    window_filter = {} if full else {"since_last_changed": window.start, "before_last_changed": window.end}
    progress = Progress(f"{mapping.label}: members read")
    members = members_frame(mc.iter_members(list_id, fields=MEMBER_FIELDS, progress=progress, **window_filter))
    segment_filter = {} if full else {"since_updated_at": window.start, "before_updated_at": window.end}
    segments = pd.DataFrame([_segment_row(s) for page in mc.iter_segments(list_id, **segment_filter) for s in page])
    seg_members = _segment_members(mc, list_id, segments)
    if mapping.segment_id is not None and (len(members) or len(seg_members)):
        # Only the sync segment's members become subscribers, so only they can be segment members.
        in_segment = {m["id"] for page in mc.iter_segment_members(list_id, mapping.segment_id, fields=["id"])
                      for m in page}
        if len(members):
            members = members[isin(members["email_hash"], in_segment)].reset_index(drop=True)
        seg_members = seg_members[isin(seg_members["email_hash"], in_segment)].reset_index(drop=True)
    stage.write("members", members)
    stage.write("segments", segments)
    stage.write("segment_members", seg_members)

    emails = members["email_address"].map(normalize_email).tolist() if not members.empty else []
    sub_fields = [SUBSCRIBER_KEY, *SUBSCRIBER_FIELDS, "Lead__c", "Contact__c"]
    # Past REST_LIMIT emails these are Bulk 2.0 reads (see mcsf.lookup), not thousands of IN lists.
    # Contacts and Leads as they are before any load of the run: a whole-object read is shared by
    # the run's audiences. Subscribers are not (Salesforce holds none of a first load's anyway).
    people = partial(lookup.fetch_by_values, shared=stage.run_shared())
    reads = [
        (lookup.fetch_by_values, (sf, SUBSCRIBER, sub_fields, "Email__c", emails)),
        (people, (sf, "Contact", [*PERSON_BASE, *mapping.contact_fields().values()], "Email", emails)),
        (people, (sf, "Lead", [*PERSON_BASE, "MC_Email_Key__c", *mapping.lead_fields().values()], "Email", emails)),
    ]
    # Independent reads, side by side; none at all (not even a login) when no member changed.
    subscribers, contacts, leads = lookup.side_by_side(sf, reads) if emails else [fn(*a) for fn, a in reads]
    stage.write("sf_subscribers", subscribers)
    stage.write("sf_contacts", contacts)
    stage.write("sf_leads", leads)
    return {
        "full": full,
        "full_reason": reason,
        "fingerprint": fingerprint,
        "members": len(members),
        "segments": len(segments),
        "segment_members": len(seg_members),
        "sf_subscribers_known": int((subscribers[SUBSCRIBER_KEY].astype(str).str.startswith(f"{list_id}:")).sum())
        if not subscribers.empty else 0,
    }


def full_reason(mapping: AudienceMapping, sf_audience: pd.DataFrame, requested: bool) -> str | None:
    """Why this audience's next read is a full one (None: only members changed in the window).

    :param sf_audience: its ``MC_Audience__c`` row, from :func:`read_sync_state`
    :param requested: the run's ``full_resync``
    """
    known = sf_audience["Mapping_Fingerprint__c"].iloc[0] if not sf_audience.empty else None
    if requested:
        return "requested"
    if known is None or pd.isna(known):
        return "first load"
    return "mapping changed" if known != mapping_fingerprint(mapping) else None


def sync_state_records(sf_audience: pd.DataFrame) -> list[dict[str, Any]]:
    """An audience's sync-state row as plain JSON values, to travel by XCom (see :data:`SYNC_STATE_COLUMNS`)."""
    return sf_audience.astype(object).where(sf_audience.notna(), None).to_dict("records")


def read_sync_state(sf: McsfSalesforceHook, list_ids: list[str]) -> dict[str, pd.DataFrame]:
    """Each audience's ``MC_Audience__c`` row (empty frame: never loaded), in one query for all."""
    found = sf.query_frame(
        f"SELECT {', '.join(SYNC_STATE_COLUMNS)} FROM MC_Audience__c "
        f"WHERE MC_Audience_Id__c IN ({', '.join(lookup.soql_quote(i) for i in list_ids)})"
    ) if list_ids else pd.DataFrame(columns=list(SYNC_STATE_COLUMNS))
    return {i: found[found["MC_Audience_Id__c"] == i].reset_index(drop=True) for i in list_ids}


def _segment_row(segment: dict[str, Any]) -> dict[str, Any]:
    return {
        "list_id": segment.get("list_id"),
        "segment_id": str(segment.get("id")),
        "name": segment.get("name"),
        "type": segment.get("type"),
        "member_count": segment.get("member_count"),
        "created_at": segment.get("created_at"),
        "updated_at": segment.get("updated_at"),
    }


def _segment_members(mc: MailchimpHook, list_id: str, segments: pd.DataFrame) -> pd.DataFrame:
    """Members of the static segments (and tags, which are static segments) that changed, of every
    status. Saved segments are rules Mailchimp evaluates on each read — their membership moves
    with any member change and no ``updated_at`` says so — so, like the Mailchimp app, mcsf keeps
    the saved segment itself but not its membership."""
    static = segments[segments["type"] == "static"]["segment_id"].tolist() if not segments.empty else []

    def read(segment_id: str) -> list[tuple[str, str]]:
        return [(segment_id, m["id"]) for page in mc.iter_segment_members(list_id, segment_id, every_status=True,
                                                                           fields=["id"]) for m in page]

    # Segments side by side (the hook's connection limit holds across them): an audience with many
    # small segments or tags is not read one first page after another.
    with ThreadPoolExecutor(max_workers=max(1, min(SEGMENTS_AT_ONCE, len(static))),
                            thread_name_prefix="mailchimp-segment") as pool:
        rows = [row for part in pool.map(read, static) for row in part]
    return pd.DataFrame(rows, columns=["segment_id", "email_hash"])
