"""A starter mapping file for one audience, from its live merge fields and the Lead/Contact describe.

``python -m mcsf scaffold AUDIENCE_ID`` calls :func:`scaffold_mapping` and writes the text.
Merge fields are matched to Salesforce fields by well-known tag (FNAME -> FirstName, the parts
of ADDRESS -> Street/City/…), then by name or label; a match must exist, be writable and fit
by type (:data:`mcsf.preflight.COMPATIBLE`). Unmatched merge fields are listed as comments,
so the user sees what is left to decide. The output is valid YAML that passes
:func:`mcsf.config.load_mapping`; every key carries a short comment.
"""

from __future__ import annotations

import json
import re
from typing import Any

from mcsf.preflight import COMPATIBLE

#: Well-known merge tags -> (Lead field, Contact field).
KNOWN_TAGS: dict[str, tuple[str | None, str | None]] = {
    "FNAME": ("FirstName", "FirstName"),
    "LNAME": ("LastName", "LastName"),
    "PHONE": ("Phone", "Phone"),
    "MOBILE": ("MobilePhone", "MobilePhone"),
    "COMPANY": ("Company", None),
    "TITLE": ("Title", "Title"),
    "JOBTITLE": ("Title", "Title"),
    "WEBSITE": ("Website", None),
    "INDUSTRY": ("Industry", None),
}
#: Address parts -> (Lead field, Contact field).
ADDRESS_TARGETS: dict[str, tuple[str, str]] = {
    "addr1": ("Street", "MailingStreet"),
    "city": ("City", "MailingCity"),
    "state": ("State", "MailingState"),
    "zip": ("PostalCode", "MailingPostalCode"),
    "country": ("Country", "MailingCountry"),
}
Fields = dict[str, dict[str, Any]]  # {field name: describe of the field}


def scaffold_mapping(
    audience: dict[str, Any], merge_fields: list[dict[str, Any]], lead: Fields, contact: Fields
) -> str:
    """The text of a commented starter mapping file.

    :param audience: GET /lists/{id} (``id``, ``name``)
    :param merge_fields: GET /lists/{id}/merge-fields items (``tag``, ``name``, ``type``)
    :param lead: the Lead describe's fields by name
    :param contact: the Contact describe's fields by name
    """
    entries: list[str] = []
    unmatched: list[str] = []
    for mf in merge_fields:
        tag, mtype = str(mf["tag"]), str(mf["type"])
        label = " ".join(str(mf.get("name") or tag).split())  # one line, whatever Mailchimp holds
        if mtype == "address":
            parts = [(f"{tag}.{part}", f"{label}: {part}", _fit(lead, ln, "address_part"),
                      _fit(contact, cn, "address_part")) for part, (ln, cn) in ADDRESS_TARGETS.items()]
        else:
            known = KNOWN_TAGS.get(tag, (None, None))
            parts = [(tag, f"{label} ({mtype})", _fit(lead, known[0], mtype) or _by_name(lead, mf, mtype),
                      _fit(contact, known[1], mtype) or _by_name(contact, mf, mtype))]
        for merge_tag, note, lead_field, contact_field in parts:
            if lead_field or contact_field:
                entries.append(_entry(merge_tag, lead_field, contact_field, note))
            else:
                unmatched.append(f"#   {merge_tag}: {note} — no writable Lead or Contact field fits")
    required = [n for n, f in lead.items() if f.get("createable") and not f.get("nillable", True)
                and not f.get("defaultedOnCreate")]
    return _render(audience, entries[:80], unmatched, required)


def _fit(fields: Fields, name: str | None, kind: str) -> str | None:
    """``name`` if that field exists, is writable and fits the merge type."""
    f = fields.get(name or "")
    if f and f.get("updateable") and f.get("type") in COMPATIBLE.get(kind, ()):
        return name
    return None


def _by_name(fields: Fields, mf: dict[str, Any], kind: str) -> str | None:
    """A writable, fitting field whose API name or label equals the merge field's tag or name."""
    wanted = {_norm(mf["tag"]), _norm(str(mf.get("name") or ""))} - {""}
    for name, f in sorted(fields.items()):
        if {_norm(name.removesuffix("__c")), _norm(str(f.get("label") or ""))} & wanted:
            found = _fit(fields, name, kind)
            if found and name not in ("Email", "Id", "MC_Email_Key__c"):
                return found
    return None


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def _q(value: Any) -> str:
    """A YAML scalar: JSON strings are valid double-quoted YAML."""
    return json.dumps(value, ensure_ascii=False)


def _entry(merge_tag: str, lead_field: str | None, contact_field: str | None, label: str) -> str:
    lines = [f"  - merge_tag: {merge_tag}".ljust(36) + f"# {label}"]
    if lead_field:
        lines.append(f"    lead_field: {lead_field}")
    if contact_field:
        lines.append(f"    contact_field: {contact_field}")
    lines += ["    direction: mailchimp_to_salesforce", "    overwrite: if_blank"]
    return "\n".join(lines)


def _render(audience: dict[str, Any], entries: list[str], unmatched: list[str], required: list[str]) -> str:
    name = str(audience.get("name") or audience["id"])
    lead_note = ", ".join(required) or "none"
    out = [
        f"# mcsf mapping for the Mailchimp audience {name!r} — generated by `python -m mcsf scaffold`.",
        "# Review every entry, then run `python -m mcsf check`. All keys: include/mappings/README.md",
        f"audience_id: {_q(audience['id'])}",
        f"name: {_q(name)}",
        "sync_mode: subscribers_only   # activity (members + campaign activity) | subscribers_only | off",
        "# segment_id: 123             # only sync members of this segment",
        "opt_out_policy: all_audiences # opt out when gone from: all_audiences | any_audience | never",
        "max_reject_share: 0.1         # fail the run when more than this share of rows is rejected",
        "# activity_retention_days: 365  # delete older activity from Salesforce (default: keep all)",
        "leads:",
        f"  create: false                # true: unmatched members become Leads (needs {lead_note})",
        "  defaults:                    # values every new Lead gets when the mapped value is blank",
        f"    Company: {_q('[not provided]')}",
        f"    LastName: {_q('[not provided]')}" if "LastName" in required else "",
        f"  lead_source: {_q('Mailchimp')}",
        "# Merge tag <-> Lead / Contact field, at most 80 entries. direction: mailchimp_to_salesforce |",
        "# salesforce_to_mailchimp | both; overwrite: if_blank (only fill empty Salesforce values) | always.",
        "fields:",
        *(entries or ["  []"]),
    ]
    if unmatched:
        out += ["# Merge fields without a match (map them by hand, or leave them out):", *unmatched]
    out += ["# create_merge_fields:          # merge fields preflight creates when the audience lacks them",
            "#   - tag: COMPANY", f"#     name: {_q('Company')}", "#     type: text", ""]
    return "\n".join(line for line in out if line != "") + "\n"
