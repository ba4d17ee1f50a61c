"""Load one audience: decide people, diff against Salesforce, write in dependency order.

Order matters because children point at parents by external id: the audience row, then Leads
(creates are upserts on ``MC_Email_Key__c``) and Lead/Contact updates, then subscribers, then
segments, segment members and interests, and last the audience's mapping fingerprint (written
only when everything before it succeeded, so a failed full load is retried in full).
Only rows that differ from what Salesforce holds are written; the rest count as unchanged.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import TYPE_CHECKING, Any

import pandas as pd

from mcsf import load as writes
from mcsf import lookup
from mcsf.leads import LEAD_KEY, LEAD_REF, plan_people
from mcsf.mapping import AUDIENCE_REF, SUBSCRIBER, SUBSCRIBER_FIELDS, SUBSCRIBER_KEY, diff

if TYPE_CHECKING:
    from mcsf.config import AudienceMapping
    from mcsf.hooks.salesforce import McsfSalesforceHook
    from mcsf.staging import Stage, Window

log = logging.getLogger("mcsf")
LINK_TYPES = {"Lead__c": "reference", "Contact__c": "reference"}
AUDIENCE_TYPES = {"Name": "string", "Member_Count__c": "double", "Unsubscribe_Count__c": "double",
                  "Cleaned_Count__c": "double", "Sync_Mode__c": "picklist"}
SEGMENT_TYPES = {"Name": "string", "Type__c": "picklist", "Member_Count__c": "double",
                 "Created_At__c": "datetime", "Updated_At__c": "datetime"}
INTEREST_TYPES = {"Name": "string", "Category_Id__c": "string", "Category__c": "string",
                  "Subscriber_Count__c": "double"}


def load_audience(
    mapping: AudienceMapping,
    window: Window,
    stage: Stage,
    run_stage: Stage,
    audience: dict[str, Any],
    *,
    sf: McsfSalesforceHook | None,
    reader: McsfSalesforceHook,
) -> dict[str, Any]:
    """Write the audience's changes; ``sf=None`` is a dry run (reads happen, writes are staged).

    :param reader: the hook used for reads (the same hook as ``sf`` unless dry-running)
    """
    dry = sf is None
    list_id = mapping.audience_id
    describes = run_stage.read_json("describes")
    meta = stage.read_json("audience")
    valid = stage.read("valid")
    outcomes: dict[str, writes.Outcome] = {}

    # 1. The audience row (children reference it by MC_Audience_Id__c).
    sf_audience = stage.read("sf_audience")
    stats = meta.get("stats", {})
    desired_audience = pd.DataFrame([{
        "MC_Audience_Id__c": list_id,
        "Name": (meta.get("name") or mapping.label)[:80],
        "Member_Count__c": str(stats.get("member_count", 0)),
        "Unsubscribe_Count__c": str(stats.get("unsubscribe_count", 0)),
        "Cleaned_Count__c": str(stats.get("cleaned_count", 0)),
        "Sync_Mode__c": str(mapping.sync_mode),
    }])
    changed_audience = diff(desired_audience, sf_audience, "MC_Audience_Id__c", AUDIENCE_TYPES)
    outcomes["MC_Audience__c"] = writes.write(sf, "MC_Audience__c", changed_audience,
                                              external_id="MC_Audience_Id__c", stage=stage, dry_run=dry)

    # 2. People: match, create, update.
    sf_types = {obj: {name: d.get("type", "string") for name, d in describes.get(obj, {}).items()}
                for obj in ("Lead", "Contact")}
    subscribers_sf = stage.read("sf_subscribers")
    own = subscribers_sf[SUBSCRIBER_KEY].astype(str).str.startswith(f"{list_id}:") if len(subscribers_sf) else []
    others = subscribers_sf[~pd.Series(own, index=subscribers_sf.index, dtype=bool)] if len(subscribers_sf) else subscribers_sf
    people_cols = [c for c in valid.columns if c.startswith(("Lead.", "Contact."))]
    plan = plan_people(valid, valid[people_cols], stage.read("sf_contacts"), stage.read("sf_leads"),
                       others, mapping, sf_types)
    lead_creates = plan.lead_creates
    outcomes["Lead (create)"] = writes.write(sf, "Lead", lead_creates, external_id=LEAD_KEY, stage=stage, dry_run=dry,
                                             reject_key=LEAD_KEY)
    failed_leads = set(outcomes["Lead (create)"].rejects["key"]) if len(outcomes["Lead (create)"].rejects) else set()
    outcomes["Lead (update)"] = writes.write(sf, "Lead", plan.lead_updates, external_id=None, stage=stage, dry_run=dry)
    outcomes["Contact (update)"] = writes.write(sf, "Contact", plan.contact_updates, external_id=None,
                                                stage=stage, dry_run=dry)

    # 3. Subscribers, linked to their person; a failed Lead create leaves the subscriber unlinked.
    links = plan.links.copy()
    if failed_leads:
        links.loc[links[LEAD_REF].isin(failed_leads), LEAD_REF] = None
    desired = pd.concat([valid[[SUBSCRIBER_KEY, AUDIENCE_REF, *SUBSCRIBER_FIELDS]], links], axis=1)
    own_rows = subscribers_sf[pd.Series(own, index=subscribers_sf.index, dtype=bool)] if len(subscribers_sf) else subscribers_sf
    changed = diff(desired, own_rows, SUBSCRIBER_KEY, {**SUBSCRIBER_FIELDS, **LINK_TYPES})
    changed = changed.drop(columns=[c for c in (LEAD_REF,) if c in changed and changed[c].isna().all()])
    outcomes[SUBSCRIBER] = writes.write(sf, SUBSCRIBER, changed, external_id=SUBSCRIBER_KEY, stage=stage, dry_run=dry)
    unchanged = len(desired) - len(changed)

    # 4. Segments, their members, interests.
    outcomes.update(_segments(reader, sf, mapping, stage, dry))
    extract_counts = audience.get("extract", {})
    if extract_counts.get("full") or extract_counts.get("members"):  # counts move only when members do
        outcomes["MC_Interest__c"] = _interests(reader, sf, mapping, meta, stage, dry)

    # 5. Fingerprint last: a full load that failed part-way is retried in full next time.
    if not any(o.failed for o in outcomes.values()) and extract_counts.get("full"):
        stamp = pd.DataFrame([{"MC_Audience_Id__c": list_id, "Mapping_Fingerprint__c": extract_counts["fingerprint"],
                               "Last_Synced_At__c": window.end.isoformat()}])
        writes.write(sf, "MC_Audience__c", stamp, external_id="MC_Audience_Id__c", stage=stage, dry_run=dry)

    rejects = pd.concat([o.rejects for o in outcomes.values() if len(o.rejects)]
                        + [plan.rejects.assign(object="Lead", key=valid.loc[plan.rejects.index, SUBSCRIBER_KEY],
                                               step="leads").rename(columns={"_reason": "reason"})[
                            ["object", "key", "step", "reason"]]],
                        ignore_index=True) if len(plan.rejects) or any(len(o.rejects) for o in outcomes.values()) \
        else pd.DataFrame(columns=writes.REJECT_COLUMNS)
    stage.write("rejects_load", rejects)
    reasons = Counter(_reason_head(r) for r in rejects["reason"]) if len(rejects) else Counter()
    counts = writes.summarize(outcomes, {
        **plan.counts,
        "leads_created": outcomes["Lead (create)"].created,
        "unchanged": unchanged,
        "subscribers_written": len(changed),
        "reject_reasons": dict(reasons),
        "dry_run": dry,
    })
    log.info("SUMMARY load %s %s: subscribers %s written (%s created), %s unchanged; leads created %s, "
             "%s contacts and %s leads linked, %s Lead and %s Contact updates; %s refused by Salesforce%s",
             mapping.label, window, len(changed), outcomes[SUBSCRIBER].created, unchanged, counts["leads_created"],
             plan.counts["contacts_linked"], plan.counts["leads_linked"], len(plan.lead_updates),
             len(plan.contact_updates), counts["load_failed"], " (DRY RUN: nothing written)" if dry else "")
    return counts


def _reason_head(reason: str) -> str:
    """Group Salesforce refusals by error code (``Salesforce refused: STRING_TOO_LONG:...``)."""
    text = str(reason)
    if text.startswith("Salesforce refused: "):
        return "Salesforce refused: " + text.removeprefix("Salesforce refused: ").split(":", 1)[0]
    return text


def _segments(reader: McsfSalesforceHook, sf: McsfSalesforceHook | None, mapping: AudienceMapping,
              stage: Stage, dry: bool) -> dict[str, writes.Outcome]:
    list_id = mapping.audience_id
    segments = stage.read("segments")
    if segments.empty:
        return {}
    desired = pd.DataFrame({
        "MC_Segment_Key__c": list_id + ":" + segments["segment_id"].astype(str),
        AUDIENCE_REF: list_id,
        "Name": segments["name"].astype(str).str.slice(0, 80),
        "Type__c": segments["type"],
        "Member_Count__c": segments["member_count"].astype(str),
        "Created_At__c": segments["created_at"],
        "Updated_At__c": segments["updated_at"],
    })
    existing = lookup.fetch_by_values(reader, "MC_Segment__c", SEGMENT_TYPES, "MC_Segment_Key__c",
                                      desired["MC_Segment_Key__c"].tolist())
    out = {"MC_Segment__c": writes.write(sf, "MC_Segment__c", diff(desired, existing, "MC_Segment_Key__c",
                                                                     SEGMENT_TYPES),
                                         external_id="MC_Segment_Key__c", stage=stage, dry_run=dry)}
    members = stage.read("segment_members")
    wanted = pd.DataFrame({
        "MC_Segment_Member_Key__c": list_id + ":" + members["segment_id"].astype(str) + ":" + members["email_hash"],
        "Segment__r.MC_Segment_Key__c": list_id + ":" + members["segment_id"].astype(str),
        "Subscriber__r.MC_Subscriber_Key__c": list_id + ":" + members["email_hash"],
    }) if len(members) else pd.DataFrame(columns=["MC_Segment_Member_Key__c"])
    current = pd.concat([
        lookup.fetch_all(reader, "MC_Segment_Member__c", ["MC_Segment_Member_Key__c"],
                         f"MC_Segment_Member_Key__c LIKE {lookup.soql_quote(key + ':%')}",
                         expected_rows=int(count or 0))
        for key, count in zip(desired["MC_Segment_Key__c"], segments["member_count"], strict=True)
    ], ignore_index=True)
    have = set(current["MC_Segment_Member_Key__c"]) if len(current) else set()
    new = wanted[~wanted["MC_Segment_Member_Key__c"].isin(have)].assign(_is_new=True)
    out["MC_Segment_Member__c"] = writes.write(sf, "MC_Segment_Member__c", new,
                                               external_id="MC_Segment_Member_Key__c", stage=stage, dry_run=dry)
    gone = current[~current["MC_Segment_Member_Key__c"].isin(set(wanted["MC_Segment_Member_Key__c"]))] \
        if len(current) else current
    removed = writes.delete(sf, "MC_Segment_Member__c", gone["Id"].tolist() if len(gone) else [], dry_run=dry)
    out["MC_Segment_Member__c (left)"] = writes.Outcome(updated=len(gone) - removed.failed, failed=removed.failed,
                                                        rejects=removed.rejects)
    return out


def _interests(reader: McsfSalesforceHook, sf: McsfSalesforceHook | None, mapping: AudienceMapping,
               meta: dict[str, Any], stage: Stage, dry: bool) -> writes.Outcome:
    rows = meta.get("interests", [])
    if not rows:
        return writes.Outcome()
    list_id = mapping.audience_id
    desired = pd.DataFrame([{
        "MC_Interest_Key__c": f"{list_id}:{r['interest_id']}",
        AUDIENCE_REF: list_id,
        "Name": str(r.get("name") or "")[:80],
        "Category_Id__c": r.get("category_id"),
        "Category__c": str(r.get("category") or "")[:100],
        "Subscriber_Count__c": str(r.get("subscriber_count") or 0),
    } for r in rows])
    existing = lookup.fetch_all(reader, "MC_Interest__c", ["MC_Interest_Key__c", *INTEREST_TYPES],
                                f"MC_Interest_Key__c LIKE {lookup.soql_quote(list_id + ':%')}",
                                expected_rows=len(desired))
    return writes.write(sf, "MC_Interest__c", diff(desired, existing, "MC_Interest_Key__c", INTEREST_TYPES),
                        external_id="MC_Interest_Key__c", stage=stage, dry_run=dry)
