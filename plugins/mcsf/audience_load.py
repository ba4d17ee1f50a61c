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
from mcsf.leads import (
    LEAD_KEY,
    LEAD_REF,
    best_match,
    field_updates,
    new_lead_emails,
    offered,
    opt_out_updates,
    plan_people,
)
from mcsf.mapping import AUDIENCE_REF, SUBSCRIBER, SUBSCRIBER_FIELDS, SUBSCRIBER_KEY, diff, isin

if TYPE_CHECKING:
    from collections.abc import Iterator

    from mcsf.config import AudienceMapping
    from mcsf.hooks.salesforce import McsfSalesforceHook
    from mcsf.staging import Stage, Window

log = logging.getLogger("mcsf")
LINK_TYPES = {"Lead__c": "reference", "Contact__c": "reference"}
AUDIENCE_TYPES = {"Name": "string", "Member_Count__c": "double", "Unsubscribe_Count__c": "double",
                  "Cleaned_Count__c": "double", "Sync_Mode__c": "picklist"}
SEGMENT_TYPES = {"Name": "string", "Type__c": "picklist",
                 "Created_At__c": "datetime", "Updated_At__c": "datetime"}
#: Segments whose memberships one query reads: its COUNT() travels in a REST request URI (16 KB).
SEGMENTS_PER_READ = 100
INTEREST_TYPES = {"Name": "string", "Category_Id__c": "string", "Category__c": "string",
                  "Subscriber_Count__c": "double"}


def load_people(mapping: AudienceMapping, window: Window, stage: Stage, *,
                sf: McsfSalesforceHook | None) -> dict[str, Any]:
    """Phase 1 (every audience finishes it before any starts phase 2): the audience row, Lead
    creates and Lead/Contact updates. ``sf=None`` is a dry run (writes are staged, not sent).

    Splitting the load in two makes one run converge: a person unsubscribed from audience A but
    subscribed in B gets B's new Lead in phase 1, and A's subscriber links to it in phase 2.
    """
    dry = sf is None
    list_id = mapping.audience_id
    lookup.forget_shared_reads(stage.run_shared())  # every extract of the run is done (see the DAG)
    meta = stage.read_json("audience")
    valid = stage.read("valid")
    outcomes: dict[str, writes.Outcome] = {}

    # The audience row first: children reference it by MC_Audience_Id__c. Preflight reads its stats
    # every hour; the row is written when they (or its name or sync mode) differ from Salesforce's.
    stats = meta.get("stats") or {}
    desired_audience = pd.DataFrame([{
        "MC_Audience_Id__c": list_id,
        "Name": (meta.get("name") or mapping.label)[:80],
        "Member_Count__c": str(stats.get("member_count", 0)),
        "Unsubscribe_Count__c": str(stats.get("unsubscribe_count", 0)),
        "Cleaned_Count__c": str(stats.get("cleaned_count", 0)),
        "Sync_Mode__c": str(mapping.sync_mode),
    }])
    changed_audience = diff(desired_audience, stage.read("sf_audience"), "MC_Audience_Id__c", AUDIENCE_TYPES) \
        if meta.get("stats") is not None else desired_audience.iloc[:0]
    outcomes["MC_Audience__c"] = writes.write(sf, "MC_Audience__c", changed_audience,
                                              external_id="MC_Audience_Id__c", stage=stage, dry_run=dry)

    sf_types = _sf_types(stage)
    people_cols = [c for c in valid.columns if c.startswith(("Lead.", "Contact."))]
    others = _others(stage, mapping, valid)  # the run's other audiences' rows for these people, read once
    plan = plan_people(valid, valid[people_cols], stage.read("sf_contacts"), stage.read("sf_leads"), mapping, sf_types,
                       created_elsewhere=_created_by_earlier_audiences(others, mapping),
                       rivals=_rivals(others, valid))
    outcomes["Lead (create)"] = writes.write(sf, "Lead", plan.lead_creates, external_id=LEAD_KEY, stage=stage,
                                             dry_run=dry)
    outcomes["Lead (update)"] = writes.write(sf, "Lead", plan.lead_updates, external_id=None, stage=stage, dry_run=dry)
    outcomes["Contact (update)"] = writes.write(sf, "Contact", plan.contact_updates, external_id=None,
                                                stage=stage, dry_run=dry)
    links = plan.links.copy()
    creates = outcomes["Lead (create)"]
    if creates.failed:  # the subscriber still loads, unlinked; the Lead's refusal is a reject
        refused = links[LEAD_REF].isin(set(creates.rejects["key"]))
        # Salesforce answers by the Lead's external id, the email; rejects name the subscriber instead.
        subscriber_of = dict(zip(links.loc[refused, LEAD_REF], valid.loc[refused, SUBSCRIBER_KEY], strict=True))
        creates.rejects = creates.rejects.assign(key=creates.rejects["key"].map(subscriber_of))
        links.loc[refused, LEAD_REF] = None
    stage.write("links", links.reset_index(drop=True))
    # What phase 2 of the run's other audiences links to: the Leads written here, with their Ids
    # and the values sent (a Lead created here holds just those; one the create found by its key
    # is read again there). A dry run creates none.
    written = creates.succeeded
    stage.write("leads_created", plan.lead_creates.loc[written.index].assign(
        Id=written["sf__Id"], _created=written["sf__Created"]).reset_index(drop=True))
    lead_rejects = plan.rejects.assign(object="Lead", key=valid.loc[plan.rejects.index, SUBSCRIBER_KEY],
                                       step="leads").rename(columns={"_reason": "reason"})[writes.REJECT_COLUMNS]
    stage.write("rejects_people", pd.concat([lead_rejects, *(o.rejects for o in outcomes.values())], ignore_index=True))
    counts = writes.summarize(outcomes, {**plan.counts, "leads_created": outcomes["Lead (create)"].created})
    log.info("SUMMARY load people %s %s: leads created %s (%s more created by an audience ordered before this one), "
             "%s contacts and %s leads matched, %s Lead and %s Contact updates, %s Lead creates rejected; %s refused "
             "by Salesforce%s", mapping.label, window, counts["leads_created"],
             plan.counts["leads_created_by_another_audience"], plan.counts["contacts_linked"],
             plan.counts["leads_linked"], len(plan.lead_updates), len(plan.contact_updates), len(plan.rejects),
             counts["load_failed"],
             " (DRY RUN: nothing written)" if dry else "")
    return counts


def load_subscribers(mapping: AudienceMapping, window: Window, stage: Stage, people: dict[str, Any],
                     extract_counts: dict[str, Any], *, sf: McsfSalesforceHook | None,
                     reader: McsfSalesforceHook) -> dict[str, Any]:
    """Phase 2: subscribers linked to their person, segments, interests, then the fingerprint.

    :param people: what :func:`load_people` returned for this audience
    :param reader: the hook used for reads (``sf`` is None on a dry run)
    """
    dry = sf is None
    list_id = mapping.audience_id
    valid = stage.read("valid")
    links = stage.read("links")
    links.index = valid.index
    links, late_updates = _link_leads_made_elsewhere(reader, mapping, stage, valid, links)
    outcomes: dict[str, writes.Outcome] = {
        "Lead (update)": writes.write(sf, "Lead", late_updates, external_id=None, stage=stage, dry_run=dry)}
    subscribers_sf = stage.read("sf_subscribers")
    opt_outs = opt_out_updates(valid, links, stage.read("sf_contacts"), stage.read("sf_leads"),
                               _other_audiences(stage, subscribers_sf, list_id), mapping)
    for object_name, frame in opt_outs.items():
        outcomes[f"{object_name} (opt-out)"] = writes.write(sf, object_name, frame, external_id=None,
                                                            stage=stage, dry_run=dry)
    desired = pd.concat([valid[[SUBSCRIBER_KEY, AUDIENCE_REF, *SUBSCRIBER_FIELDS]], links], axis=1)
    del valid, opt_outs  # the largest frames: not held while the subscribers' CSV is built (a task's peak)
    changed = diff(desired, subscribers_sf[_own(subscribers_sf, list_id)], SUBSCRIBER_KEY,
                   {**SUBSCRIBER_FIELDS, **LINK_TYPES})
    unchanged, written = len(desired) - len(changed), len(changed)
    del desired, subscribers_sf
    if LEAD_REF in changed and changed[LEAD_REF].isna().all():
        changed = changed.drop(columns=LEAD_REF)
    outcomes[SUBSCRIBER] = writes.write(sf, SUBSCRIBER, changed, external_id=SUBSCRIBER_KEY, stage=stage, dry_run=dry)
    del changed

    outcomes.update(_segments(reader, sf, mapping, stage, dry))
    if extract_counts.get("full") or extract_counts.get("members"):  # counts move only when members do
        outcomes["MC_Interest__c"] = _interests(reader, sf, mapping, stage.read_json("audience"), stage, dry)

    # The fingerprint last: a full load that failed part-way is retried in full next time.
    if extract_counts.get("full") and not any(o.failed for o in outcomes.values()) and not people.get("load_failed"):
        stamp = pd.DataFrame([{"MC_Audience_Id__c": list_id, "Mapping_Fingerprint__c": extract_counts["fingerprint"],
                               "Last_Synced_At__c": window.end.isoformat()}])
        writes.write(sf, "MC_Audience__c", stamp, external_id="MC_Audience_Id__c", stage=stage, dry_run=dry)

    rejects = pd.concat([stage.read("rejects_people"), *(o.rejects for o in outcomes.values())], ignore_index=True)
    stage.write("rejects_load", rejects)
    reasons = Counter(writes.reason_group(r) for r in rejects["reason"]) if len(rejects) else Counter()
    mine = writes.summarize(outcomes)
    counts = {
        **people,
        "created": people["created"] + mine["created"],
        "updated": people["updated"] + mine["updated"],
        "load_failed": people["load_failed"] + mine["load_failed"],
        "by_object": {**people.get("by_object", {}), **mine["by_object"]},
        "unchanged": unchanged,
        "subscribers_written": written,
        "contacts_linked": int(links["Contact__c"].notna().sum()),
        "leads_linked": int((links["Lead__c"].notna() | links[LEAD_REF].notna()).sum()),
        "reject_reasons": dict(reasons),
        "dry_run": dry,
    }
    log.info("SUMMARY load subscribers %s %s: %s written (%s created), %s unchanged; %s linked to Contacts, "
             "%s to Leads; %s refused by Salesforce%s", mapping.label, window, written,
             outcomes[SUBSCRIBER].created, unchanged, counts["contacts_linked"], counts["leads_linked"],
             mine["load_failed"], " (DRY RUN: nothing written)" if dry else "")
    return counts


def _run_audiences(stage: Stage, mapping: AudienceMapping) -> Iterator[tuple[AudienceMapping, Stage]]:
    """The run's other audiences, by id: their mapping and stage.

    Every audience's validated rows and lookups are staged before any load_people starts (the DAG
    expands load_people over validate's results). The run's audiences are those preflight chose
    (the run's shared ``audiences``), not whatever an earlier run of the window left staged.
    """
    from pathlib import Path

    from mcsf.config import load_mapping

    run = stage.run_shared().read_json("audiences", {})  # written by preflight: {audience id: mapping file}
    for other_id in sorted(i for i in run if i != mapping.audience_id):
        yield load_mapping(Path(run[other_id])), stage.sibling(other_id)


def _others(stage: Stage, mapping: AudienceMapping, valid: pd.DataFrame
            ) -> list[tuple[AudienceMapping, Stage, pd.DataFrame]]:
    """The run's other audiences with their validated rows for this audience's emails, read once:
    what :func:`_rivals` and :func:`_created_by_earlier_audiences` need of them (their change time,
    key, status, their Lead fields and this audience's people columns they have)."""
    mine = [c for c in valid.columns if c.startswith(("Lead.", "Contact."))]
    found = []
    for other, staged in _run_audiences(stage, mapping):
        columns = ["_email_norm", "Last_Changed__c", SUBSCRIBER_KEY, "Status__c", *mine,
                   *(f"Lead.{name}" for name in other.lead_fields().values())]
        rows = staged.read("valid", list(dict.fromkeys(columns)))
        rows = rows[isin(rows["_email_norm"], valid["_email_norm"])] if len(rows) else rows
        if len(rows):
            found.append((other, staged, rows))
    return found


def _rivals(others: list[tuple[AudienceMapping, Stage, pd.DataFrame]], valid: pd.DataFrame) -> pd.DataFrame:
    """The run's other audiences' values for this audience's people and fields, with their
    audience id and change time: who offers each field is decided by :func:`mcsf.leads.outranked`."""
    mine = [c for c in valid.columns if c.startswith(("Lead.", "Contact."))]
    if not mine or not others:
        return pd.DataFrame()
    return pd.concat([rows[["_email_norm", "Last_Changed__c", *(c for c in mine if c in rows)]]
                      .assign(_audience=other.audience_id) for other, _, rows in others], ignore_index=True)


def _created_by_earlier_audiences(others: list[tuple[AudienceMapping, Stage, pd.DataFrame]],
                                  mapping: AudienceMapping) -> pd.Series:
    """Of this audience's emails, those whose new Lead an audience of this run ordered before this
    one (by id) creates. One audience creates each new Lead — the same one whatever order the
    mapped tasks run in — and the others link to it in phase 2, updating it by their fields'
    policies (the end state of a first load is then the one later runs keep; a Lead that audience
    failed to create is not found there, and the subscriber loads unlinked). What the earlier
    audience would create is :func:`mcsf.leads.new_lead_emails` of its own rows, mapping and lookups.
    """
    found: list[pd.Series] = []
    for other, staged, rows in others:
        if other.audience_id > mapping.audience_id or not other.leads.create:
            continue
        theirs = [f"Lead.{name}" for name in other.lead_fields().values()]
        found.append(new_lead_emails(rows, rows[[c for c in theirs if c in rows]], staged.read("sf_contacts"),
                                     staged.read("sf_leads"), other))
    return pd.concat(found, ignore_index=True) if found else pd.Series([], dtype=object)


def _leads_created_by_others(stage: Stage, mapping: AudienceMapping) -> pd.DataFrame:
    """The Leads the run's other audiences wrote in phase 1, as they staged them (``leads_created``:
    the key, the values sent, ``Id``, ``_created``)."""
    made = [staged.read("leads_created") for _, staged in _run_audiences(stage, mapping)]
    made = [m for m in made if len(m)]
    return pd.concat(made, ignore_index=True) if made else pd.DataFrame(columns=[LEAD_KEY, "Id", "_created"])


def _sf_types(stage: Stage) -> dict[str, dict[str, str]]:
    """``{"Lead": {field: type}, "Contact": {...}}`` from the describes staged for the audience."""
    describes = stage.read_json("describes")
    return {obj: {name: d.get("type", "string") for name, d in describes.get(obj, {}).items()}
            for obj in ("Lead", "Contact")}


def _own(subscribers: pd.DataFrame, list_id: str) -> pd.Series:
    """Which Salesforce subscriber rows belong to this audience (the rest are other audiences')."""
    if subscribers.empty:
        return pd.Series(False, index=subscribers.index, dtype=bool)
    return subscribers[SUBSCRIBER_KEY].astype(str).str.startswith(f"{list_id}:")


def _other_audiences(stage: Stage, subscribers_sf: pd.DataFrame, list_id: str) -> pd.DataFrame:
    """Statuses of the same emails in other audiences: Salesforce's, overlaid with this run's."""
    columns = [SUBSCRIBER_KEY, "Email__c", "Status__c"]
    known = subscribers_sf[~_own(subscribers_sf, list_id)] if len(subscribers_sf) else subscribers_sf
    frames = [known.reindex(columns=columns)] + [s.read("valid", columns).reindex(columns=columns)
                                                 for s in stage.siblings()]
    merged = pd.concat([f for f in frames if len(f)], ignore_index=True) if any(len(f) for f in frames) \
        else pd.DataFrame(columns=columns)
    return merged.drop_duplicates(SUBSCRIBER_KEY, keep="last")


def _link_leads_made_elsewhere(reader: McsfSalesforceHook, mapping: AudienceMapping, stage: Stage,
                               valid: pd.DataFrame, links: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Link unlinked subscribers to Leads another audience of the run created in phase 1, and plan
    this audience's field updates for them (as if they had been matched in phase 1).

    Those audiences staged the Leads they wrote (:func:`load_people`): a Lead they created holds
    the values they sent and nothing else, so it is not read back; only a Lead their create found
    already there (by its key) is looked up. A first sync's thousands of shared newcomers cost no
    request. Returns the links and the Lead updates.
    """
    loose = links["Lead__c"].isna() & links["Contact__c"].isna() & links[LEAD_REF].isna()
    made = _leads_created_by_others(stage, mapping) if loose.any() else pd.DataFrame(columns=[LEAD_KEY])
    loose &= isin(valid["_email_norm"], made[LEAD_KEY])
    if not loose.any():
        return links, pd.DataFrame(columns=["Id"])
    created = made["_created"].astype(bool)
    new = made[created]
    found = new.assign(Email=new[LEAD_KEY], LastModifiedDate=None, HasOptedOutOfEmail=False)
    existed = made.loc[~created, LEAD_KEY]
    if len(existed):
        found = pd.concat([found, lookup.fetch_by_values(
            reader, "Lead", ["Email", "LastModifiedDate", "HasOptedOutOfEmail", *mapping.lead_fields().values()],
            LEAD_KEY, valid.loc[loose & isin(valid["_email_norm"], existed), "_email_norm"].tolist())],
            ignore_index=True)
    if found.empty:
        return links, pd.DataFrame(columns=["Id"])
    best = best_match(found)
    ids = valid.loc[loose, "_email_norm"].map(best.set_index("_email_norm")["Id"])
    linked = links.copy()
    linked.loc[loose, "Lead__c"] = ids
    hit = ids.dropna().index
    people = valid.loc[hit, [c for c in valid.columns if c.startswith("Lead.")]]
    people = offered(valid.loc[hit], people, _rivals(_others(stage, mapping, valid.loc[hit]), valid.loc[hit]),
                     mapping.audience_id)
    return linked, field_updates(valid.loc[hit], people, ids[hit], best, "Lead", mapping, _sf_types(stage))


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
    current = _memberships(reader, desired.loc[segments["type"] == "static", "MC_Segment_Key__c"].tolist())
    have = current["MC_Segment_Member_Key__c"] if len(current) else []
    new, unsynced = _of_synced_subscribers(reader, stage, wanted[~isin(wanted["MC_Segment_Member_Key__c"], have)])
    if unsynced:
        log.info("%s: %s segment memberships not written: their member is not a synced subscriber (archived in "
                 "Mailchimp, or rejected: see the rejects)", mapping.label, unsynced)
    out["MC_Segment_Member__c"] = writes.write(sf, "MC_Segment_Member__c", new.assign(_is_new=True),
                                               external_id="MC_Segment_Member_Key__c", stage=stage, dry_run=dry)
    gone = current[~isin(current["MC_Segment_Member_Key__c"], wanted["MC_Segment_Member_Key__c"])] \
        if len(current) else current
    removed = writes.delete(sf, "MC_Segment_Member__c", gone["Id"].tolist() if len(gone) else [], dry_run=dry)
    out["MC_Segment_Member__c (left)"] = writes.Outcome(updated=len(gone) - removed.failed, failed=removed.failed,
                                                        rejects=removed.rejects)
    return out


def _memberships(reader: McsfSalesforceHook, segment_keys: list[str]) -> pd.DataFrame:
    """Salesforce's memberships of these static segments: counted first, then read in one go
    (:data:`SEGMENTS_PER_READ` segments a query). A first load, whose segments have none yet, costs
    one request however many segments and tags the audience has, instead of a read per segment."""
    columns = ["Id", "MC_Segment_Member_Key__c"]
    frames = [
        lookup.fetch_all(reader, "MC_Segment_Member__c", columns, " OR ".join(
            f"MC_Segment_Member_Key__c LIKE {lookup.soql_quote(key + ':%')}" for key in chunk), expected_rows=None)
        for chunk in (segment_keys[i:i + SEGMENTS_PER_READ] for i in range(0, len(segment_keys), SEGMENTS_PER_READ))
    ]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def _of_synced_subscribers(reader: McsfSalesforceHook, stage: Stage, new: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """The memberships whose subscriber is in Salesforce (loaded in this run or before), and how many
    are not. Those would be refused ("foreign key not found") run after run: Mailchimp lists archived
    members in segments, and members this sync rejected have no subscriber to point to.
    """
    if new.empty:
        return new, 0
    keys = new["Subscriber__r.MC_Subscriber_Key__c"]
    synced = isin(keys, stage.read("valid", [SUBSCRIBER_KEY])[SUBSCRIBER_KEY])
    rest = keys[~synced].drop_duplicates().tolist()
    if rest:  # loaded by an earlier run, or never
        synced |= isin(keys, lookup.fetch_by_values(reader, SUBSCRIBER, [SUBSCRIBER_KEY], SUBSCRIBER_KEY, rest)
                       [SUBSCRIBER_KEY])
    return new[synced], int((~synced).sum())


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
