"""Where leads are decided: match subscribers to Contacts and Leads, plan creates and updates (pure).

Rules (documented in the README, tested in tests/plugins/mcsf/test_leads.py):

- **Matching.** An email is compared trimmed and lower-cased. Contacts are tried first, then
  Leads. When several records of the winning kind match, the most recently modified wins
  (``LastModifiedDate``, then the larger Id for a stable order).
- **Creating.** Only when nothing matches, the audience allows it (``leads.create``) and the
  member is ``subscribed`` or ``pending`` (unsubscribed, cleaned and archived people are not
  prospects). One Lead per email whatever the batch holds: the create is an upsert on
  ``Lead.MC_Email_Key__c`` (the matching form of the email), so a retry updates that Lead
  instead of creating another. When several audiences of a run would create the same person's
  Lead, the one with the smallest audience id creates it, whatever order their tasks run in;
  the others link to it afterwards and update it by their fields' policies, as a matched Lead.
  The new Lead's ``Email`` is that matching form too (trimmed, lower-case), so backfilled
  intervals give the same Lead whatever order they run in.
  Required fields come from mapped values, then ``leads.defaults``; a Lead still missing
  ``LastName`` or ``Company`` is rejected with the reason.
- **Updating.** Mapped fields flow Mailchimp -> Salesforce when their direction says so;
  ``overwrite: always`` replaces a different value, ``if_blank`` fills only an empty one. A blank
  Mailchimp value never clears Salesforce data. Only fields that change are sent. When several
  audiences of a run hold a value for the same person's field, the latest-changed subscriber's
  offers it (ties: the smallest audience id) under its own audience's policy, and the others
  leave that field alone: the end state does not depend on the order their tasks run in.
  (A new Lead is still created with its creating audience's values; the winner updates it after.)
- **Opting out.** ``HasOptedOutOfEmail`` is set (never cleared: an opt-out may have come from
  elsewhere) by ``opt_out_policy``: ``any_audience`` — unsubscribed or cleaned here;
  ``all_audiences`` — and in every other audience Salesforce knows the email in; ``never``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mcsf.mapping import isin, loose_canonical_series, normalize_email

if TYPE_CHECKING:
    from collections.abc import Collection

    from mcsf.config import AudienceMapping

LEAD_KEY = "MC_Email_Key__c"
LEAD_REF = "Lead__r.MC_Email_Key__c"
CREATABLE_STATUSES = frozenset({"subscribed", "pending"})
GONE_STATUSES = frozenset({"unsubscribed", "cleaned", "archived", "deleted"})
REQUIRED_LEAD_FIELDS = ("LastName", "Company")


@dataclass
class LeadPlan:
    """What to write for people; indexes of ``links`` follow the subscriber frame."""

    links: pd.DataFrame  # Lead__c, Contact__c, Lead__r.MC_Email_Key__c (None where not linked)
    lead_creates: pd.DataFrame  # MC_Email_Key__c + Lead fields
    lead_updates: pd.DataFrame  # Id + changed Lead fields
    contact_updates: pd.DataFrame  # Id + changed Contact fields
    rejects: pd.DataFrame  # subscriber index -> _reason, for would-be Leads that cannot be created
    counts: dict[str, int] = field(default_factory=dict)


def best_match(records: pd.DataFrame) -> pd.DataFrame:
    """One record per matching email: the most recently modified (ties: larger Id).

    :param records: Salesforce rows with ``Id``, ``Email``, ``LastModifiedDate``
    """
    if records.empty:
        return records.assign(_email_norm=pd.Series(dtype=object))
    ranked = records.assign(
        _email_norm=records["Email"].map(normalize_email),
        _modified=loose_canonical_series(records["LastModifiedDate"], "datetime").fillna(""),
    )
    ranked = ranked[ranked["_email_norm"] != ""]
    ranked = ranked.sort_values(["_email_norm", "_modified", "Id"], ascending=[True, False, False])
    return ranked.drop_duplicates("_email_norm", keep="first").drop(columns="_modified")


def plan_people(
    subscribers: pd.DataFrame,
    people: pd.DataFrame,
    contacts: pd.DataFrame,
    leads: pd.DataFrame,
    mapping: AudienceMapping,
    sf_types: dict[str, dict[str, str]],
    created_elsewhere: Collection[str] = (),
    rivals: pd.DataFrame | None = None,
) -> LeadPlan:
    """Decide links, creates and updates for one audience's changed subscribers.

    :param subscribers: from :func:`mcsf.mapping.to_subscribers` (``_email_norm``, ``Status__c``,
        ``Last_Changed__c``)
    :param people: from :func:`mcsf.mapping.person_values` (``Lead.X``/``Contact.X``), same index
    :param contacts: existing Contacts with ``Id, Email, LastModifiedDate, HasOptedOutOfEmail`` and
        the mapped Contact fields
    :param leads: existing Leads, likewise (plus ``MC_Email_Key__c``)
    :param sf_types: ``{"Lead": {field: type}, "Contact": {...}}`` for canonical comparison
    :param created_elsewhere: emails (matching form) whose new Lead another audience of the run
        creates (:func:`new_lead_emails` of theirs): not created here too, and left unlinked for
        phase 2 of the load to link
    :param rivals: the run's other audiences' rows for these emails (:func:`outranked`): fields
        they hold with priority are not updated from here
    """
    contact_match, lead_match, contact_ids, lead_ids = _matches(subscribers["_email_norm"], contacts, leads)
    email = subscribers["_email_norm"]
    links = pd.DataFrame(index=subscribers.index, columns=["Lead__c", "Contact__c", LEAD_REF], dtype=object)
    has_contact = contact_ids.notna()
    has_lead = lead_ids.notna() & ~has_contact
    links.loc[has_contact, "Contact__c"] = contact_ids[has_contact]
    links.loc[has_lead, "Lead__c"] = lead_ids[has_lead]

    creates, rejects, wants_lead = _creates(subscribers, people, has_contact | has_lead, mapping)
    created_ok = wants_lead & ~subscribers.index.isin(rejects.index)
    planned = len(creates)
    if len(created_elsewhere) and planned:
        creates = creates[~isin(creates[LEAD_KEY], created_elsewhere)].reset_index(drop=True)
        # left unlinked here: phase 2 links them to that Lead and applies this audience's values
        # to it by the fields' policies, as for any matched Lead (audience_load._link_leads_made_elsewhere)
        created_ok &= ~isin(email, created_elsewhere)
    links.loc[created_ok, LEAD_REF] = email[created_ok]

    mine = offered(subscribers, people, rivals, mapping.audience_id)
    contact_updates = field_updates(subscribers[has_contact], mine[has_contact], contact_ids[has_contact],
                                    contact_match, "Contact", mapping, sf_types)
    lead_updates = field_updates(subscribers[has_lead], mine[has_lead], lead_ids[has_lead],
                                 lead_match, "Lead", mapping, sf_types)
    counts = {
        "contacts_linked": int(has_contact.sum()),
        "leads_linked": int(has_lead.sum()),
        "leads_to_create": len(creates),
        "leads_created_by_another_audience": planned - len(creates),
        "lead_creates_rejected": len(rejects),
        "contacts_to_update": len(contact_updates),
        "leads_to_update": len(lead_updates),
    }
    return LeadPlan(links, creates, lead_updates, contact_updates, rejects, counts)


def outranked(subscribers: pd.DataFrame, people: pd.DataFrame, rivals: pd.DataFrame | None,
              audience_id: str) -> pd.DataFrame:
    """Where another audience of the run offers the same person's field with priority: True cells,
    shaped like ``people``.

    A rival wins a field when it holds a value for it and its subscriber changed later, or at the
    same time and its audience id is smaller. Every audience of the run computes the same winner
    from the same staged rows, so exactly one of them offers each value.

    :param subscribers: ``_email_norm`` and ``Last_Changed__c``, same index as ``people``
    :param rivals: the other audiences' rows: ``_email_norm``, ``Last_Changed__c``, ``_audience``
        and their ``Lead.X``/``Contact.X`` values (None or empty: nobody else)
    """
    beaten = pd.DataFrame(False, index=people.index, columns=people.columns)
    if rivals is None or rivals.empty or people.empty:
        return beaten
    email = subscribers["_email_norm"]
    mine = subscribers["Last_Changed__c"].fillna("").astype(str)
    for column in people.columns.intersection(rivals.columns):
        held = rivals[rivals[column].notna()]
        if held.empty:
            continue
        held = held.assign(_changed=held["Last_Changed__c"].fillna("").astype(str))
        best = (held.sort_values(["_changed", "_audience"], ascending=[False, True])
                .drop_duplicates("_email_norm").set_index("_email_norm"))
        changed, audience = email.map(best["_changed"]), email.map(best["_audience"])
        beaten[column] = (changed.notna() & ((changed > mine) | ((changed == mine) & (audience < audience_id)))
                          ).to_numpy(dtype=bool)
    return beaten


def offered(subscribers: pd.DataFrame, people: pd.DataFrame, rivals: pd.DataFrame | None,
            audience_id: str) -> pd.DataFrame:
    """``people`` with the values another audience of the run offers instead (:func:`outranked`) blanked."""
    return people.mask(outranked(subscribers, people, rivals, audience_id))


def new_lead_emails(subscribers: pd.DataFrame, people: pd.DataFrame, contacts: pd.DataFrame, leads: pd.DataFrame,
                    mapping: AudienceMapping) -> pd.Series:
    """The emails :func:`plan_people` would create Leads for (its matching half, without the
    updates), e.g. another audience's, to leave those Leads to it."""
    _, _, contact_ids, lead_ids = _matches(subscribers["_email_norm"], contacts, leads)
    creates, _, _ = _creates(subscribers, people, contact_ids.notna() | lead_ids.notna(), mapping)
    return creates[LEAD_KEY] if len(creates) else pd.Series([], dtype=object)


def _matches(email: pd.Series, contacts: pd.DataFrame, leads: pd.DataFrame
             ) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, pd.Series]:
    """The best Contact and Lead per email, and each subscriber's matched Contact and Lead ids."""
    contact_match = best_match(contacts).set_index("_email_norm")
    lead_match = best_match(leads).set_index("_email_norm")
    contact_ids = email.map(contact_match["Id"]) if not contact_match.empty else pd.Series(None, index=email.index)
    lead_ids = email.map(lead_match["Id"]) if not lead_match.empty else pd.Series(None, index=email.index)
    return contact_match, lead_match, contact_ids, lead_ids


def _creates(subscribers: pd.DataFrame, people: pd.DataFrame, matched: pd.Series, mapping: AudienceMapping
             ) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series]:
    """New Leads for the unmatched subscribers who may become one, their rejects, and who wanted one."""
    email = subscribers["_email_norm"]
    wants_lead = ~matched & subscribers["Status__c"].isin(CREATABLE_STATUSES) & (email != "")
    if not mapping.leads.create:
        wants_lead &= False
    creates, rejects = _lead_creates(subscribers[wants_lead], people.loc[wants_lead[wants_lead].index], mapping)
    return creates, rejects, wants_lead


def _lead_creates(subs: pd.DataFrame, people: pd.DataFrame,
                  mapping: AudienceMapping) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One new Lead per email (the latest-changed subscriber row wins); rows missing required fields rejected."""
    if subs.empty:
        return pd.DataFrame(columns=[LEAD_KEY]), pd.DataFrame(columns=["_reason"])
    lead_cols = [c for c in people.columns if c.startswith("Lead.")]
    frame = people[lead_cols].rename(columns=lambda c: c.removeprefix("Lead."))
    # The matching form, not the member's spelling: which audience creates the Lead first must
    # not decide its Email (backfills run in any order).
    frame["Email"] = subs["_email_norm"]
    frame[LEAD_KEY] = subs["_email_norm"]
    for name, value in mapping.leads.defaults.items():
        frame[name] = frame[name].where(frame[name].notna(), value) if name in frame else value
    frame["LeadSource"] = mapping.leads.lead_source
    if mapping.leads.status:
        frame["Status"] = mapping.leads.status
    missing = pd.Series("", index=frame.index, dtype=object)
    for required in REQUIRED_LEAD_FIELDS:
        blank = frame[required].isna() if required in frame else pd.Series(True, index=frame.index)
        missing[blank] = missing[blank].map(lambda m, r=required: f"{m}, {r}" if m else r)
    bad = missing != ""
    rejects = pd.DataFrame(
        {"_reason": "cannot create Lead: no value for " + missing[bad]
         + " (map a merge field to it or add it to leads.defaults)"},
        index=frame.index[bad],
    )
    good = frame[~bad].assign(_changed=subs.loc[~bad, "Last_Changed__c"].fillna(""))
    good = good.sort_values("_changed", ascending=False).drop_duplicates(LEAD_KEY).drop(columns="_changed")
    return good.reset_index(drop=True), rejects


def opt_out_updates(subscribers: pd.DataFrame, links: pd.DataFrame, contacts: pd.DataFrame, leads: pd.DataFrame,
                    others: pd.DataFrame, mapping: AudienceMapping) -> dict[str, pd.DataFrame]:
    """``HasOptedOutOfEmail`` updates for linked records, by the audience's ``opt_out_policy``.

    Decided after every audience of the run has been read (phase 2 of the load), so
    ``all_audiences`` sees the other audiences' statuses of this very run, not last run's.

    :param links: ``Lead__c``/``Contact__c`` per subscriber (same index)
    :param others: ``Email__c, Status__c`` of the email's subscriber rows in other audiences
    :param contacts: linked Contacts' current ``Id, HasOptedOutOfEmail`` (Leads likewise)
    """
    out = _opted_out(subscribers, others, mapping)
    updates = {}
    for object_name, column, current in (("Contact", "Contact__c", contacts), ("Lead", "Lead__c", leads)):
        ids = links.loc[out & links[column].notna(), column].drop_duplicates()
        already = set(current.loc[loose_canonical_series(current["HasOptedOutOfEmail"], "boolean").eq("true")
                                  .to_numpy(), "Id"]) if len(current) else set()
        ids = ids[~ids.isin(already)]
        updates[object_name] = pd.DataFrame({"Id": ids.tolist(), "HasOptedOutOfEmail": "true"})
    return updates


def _opted_out(subs: pd.DataFrame, others: pd.DataFrame, mapping: AudienceMapping) -> pd.Series:
    policy = str(mapping.opt_out_policy)
    gone_here = subs["Status__c"].isin(GONE_STATUSES - {"archived"})
    if policy == "never":
        return pd.Series(False, index=subs.index)
    if policy == "any_audience" or others.empty:
        return gone_here
    other = others.assign(_email_norm=others["Email__c"].map(normalize_email))
    still_in = other[~other["Status__c"].isin(GONE_STATUSES)]["_email_norm"]
    return gone_here & ~isin(subs["_email_norm"], still_in)


def field_updates(subs: pd.DataFrame, people: pd.DataFrame, ids: pd.Series, current: pd.DataFrame,
             object_name: str, mapping: AudienceMapping, sf_types: dict[str, dict[str, str]]) -> pd.DataFrame:
    """Changed fields of matched records, one row per record Id (latest-changed subscriber wins)."""
    if subs.empty:
        return pd.DataFrame(columns=["Id"])
    policies = {f: m.overwrite for m in mapping.fields
                for f in ([m.lead_field] if object_name == "Lead" else [m.contact_field])
                if f and str(m.direction) != "salesforce_to_mailchimp"}
    types = sf_types.get(object_name, {})
    # Column at a time, not record at a time (200,000 matched people in a first sync of a million).
    order = subs["Last_Changed__c"].fillna("").sort_values(ascending=False).index
    ordered = ids[order]
    first = ordered[~ordered.duplicated(keep="first")]  # the latest-changed subscriber of each record
    have = (current.drop_duplicates("Id").set_index("Id") if not current.empty else current).reindex(first.to_numpy())
    changes: dict[str, np.ndarray] = {}
    for field_name, overwrite in policies.items():
        column = f"{object_name}.{field_name}"
        if column not in people:
            continue
        want = people[column].reindex(first.index)
        held = have[field_name] if field_name in have else pd.Series(None, index=have.index, dtype=object)
        old = pd.Series(loose_canonical_series(held, types.get(field_name, "string")).to_numpy(), index=want.index)
        write = want.notna() & (old.isna() | (old != want))
        if str(overwrite) == "if_blank":
            write &= old.isna()
        changes[field_name] = np.where(write.to_numpy(), want.to_numpy(dtype=object), None)
    if not changes:
        return pd.DataFrame(columns=["Id"])
    changed = np.column_stack([v != None for v in changes.values()])  # noqa: E711 - elementwise
    keep = changed.any(axis=1)
    if not keep.any():
        return pd.DataFrame(columns=["Id"])
    # Rows in the loop's order; columns in order of first appearance, as a frame built row by row has them.
    kept = changed[keep]
    present = sorted((i for i in range(kept.shape[1]) if kept[:, i].any()),
                     key=lambda i: (int(np.argmax(kept[:, i])), i))
    names = [list(changes)[i] for i in present]
    return pd.DataFrame({"Id": first.to_numpy()[keep],
                         **{n: np.where(changes[n][keep] == None, np.nan, changes[n][keep]) for n in names}})  # noqa: E711
