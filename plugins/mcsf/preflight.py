"""Preflight: check the mappings against the live Mailchimp account and Salesforce org.

The first task of both DAGs and ``python -m mcsf check``. It collects *every* problem — the
connections, the Mailchimp role, audiences, segments and merge tags, the Salesforce fields and
whether they can be written, type fits, what lead creation needs — and writes nothing unless
there are none; then, and only then, it creates the declared merge fields (idempotently).

Length mismatches (a 255-character merge value into a 40-character Salesforce field) and free
text into a restricted picklist are *warnings*: most values fit, and the ones that do not are
rejected row by row with a reason by the validate step. Choices of a dropdown that a restricted
picklist lacks are problems: those values can never load.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mcsf.config import (
    AudienceMapping,
    ConfigProblem,
    FieldMap,
    MergeType,
    SyncMode,
    problem_at,
)

if TYPE_CHECKING:
    from mcsf.hooks.mailchimp import MailchimpHook
    from mcsf.hooks.salesforce import McsfSalesforceHook

#: Mailchimp roles whose API keys may read audiences and create merge fields.
ALLOWED_ROLES = ("owner", "admin", "manager")
#: Which Salesforce field types a merge field type may feed (and be fed from).
COMPATIBLE: dict[str, frozenset[str]] = {
    "text": frozenset({"string", "textarea", "picklist", "email", "phone", "url"}),
    "number": frozenset({"double", "int", "currency", "percent", "string"}),
    "date": frozenset({"date", "string"}),
    "birthday": frozenset({"string"}),  # MM/DD without a year cannot fill a Salesforce date
    "phone": frozenset({"phone", "string"}),
    "url": frozenset({"url", "string"}),
    "imageurl": frozenset({"url", "string"}),
    "address_part": frozenset({"string", "textarea"}),
    "dropdown": frozenset({"picklist", "string"}),
    "radio": frozenset({"picklist", "string"}),
    "zip": frozenset({"string"}),
}
MC_TEXT_MAX = 255  # Mailchimp stores at most 255 characters per merge value
_TEXT_TYPES = frozenset({"string", "textarea", "email", "phone", "url"})
PEOPLE = ("Lead", "Contact")
#: The custom objects mcsf writes (include/salesforce/); preflight fails when one is missing.
MCSF_OBJECTS = ("MC_Audience__c", "MC_Subscriber__c", "MC_Segment__c", "MC_Segment_Member__c",
                "MC_Interest__c", "MC_Campaign__c", "MC_Activity__c")
LEAD_KEY = "MC_Email_Key__c"  # the upsert key of the Leads mcsf creates

Describes = dict[str, dict[str, dict[str, Any]]]  # {"Lead": {field name: describe of the field}}


@dataclass
class PreflightReport:
    """What preflight found and did. ``requests`` counts API requests per system."""

    problems: list[ConfigProblem] = field(default_factory=list)
    merge_fields_created: list[str] = field(default_factory=list)
    audiences_checked: int = 0
    requests: dict[str, int] = field(default_factory=dict)
    warnings: list[ConfigProblem] = field(default_factory=list)
    lists: dict[str, dict[str, Any]] = field(default_factory=dict)  # every audience id -> id, name, stats
    merge_fields_missing: list[str] = field(default_factory=list)  # declared, absent, not created (yet)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        """One line for the task log and the command line."""
        calls = ", ".join(f"{k} {v}" for k, v in sorted(self.requests.items())) or "none"
        created = ", ".join(self.merge_fields_created) or "none"
        if self.merge_fields_missing:
            created += f" (not created: {', '.join(self.merge_fields_missing)})"
        return (f"preflight {'passed' if self.ok else 'FAILED'}: {_n(self.problems, 'problem')}, "
                f"{_n(self.warnings, 'warning')}; audiences checked: {self.audiences_checked}; "
                f"merge fields created: {created}; API requests: {calls}")


def run_preflight(
    mappings: list[AudienceMapping],
    mailchimp: MailchimpHook,
    salesforce: McsfSalesforceHook,
    *,
    create_merge_fields: bool = True,
    deep: set[str] | None = None,
    lists: dict[str, dict[str, Any]] | None = None,
    account: bool = True,
) -> PreflightReport:
    """Check every mapping against both systems; create declared merge fields only if all is well.

    Audiences with ``sync_mode: off`` are not checked against the APIs.

    :param mappings: from :func:`mcsf.config.load_mappings`
    :param create_merge_fields: False only reports what would be created
    :param deep: audience ids to check in full (role, merge fields, segment, Salesforce fields);
        the others are only looked up in the account's audience list, one request for all. None:
        every audience in full. The hourly sync checks in full what it is about to map: a first
        or full load, or an audience with members changed in the window.
    :param lists: the account's audiences as an earlier preflight of the same run found them: the
        connections, the key's role and mcsf's objects are then taken as checked (not asked again)
    :param account: False: an audience missing from the account's audience list is a problem only
        when it is checked in full (an hourly run: the others' own members read proves them, and an
        audience deleted from Mailchimp fails its own extract, not the run). The list is read
        either way, one request for all: it carries every audience's stats for ``MC_Audience__c``
    """
    report = PreflightReport()
    before = _requests_used(mailchimp, salesforce)
    active = [m for m in mappings if m.sync_mode is not SyncMode.OFF]
    full = [m for m in active if deep is None or m.audience_id in deep]
    report.problems += duplicate_audiences(mappings)
    everything = deep is None
    if lists is not None:
        mc_ok, report.lists = True, lists
    else:
        mc_ok = _check_mailchimp_account(mailchimp, report, role=everything or bool(full))
    people = _describe_people(salesforce, report, objects=lists is None) if everything or full else None
    pending: list[tuple[AudienceMapping, list[dict[str, Any]]]] = []
    for m in active:
        report.audiences_checked += 1
        if mc_ok and m.audience_id not in report.lists and (account or m in full):
            report.problems.append(problem_at(m, ("audience_id",), f"cannot read audience {m.audience_id} in "
                                              "this Mailchimp account — copy the id from Audience → Settings"))
            continue
        if m not in full:
            continue
        merge_fields = _read_audience(m, mailchimp, report) if mc_ok else None
        problems, warnings = check_mapping(m, merge_fields, people)
        report.problems += problems
        report.warnings += warnings
        if merge_fields is not None:
            existing = {f["tag"] for f in merge_fields}
            missing = [d.as_api_body() for d in m.create_merge_fields if d.tag not in existing]
            if missing:
                pending.append((m, missing))
    report.merge_fields_missing = [f"{m.audience_id}:{b['tag']}" for m, bodies in pending for b in bodies]
    if report.ok and create_merge_fields:
        report.merge_fields_missing = []
        from mcsf.hooks.mailchimp import MailchimpApiError

        for m, bodies in pending:
            try:
                created = mailchimp.ensure_merge_fields(m.audience_id, bodies)
            except MailchimpApiError as err:
                report.problems.append(problem_at(m, ("create_merge_fields",), f"Mailchimp refused to create "
                                                  f"the merge fields: {err} — fix the declaration"))
                continue
            report.merge_fields_created += [f"{m.audience_id}:{f['tag']}" for f in created]
    after = _requests_used(mailchimp, salesforce)
    report.requests = {k: after[k] - before[k] for k in after}
    return report


def duplicate_audiences(mappings: list[AudienceMapping]) -> list[ConfigProblem]:
    """The loader refuses these already; checked again for callers that assemble mappings."""
    first: dict[str, AudienceMapping] = {}
    out = []
    for m in mappings:
        if m.audience_id in first:
            out.append(problem_at(m, ("audience_id",), f"audience {m.audience_id} is also configured in "
                                  f"{first[m.audience_id].source_file} — keep one file per audience"))
        first.setdefault(m.audience_id, m)
    return out


# --- the pure part: one mapping against what the APIs said ---------------------------------------

Loc = tuple[str | int, ...]


@dataclass
class _Findings:
    """Problems and warnings of one mapping, located in its file."""

    mapping: AudienceMapping
    problems: list[ConfigProblem] = field(default_factory=list)
    warnings: list[ConfigProblem] = field(default_factory=list)
    short: list[str] = field(default_factory=list)  # text targets shorter than a merge value may be

    def problem(self, loc: Loc, message: str) -> None:
        self.problems.append(problem_at(self.mapping, loc, message))

    def warn(self, loc: Loc, message: str) -> None:
        self.warnings.append(problem_at(self.mapping, loc, message))


def check_mapping(
    m: AudienceMapping, merge_fields: list[dict[str, Any]] | None, people: Describes | None
) -> tuple[list[ConfigProblem], list[ConfigProblem]]:
    """Problems and warnings of one mapping; no I/O.

    :param merge_fields: the audience's merge fields (GET merge-fields); None: Mailchimp unreachable
    :param people: ``{"Lead": {name: field describe}, "Contact": {…}}``; None: Salesforce unreachable
    """
    out = _Findings(m)
    merge = _merge_fields(out, merge_fields) if merge_fields is not None else None
    for i, f in enumerate(m.fields):
        mf = merge.get(f.base_tag) if merge is not None else None
        if merge is not None and mf is None:
            out.problem(("fields", i, "merge_tag"), f"merge tag {f.base_tag} does not exist in audience "
                        f"{m.audience_id} (it has {', '.join(sorted(merge)) or 'none'}) — fix the tag or "
                        "declare it under create_merge_fields")
            continue
        kind = _merge_kind(out, i, f, mf["type"]) if mf else None
        choices = set((mf or {}).get("options", {}).get("choices") or []) if mf else None
        targets = (("Lead", "lead_field", f.lead_field), ("Contact", "contact_field", f.contact_field))
        for obj, key, name in targets:
            if name and people is not None:
                _check_target(out, ("fields", i, key), f, obj, people[obj], name, kind, choices)
    if out.short:  # one line per file: every standard name field is shorter than 255
        out.warn(("fields",), f"Salesforce fields shorter than Mailchimp's {MC_TEXT_MAX} characters: "
                 f"{', '.join(out.short)} — longer values are rejected row by row")
    if people is not None and m.leads.create:
        _check_lead_creation(out, people["Lead"])
    return out.problems, out.warnings


def _merge_fields(out: _Findings, merge_fields: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``{tag: merge field}`` of the audience plus the declared ones preflight would create."""
    fields = {f["tag"]: f for f in merge_fields}
    for i, d in enumerate(out.mapping.create_merge_fields):
        have = fields.get(d.tag)
        if have is not None and have["type"] != d.type:
            out.problem(("create_merge_fields", i, "type"), f"{d.tag} already exists in the audience as a "
                        f"{have['type']} field — declare type {have['type']} or use another tag")
        fields.setdefault(d.tag, {"tag": d.tag, "type": str(d.type), "options": d.options or {}})
    return fields


def _merge_kind(out: _Findings, i: int, f: FieldMap, mtype: str) -> str | None:
    """The row of :data:`COMPATIBLE` this field map uses, or None after reporting a misuse."""
    if f.address_part and mtype != MergeType.ADDRESS:
        out.problem(("fields", i, "merge_tag"), f"{f.base_tag} is a {mtype} merge field, not an address — "
                    f"write merge_tag: {f.base_tag}")
        return None
    if mtype == MergeType.ADDRESS and not f.address_part:
        out.problem(("fields", i, "merge_tag"), f"{f.base_tag} is an address — map its parts one by one: "
                    f"{f.base_tag}.addr1, .city, .state, .zip, .country")
        return None
    return "address_part" if f.address_part else mtype


def _check_target(out: _Findings, loc: Loc, f: FieldMap, obj: str, fields: dict[str, dict[str, Any]],
                  name: str, kind: str | None, choices: set[str] | None) -> None:
    """One Lead or Contact field of a field map: exists, writable as the direction needs, fits."""
    sf = fields.get(name)
    if sf is None:
        out.problem(loc, f"unknown Salesforce field {name!r} on {obj} — use one of {_suggest(name, fields)}")
        return
    if f.to_salesforce and not sf.get("updateable"):
        out.problem(loc, f"{obj}.{name} is read-only (not updateable) — map a writable field, or set "
                    "direction: salesforce_to_mailchimp")
        return
    if f.to_salesforce and obj == "Lead" and out.mapping.leads.create and not sf.get("createable"):
        out.problem(loc, f"Lead.{name} cannot be set on new Leads (not createable) — map another field "
                    "or set leads.create: false")
        return
    sf_type, length = sf.get("type", ""), int(sf.get("length") or 0)
    if kind is None:
        return
    if sf_type not in COMPATIBLE[kind]:
        out.problem(loc, f"{f.merge_tag} ({kind.replace('_', ' ')}) does not fit {obj}.{name} ({sf_type}) — "
                    f"map it to a field of type {' or '.join(sorted(COMPATIBLE[kind]))}")
        return
    picklist = {v["value"] for v in sf.get("picklistValues") or [] if v.get("active", True)}
    listed = kind in ("dropdown", "radio") and choices is not None
    if f.to_salesforce and sf_type == "picklist" and sf.get("restrictedPicklist"):
        if listed and choices - picklist:
            out.problem(loc, f"choices {sorted(choices - picklist)} of {f.base_tag} are not values of the "
                        f"restricted picklist {obj}.{name} — add them to the picklist or drop them")
        elif not listed:
            out.warn(loc, f"{obj}.{name} is a restricted picklist: {f.merge_tag} values outside it are "
                     "rejected row by row")
    if f.to_mailchimp and sf_type == "picklist" and listed and picklist - choices:
        out.problem(loc, f"{obj}.{name} values {sorted(picklist - choices)} are not choices of {f.base_tag} "
                    "— add them in Mailchimp")
    if f.to_salesforce and sf_type in _TEXT_TYPES and 0 < length < MC_TEXT_MAX:
        out.short.append(f"{obj}.{name} ({length})")
    if f.to_mailchimp and length > MC_TEXT_MAX:
        out.warn(loc, f"{obj}.{name} holds up to {length} characters, Mailchimp {MC_TEXT_MAX}: longer values "
                 "are rejected row by row")


def _check_lead_creation(out: _Findings, lead: dict[str, dict[str, Any]]) -> None:
    """Required Lead fields are mapped or defaulted; every constant written on new Leads fits."""
    settings = out.mapping.leads
    mapped = set(out.mapping.lead_fields().values())
    if not lead.get(LEAD_KEY, {}).get("createable"):
        out.problem(("leads", "create"), f"new Leads are upserted on Lead.{LEAD_KEY}, which the org lacks "
                    "or cannot write — deploy include/salesforce and grant the field to the integration user")
    for name, sf in lead.items():
        if not sf.get("createable") or sf.get("nillable", True) or sf.get("defaultedOnCreate"):
            continue
        if name not in mapped and name not in settings.defaults:
            out.problem(("leads", "create"), f"new Leads need {name}: map a merge tag to lead_field {name} "
                        "or add it under leads.defaults")
        elif name not in settings.defaults:
            out.warn(("leads", "create"), f"members without a value for Lead.{name} cannot become Leads — "
                     f"add {name} under leads.defaults")
    constants: list[tuple[Loc, str, str | None]] = [
        *((("leads", "defaults", k), k, v) for k, v in settings.defaults.items()),
        (("leads", "lead_source"), "LeadSource", settings.lead_source),
        (("leads", "status"), "Status", settings.status),
    ]
    for loc, name, value in constants:
        if value is not None:
            _check_constant(out, loc, lead, name, value)


def _check_constant(out: _Findings, loc: Loc, lead: dict[str, dict[str, Any]], name: str, value: str) -> None:
    sf = lead.get(name)
    if sf is None:
        out.problem(loc, f"unknown Salesforce field {name!r} on Lead — use one of {_suggest(name, lead)}")
        return
    if not sf.get("createable"):
        out.problem(loc, f"Lead.{name} cannot be set on new Leads (not createable) — remove it")
        return
    sf_type, length = sf.get("type", ""), int(sf.get("length") or 0)
    values = [v["value"] for v in sf.get("picklistValues") or [] if v.get("active", True)]
    if sf_type == "picklist" and value not in values:
        text = f"{value!r} is not a value of the Lead.{name} picklist ({', '.join(values)})"
        if sf.get("restrictedPicklist"):
            out.problem(loc, f"{text} — use one of them")
        else:
            out.warn(loc, f"{text} — add it in Setup to keep reports tidy")
    elif sf_type in _TEXT_TYPES and length and len(value) > length:
        out.problem(loc, f"{value!r} is longer than Lead.{name} allows ({length}) — shorten it")
    elif sf_type == "boolean" and value.lower() not in ("true", "false"):
        out.problem(loc, f"Lead.{name} is a checkbox — write true or false")
    elif sf_type in ("double", "int", "currency", "percent") and not _is_number(value):
        out.problem(loc, f"Lead.{name} is a number — write a number, not {value!r}")


# --- I/O ------------------------------------------------------------------------------------------


def _check_mailchimp_account(hook: MailchimpHook, report: PreflightReport, *, role: bool) -> bool:
    """The key works (the account's audiences are read into ``report.lists``); with ``role``, its user's
    role allows what mcsf does."""
    from mcsf.hooks.mailchimp import MailchimpApiError

    if not _connection_defined(hook, report):
        return False
    try:
        root = hook.get_root() if role else {}
        report.lists = hook.get_lists()
    except (MailchimpApiError, ValueError) as err:
        report.problems.append(_conn_problem(hook, f"Mailchimp did not accept the connection: {err} — check "
                                             "the API key (password) and the host"))
        return False
    if role and str(root.get("role") or "unknown") not in ALLOWED_ROLES:
        report.problems.append(_conn_problem(hook, f"the API key's user has role {root.get('role')!r}; mcsf needs "
                                             f"{', '.join(ALLOWED_ROLES)} — use such a user's API key"))
    return True


def _describe_people(hook: McsfSalesforceHook, report: PreflightReport, *, objects: bool = True) -> Describes | None:
    """Lead's and Contact's fields; with ``objects``, also that mcsf's objects are deployed."""
    if not _connection_defined(hook, report):
        return None
    try:  # one describeGlobal both proves the login and lists the objects (not one describe each)
        visible = hook.object_names() if objects else set(MCSF_OBJECTS)
    except Exception as err:
        report.problems.append(_conn_problem(hook, f"cannot log in to Salesforce: {type(err).__name__}: {err} — "
                                             "check instance_url, consumer_key, consumer_secret and ca_bundle"))
        return None
    people: Describes = {}
    for obj in PEOPLE:
        try:
            people[obj] = {f["name"]: f for f in hook.describe(obj)["fields"]}
        except Exception as err:  # any refusal means the same fix: grant API access to the object
            report.problems.append(_conn_problem(hook, f"the org refused to describe {obj}: {err} — give "
                                                 f"the integration user 'API Enabled' and access to {obj}"))
    missing = [obj for obj in MCSF_OBJECTS if obj not in visible]  # not deployed, or not visible to the user
    if missing:
        report.problems.append(_conn_problem(hook, f"the org lacks mcsf's objects {', '.join(missing)} — "
                                             "deploy them: sf project deploy start --source-dir "
                                             "include/salesforce/force-app (and grant access)"))
    return people if len(people) == len(PEOPLE) else None


def _read_audience(
    m: AudienceMapping, hook: MailchimpHook, report: PreflightReport
) -> list[dict[str, Any]] | None:
    """The audience's merge fields after checking the segment exists; None if the audience cannot be read."""
    from mcsf.hooks.mailchimp import MailchimpApiError

    try:
        merge_fields = hook.list_merge_fields(m.audience_id)
    except MailchimpApiError as err:
        hint = "copy the id from Audience → Settings" if err.status == 404 else str(err)
        report.problems.append(problem_at(m, ("audience_id",), f"cannot read audience {m.audience_id} in "
                                          f"this Mailchimp account — {hint}"))
        return None
    if m.segment_id is not None:
        try:
            hook.get_segment(m.audience_id, m.segment_id)
        except MailchimpApiError as err:
            hint = "pick one under Audience → Segments" if err.status == 404 else str(err)
            report.problems.append(problem_at(m, ("segment_id",), f"segment {m.segment_id} not found in "
                                              f"audience {m.audience_id} — {hint}"))
    return merge_fields


def _connection_defined(hook: Any, report: PreflightReport) -> bool:
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    conn_id = _conn_id(hook)
    try:
        BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        report.problems.append(ConfigProblem(None, None, "", f"connection {conn_id!r} is not defined: set "
                                             f"AIRFLOW_CONN_{conn_id.upper()} or add it in Admin → "
                                             "Connections"))
        return False
    return True


def _conn_id(hook: Any) -> str:
    # The provider's SalesforceHook keeps its id in `conn_id`, not in its conn_name_attr.
    return str(getattr(hook, hook.conn_name_attr, None) or hook.conn_id)


def _conn_problem(hook: Any, message: str) -> ConfigProblem:
    return ConfigProblem(None, None, f"connection {_conn_id(hook)}", message)


def _requests_used(mailchimp: Any, salesforce: Any) -> dict[str, int]:
    return {name: sum(getattr(hook, "requests_used", {}).values())
            for name, hook in (("mailchimp", mailchimp), ("salesforce", salesforce))}


def _suggest(name: str, fields: dict[str, dict[str, Any]]) -> str:
    writable = [n for n, f in fields.items() if f.get("updateable")]
    near = difflib.get_close_matches(name, list(fields), n=3, cutoff=0.6)
    return ", ".join(near or writable[:12]) + ("" if near or len(writable) <= 12 else ", …")


def _n(items: list[Any], noun: str) -> str:
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True
