"""Query Builder: push the Leads or Contacts a SOQL WHERE clause selects into a Mailchimp audience.

What the Mailchimp for Salesforce app's "MC Queries" did, without its two limits: the criteria
are a full SOQL WHERE clause (OR, NOT, parent fields, semi-joins), and ``mode: mirror`` also
takes out the members who stop matching. Per definition (``include/queries/*.yaml``):

1. read the matching records (``SystemModstamp`` in the run's window; in full for a full run,
   the first push of a new tag, and always in mirror mode, which needs the whole match set);
   REST pages, or one Bulk 2.0 query job when more than :data:`BULK_ABOVE` match;
2. map each record to a member ``{email_address, status_if_new, merge_fields, tags}``
   (pure, :func:`to_members`); one member per email, the record modified last wins;
3. batch-subscribe them, 500 per request, with ``update_existing`` and ``status_if_new`` only:
   a new member gets ``status_if_new``, an existing one keeps its status (unsubscribed and
   cleaned people are never re-subscribed), gets the merge values and the tags;
4. mirror mode: read the members of the query's tag (``tags[0]``, a static segment) in pages of
   1000 and remove the tag from those who no longer match, 500 per request (``untag``), or
   also archive them (``archive``, one request each).

Mailchimp's per-member refusals become rejects with its message (emails masked, keys are email
hashes). One SUMMARY line per query; nothing else about members is logged.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import pandas as pd

from mcsf import lookup
from mcsf.config import ADDRESS_REQUIRED, ConfigProblem
from mcsf.load import REJECT_COLUMNS, rejects_frame
from mcsf.lookup import soql_datetime
from mcsf.mapping import canonical
from mcsf.queries import PushMode, QueryDefinition, audience_mappings, collect_queries, problem_in
from mcsf.report import top_reasons
from mcsf.staging import Stage, Window

if TYPE_CHECKING:
    from pathlib import Path

    from mcsf.config import AudienceMapping
    from mcsf.hooks.mailchimp import BatchUpsertResult, MailchimpHook
    from mcsf.hooks.salesforce import McsfSalesforceHook

log = logging.getLogger("mcsf")
BULK_ABOVE = 10_000  # more matches than this are read with one Bulk 2.0 query job instead of REST pages
CHUNK = 500  # Mailchimp's batch size for batch subscribe and static-segment member changes
KEPT_STATUSES = ("unsubscribed", "cleaned")
ALWAYS_SELECTED = ("Id", "Email", "SystemModstamp")
#: Salesforce field types a typed merge field accepts (text-like merge fields take any value as text).
PUSH_FIT = {"number": {"double", "int", "currency", "percent", "string"},
            "date": {"date", "datetime", "string"}, "birthday": {"date", "string"}}
_EMAIL = re.compile(r"[^\s@\"<>(),;:]+@[^\s@'\"<>(),;:]+")  # a local part may hold an apostrophe


# --- pure: SOQL ------------------------------------------------------------------------------------


def soql_condition(where: str, window: Window | None) -> str:
    """The user's clause in parentheses, ANDed with ``[window.start, window.end)`` on SystemModstamp."""
    condition = f"({where})"
    if window is not None:
        condition += (f" AND SystemModstamp >= {soql_datetime(window.start)}"
                      f" AND SystemModstamp < {soql_datetime(window.end)}")
    return condition


def select_list(fields: list[str]) -> list[str]:
    """Id, Email, SystemModstamp and ``fields``, each once (SOQL refuses a field selected twice)."""
    out: dict[str, str] = {}
    for name in (*ALWAYS_SELECTED, *fields):
        out.setdefault(name.lower(), name)
    return list(out.values())


def build_soql(object_name: str, fields: list[str], where: str, window: Window | None) -> str:
    """``SELECT … FROM {object} WHERE ({where}) [AND <window>]``; nothing from the data goes in."""
    return f"SELECT {', '.join(select_list(fields))} FROM {object_name} WHERE {soql_condition(where, window)}"


# --- pure: records -> members ----------------------------------------------------------------------


@dataclass(frozen=True)
class MergeTarget:
    """One Salesforce field feeding one merge tag (``ADDRESS.city`` feeds a part of ADDRESS)."""

    sf_field: str
    merge_tag: str
    merge_type: str = "text"


def merge_map(query: QueryDefinition, mapping: AudienceMapping | None) -> dict[str, str]:
    """``{merge tag: Salesforce field}``: the audience map's fields towards Mailchimp for the
    query's object (with ``use_audience_map``), then the query's own ``fields``, which win per tag."""
    out: dict[str, str] = {}
    if query.use_audience_map and mapping is not None:
        for f in mapping.fields_for(False):
            sf_field = f.lead_field if query.object == "Lead" else f.contact_field
            if sf_field:
                out[f.merge_tag] = sf_field
    out.update({tag: sf_field for sf_field, tag in query.fields.items()})
    return out


def email_hash(email: str) -> str:
    """Mailchimp's member id: the MD5 of the lower-cased address."""
    return hashlib.md5(email.strip().lower().encode()).hexdigest()  # noqa: S324 - Mailchimp's id, not security


def redact(text: str) -> str:
    """Mailchimp's message with every email address masked (it often names the member)."""
    return _EMAIL.sub("<email>", str(text))


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and value != value)


def merge_value(value: Any, merge_type: str) -> Any:
    """A Salesforce value in the form Mailchimp wants for ``merge_type``; None for no value.

    :raises ValueError: naming the expected form, when the value cannot be that type
    """
    if _missing(value) or (isinstance(value, str) and not value.strip()):
        return None
    if merge_type == "number":
        text = str(value).strip().replace(",", "")
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise ValueError(f"{value!r} is not a number") from None
        if isinstance(value, bool) or not number.is_finite():
            raise ValueError(f"{value!r} is not a number")
        return int(number) if number == number.to_integral() else float(number)
    if merge_type in ("date", "birthday"):
        text = str(value).strip()
        day = canonical(text[:10] if re.match(r"\d{4}-\d{2}-\d{2}T", text) else value, "date")
        return day if merge_type == "date" else f"{day[5:7]}/{day[8:10]}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


@dataclass
class Members:
    """What :func:`to_members` made of the matched records.

    ``records``: one row per matched record — ``record_id``, ``email_hash`` (None without an
    email), ``outcome`` (``push``, ``duplicate`` or ``rejected``); ``rejects`` in the staged shape.
    """

    members: list[dict[str, Any]]
    records: pd.DataFrame
    rejects: pd.DataFrame
    matched_hashes: set[str] = field(default_factory=set)


def to_members(rows: pd.DataFrame, targets: list[MergeTarget], *, object_name: str, status_if_new: str,
               tags: list[str]) -> Members:
    """Matched records -> batch-subscribe member bodies, one per email (the record modified last wins).

    Records without an email, or with a value their merge field cannot take, are rejected with
    the reason. The input frame is not changed.
    """
    columns = {str(c).lower(): c for c in rows.columns}

    def column(name: str) -> list[Any]:
        key = columns.get(name.lower())
        return rows[key].tolist() if key is not None else [None] * len(rows)

    ids, emails, stamps = column("Id"), column("Email"), column("SystemModstamp")
    values = {t.merge_tag: column(t.sf_field) for t in targets}
    order = sorted(range(len(rows)), key=lambda i: "" if _missing(stamps[i]) else str(stamps[i]))
    outcome: list[str] = ["rejected"] * len(rows)
    hashes: list[str | None] = [None] * len(rows)
    reasons: dict[int, str] = {}
    by_hash: dict[str, int] = {}
    for i in order:
        email = "" if _missing(emails[i]) else str(emails[i]).strip()
        if not email:
            reasons[i] = "no email address"
            continue
        hashes[i] = email_hash(email)
        if hashes[i] in by_hash:
            outcome[by_hash[hashes[i]]] = "duplicate"  # an older record with the same email
        by_hash[hashes[i]] = i
        outcome[i] = "push"
    bodies: dict[int, dict[str, Any]] = {}
    for i in by_hash.values():
        merge: dict[str, Any] = {}
        try:
            for t in targets:
                value = merge_value(values[t.merge_tag][i], t.merge_type)
                if value is None:
                    continue
                base, _, part = t.merge_tag.partition(".")
                if part:
                    merge.setdefault(base, {})[part] = value
                else:
                    merge[base] = value
        except ValueError as err:
            outcome[i], reasons[i] = "rejected", f"{object_name}.{t.sf_field} -> {t.merge_tag}: {err}"
            continue
        for base in [k for k, v in merge.items() if isinstance(v, dict)]:
            if any(not merge[base].get(p) for p in ADDRESS_REQUIRED):
                del merge[base]  # Mailchimp refuses a partial address; the member goes without it
        body: dict[str, Any] = {"email_address": str(emails[i]).strip(), "status_if_new": str(status_if_new),
                                "merge_fields": merge}
        if tags:
            body["tags"] = list(tags)
        bodies[i] = body
    records = pd.DataFrame({"record_id": [None if _missing(v) else str(v) for v in ids], "email_hash": hashes,
                            "outcome": outcome}, dtype=object)
    bad = sorted(reasons)
    rejects = rejects_frame(object_name, pd.Series([hashes[i] or f"{object_name}:{ids[i]}" for i in bad], dtype=object),
                            "map", pd.Series([reasons[i] for i in bad], dtype=object))
    rejects["record_id"] = [None if _missing(ids[i]) else str(ids[i]) for i in bad]
    return Members([bodies[i] for i in sorted(bodies)], records, rejects, {h for h in hashes if h})


def tally(batch: Members, result: BatchUpsertResult | None,
          object_name: str) -> tuple[dict[str, int], pd.DataFrame, pd.DataFrame]:
    """Counts, rejects (mapping + Mailchimp's refusals) and per-record outcomes of one push.

    A pushed record's outcome becomes ``created``, ``updated``, ``kept_status`` (updated, and
    already unsubscribed or cleaned) or ``refused``; a None ``result`` is a dry run.
    """
    records = batch.records.copy()
    pushing = records["outcome"] == "push"
    counts = {"matched": len(records), "pushed": int(pushing.sum()),
              "duplicates": int((records["outcome"] == "duplicate").sum()), "created": 0, "updated": 0,
              "kept_status": 0, "rejected": len(batch.rejects)}
    rejects = [batch.rejects]
    if result is not None:
        done = {m.get("id"): "created" for m in result.created}
        done.update({m.get("id"): "kept_status" if m.get("status") in KEPT_STATUSES else "updated"
                     for m in result.updated})
        refused: dict[str, str] = {}
        for e in result.errors:
            reason = f"Mailchimp refused: {redact(e.get('error') or e.get('error_code') or 'no message')}"
            if e.get("field"):
                reason += f" ({e['field']}: {redact(e.get('field_message') or '')})"
            refused[email_hash(str(e.get("email_address") or ""))] = reason
            done[email_hash(str(e.get("email_address") or ""))] = "refused"
        records.loc[pushing, "outcome"] = records.loc[pushing, "email_hash"].map(done).fillna("unanswered")
        counts["created"], counts["updated"] = len(result.created), len(result.updated)
        counts["kept_status"] = int((records["outcome"] == "kept_status").sum())
        if refused:
            ids = records[pushing].set_index("email_hash")["record_id"]
            frame = rejects_frame(object_name, pd.Series(list(refused), dtype=object), "push",
                                  pd.Series(list(refused.values()), dtype=object))
            frame["record_id"] = [ids.get(h) for h in refused]
            rejects.append(frame)
        counts["rejected"] += len(refused)
    kept = [r for r in rejects if len(r)]
    frame = pd.concat(kept, ignore_index=True) if kept else pd.DataFrame(columns=[*REJECT_COLUMNS, "record_id"])
    return counts, frame, records


def summary_line(s: dict[str, Any]) -> str:
    """``SUMMARY query partner_leads -> 912265b1f5 (Lead, additive) [window]: matched … · requests …``."""
    when = f"full: {s['full_reason']}" if s.get("full_reason") else f"[{s['window'][0]}, {s['window'][1]})"
    parts = [f"matched {s['matched']}", f"pushed {s['pushed']}", f"created {s['created']}",
             f"updated {s['updated']}", f"kept status {s['kept_status']} (already unsubscribed/cleaned)"]
    if s["duplicates"]:
        parts.append(f"duplicate emails {s['duplicates']}")
    if s["mode"] == PushMode.MIRROR:
        parts += [f"untagged {s['untagged']}", f"archived {s['archived']}"]
    parts.append(f"rejected {s['rejected']} ({top_reasons(s['reject_reasons'])})")
    parts.append("requests " + ", ".join(f"{api} {n}" for api, n in sorted(s["requests"].items())))
    if s.get("dry_run"):
        parts.append("DRY RUN: nothing written")
    return f"SUMMARY query {s['query']} -> {s['audience_id']} ({s['object']}, {s['mode']}) {when}: " + " · ".join(parts)


# --- live: checks ----------------------------------------------------------------------------------


@dataclass
class Plan:
    """A definition that passed its checks, with its merge targets and the requests checking used."""

    query: QueryDefinition
    targets: list[MergeTarget]
    requests: Counter[str] = field(default_factory=Counter)


def check_queries(sf: McsfSalesforceHook, mc: MailchimpHook, queries_dir: Path | None = None) -> list[ConfigProblem]:
    """Every problem of the definitions: file problems, then per query against both systems — the
    audience exists and has a mapping file, the fields exist on the object and fit their merge
    fields, the merge tags exist, and the clause runs (``SELECT Id FROM {object} WHERE ({where})
    LIMIT 1``; a refusal carries Salesforce's own message). Writes nothing.

    :param queries_dir: defaults to :func:`mcsf.queries.queries_dir`
    """
    queries, problems = collect_queries(queries_dir)
    return problems + plan_queries(queries, sf, mc)[1]


def plan_queries(queries: list[QueryDefinition], sf: McsfSalesforceHook,
                 mc: MailchimpHook) -> tuple[list[Plan], list[ConfigProblem]]:
    """:func:`check_queries` for loaded definitions: the plans of those that passed, and all problems."""
    mappings = audience_mappings()
    audiences: dict[str, dict[str, dict[str, Any]] | None] = {}
    plans: list[Plan] = []
    problems: list[ConfigProblem] = []
    for query in queries:
        before = _used(mc, sf)
        found = _check(query, mappings.get(query.audience_id), sf, mc, audiences)
        problems += found
        if not found:
            plans.append(Plan(query, _targets(query, mappings.get(query.audience_id), audiences[query.audience_id]),
                              _used(mc, sf) - before))
    return plans, problems


def _targets(query: QueryDefinition, mapping: AudienceMapping | None,
             merge_fields: dict[str, dict[str, Any]] | None) -> list[MergeTarget]:
    types = {tag: f.get("type", "text") for tag, f in (merge_fields or {}).items()}
    return [MergeTarget(sf_field, tag, "text" if "." in tag else types.get(tag, "text"))
            for tag, sf_field in merge_map(query, mapping).items()]


def _check(query: QueryDefinition, mapping: AudienceMapping | None, sf: McsfSalesforceHook, mc: MailchimpHook,
           audiences: dict[str, dict[str, dict[str, Any]] | None]) -> list[ConfigProblem]:
    from simple_salesforce.exceptions import SalesforceError

    from mcsf.config import mappings_dir
    from mcsf.hooks.mailchimp import MailchimpApiError

    out: list[ConfigProblem] = []
    if mapping is None:
        out.append(problem_in(query, ("audience_id",), f"audience {query.audience_id} has no mapping file that "
                              f"loads in {mappings_dir()} — add one (python -m mcsf scaffold {query.audience_id}) "
                              "or fix its problems (python -m mcsf check)"))
    if query.audience_id not in audiences:
        try:
            audiences[query.audience_id] = {f["tag"]: f for f in mc.list_merge_fields(query.audience_id)}
        except MailchimpApiError as err:
            audiences[query.audience_id] = None
            hint = "copy the id from Audience → Settings" if err.status == 404 else str(err)
            out.append(problem_in(query, ("audience_id",), f"cannot read audience {query.audience_id} in this "
                                  f"Mailchimp account — {hint}"))
    merge_fields = audiences[query.audience_id]
    for tag, sf_field in merge_map(query, mapping).items():
        own = query.fields.get(sf_field) == tag
        loc = ("fields", sf_field) if own else ("use_audience_map",)
        where = "" if own else f" (audience map: {tag} <- {sf_field})"
        sf_type, why = _field_type(sf, str(query.object), sf_field)
        if why:
            out.append(problem_in(query, loc, why + where))
            continue
        if merge_fields is None:
            continue
        base, _, part = tag.partition(".")
        kind = merge_fields.get(base, {}).get("type")
        if kind is None:
            out.append(problem_in(query, loc, f"merge tag {base} is not in audience {query.audience_id} — use one of "
                                  f"{', '.join(sorted(merge_fields))}, or create it in Mailchimp{where}"))
        elif bool(part) != (kind == "address"):
            fix = f"write {base}" if part else f"map its parts: {base}.addr1, .city, .state, .zip"
            out.append(problem_in(query, loc, f"{base} is {'an address' if kind == 'address' else f'a {kind} field'}"
                                  f" — {fix}{where}"))
        elif kind in PUSH_FIT and sf_type not in PUSH_FIT[kind]:
            out.append(problem_in(query, loc, f"{query.object}.{sf_field} ({sf_type}) cannot fill {base}, a {kind} "
                                  f"merge field — map a field of type {' or '.join(sorted(PUSH_FIT[kind]))}{where}"))
    try:
        list(sf.query_iter(f"SELECT Id FROM {query.object} WHERE ({query.where}) LIMIT 1"))
    except SalesforceError as err:
        out.append(problem_in(query, ("where",), f"Salesforce refused the clause: {_salesforce_message(err)}"))
    return out


def _field_type(sf: McsfSalesforceHook, object_name: str, path: str) -> tuple[str | None, str | None]:
    """The describe type of ``path`` (``Account.Name`` walks the lookup), or None and what is wrong."""
    import difflib

    *relations, name = path.split(".")
    current = object_name
    for relation in relations:
        fields = sf.field_map(current)
        ref = next((f for f in fields.values() if (f.get("relationshipName") or "").lower() == relation.lower()
                    and f.get("referenceTo")), None)
        if ref is None:
            names = [f["relationshipName"] for f in fields.values() if f.get("relationshipName")]
            return None, f"{current} has no lookup named {relation!r} — use one of {', '.join(sorted(names))}"
        current = ref["referenceTo"][0]
    fields = {n.lower(): f for n, f in sf.field_map(current).items()}
    if name.lower() not in fields:
        near = difflib.get_close_matches(name, [f["name"] for f in fields.values()], n=3, cutoff=0.6)
        return None, f"unknown Salesforce field {name!r} on {current}" + (f" — did you mean {', '.join(near)}?"
                                                                          if near else "")
    return fields[name.lower()].get("type"), None


def _salesforce_message(err: Exception) -> str:
    content = getattr(err, "content", None)
    if isinstance(content, list):
        return "; ".join(f"{e.get('errorCode', 'ERROR')}: {str(e.get('message', '')).strip()}" for e in content)
    return str(content or err)


def _used(mc: Any, sf: Any) -> Counter[str]:
    return Counter({"mailchimp": sum(mc.requests_used.values()), "salesforce": sum(sf.requests_used.values())})


# --- live: the push --------------------------------------------------------------------------------


def push(window: Window, *, full: bool, dry_run: bool, stage_root: Stage, mc: MailchimpHook,
         sf: McsfSalesforceHook) -> list[dict[str, Any]]:
    """Push every definition of :func:`mcsf.queries.queries_dir`; one summary dict per query.

    All definitions are checked first (:func:`check_queries`); with any problem nothing is
    written and the task fails without retries. A query that fails while pushing does not stop
    the others; the call raises at the end naming it (a retry is safe: every write is an upsert).

    :param window: the run's data interval; records whose ``SystemModstamp`` lies in it are read
    :param full: read every match, whatever the window (the DAG's full-resync Param)
    :param dry_run: read and map, write nothing to Mailchimp (summaries count what would happen)
    :param stage_root: staging folder of the run; each query stages under ``{stage_root}/{name}/``
    """
    from airflow.sdk.exceptions import AirflowFailException

    queries, problems = collect_queries()
    plans, live = plan_queries(queries, sf, mc)
    problems += live
    if problems:
        for problem in problems:
            log.error("%s", problem)
        raise AirflowFailException(f"Query Builder: {len(problems)} problem(s) in the query files; nothing was "
                                   "pushed:\n" + "\n".join(str(p) for p in problems))
    summaries, failed = [], []
    for plan in plans:
        try:
            summaries.append(_push_one(plan, window, full=full, dry_run=dry_run,
                                       stage=Stage(f"{stage_root.url}/{plan.query.name}"), mc=mc, sf=sf))
        except Exception as err:
            log.exception("query %s failed: %s", plan.query.name, redact(str(err)))
            failed.append(f"{plan.query.name}: {type(err).__name__}: {redact(str(err))}")
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(plans)} queries failed (the others were pushed): "
                           + "; ".join(failed))
    return summaries


def run(start: datetime, end: datetime, *, full: bool = False, dry_run: bool = False,
        dag_id: str = "mcsf_audience_sync") -> list[dict[str, Any]]:
    """The DAG task: :func:`push` for the data interval ``[start, end)`` with the default connections,
    staged under ``{staging}/{dag_id}/{window}/_queries/`` (the ``_`` keeps it apart from audiences)."""
    from mcsf.audience import hooks

    window = Window(start, end)
    mc, sf = hooks()
    return push(window, full=full, dry_run=dry_run, stage_root=Stage.for_run(dag_id, window, "_queries"),
                mc=mc, sf=sf)


def read_matches(sf: McsfSalesforceHook, query: QueryDefinition, fields: list[str],
                 window: Window | None) -> pd.DataFrame:
    """The matching records: counted first, then REST pages or, beyond :data:`BULK_ABOVE`, Bulk 2.0."""
    total = lookup.count(sf, str(query.object), soql_condition(query.where, window))
    if not total:
        return pd.DataFrame(columns=select_list(fields))
    return lookup.query(sf, build_soql(str(query.object), fields, query.where, window), total, bulk_above=BULK_ABOVE)


def static_tags(mc: MailchimpHook, list_id: str) -> dict[str, int]:
    """``{lower-cased tag name: id}`` of the audience's tags (tags are static segments)."""
    pages = mc.iter_pages("GET /lists/{list_id}/segments", mc.client.lists.list_segments, "segments",
                          list_id=list_id, type="static", fields=["id", "name"])
    return {str(s["name"]).strip().lower(): s["id"] for page in pages for s in page}


def _push_one(plan: Plan, window: Window, *, full: bool, dry_run: bool, stage: Stage, mc: MailchimpHook,
              sf: McsfSalesforceHook) -> dict[str, Any]:
    query = plan.query
    before = _used(mc, sf)
    reason = None
    if query.mode is PushMode.MIRROR:
        reason = "mirror mode compares every match"
    elif full:
        reason = "full run requested"
    elif query.tags and query.tags[0].lower() not in static_tags(mc, query.audience_id):
        reason = f"first push: tag {query.tags[0]!r} is not in the audience yet"
    rows = read_matches(sf, query, [t.sf_field for t in plan.targets], None if reason else window)
    batch = to_members(rows, plan.targets, object_name=str(query.object), status_if_new=str(query.status_if_new),
                       tags=query.tags)
    result = None if dry_run else mc.batch_upsert_members(query.audience_id, batch.members, update_existing=True)
    counts, rejects, records = tally(batch, result, str(query.object))
    left = {"untagged": 0, "archived": 0}
    if query.mirror_tag:
        left, gone_rejects = mirror(mc, query, batch.matched_hashes, dry_run=dry_run)
        rejects = pd.concat([r for r in (rejects, gone_rejects) if len(r)] or [rejects], ignore_index=True)
    stage.write("records", records)
    stage.write("rejects", rejects)
    used = _used(mc, sf) - before + plan.requests
    summary: dict[str, Any] = {
        "query": query.name, "file": str(query.source_file), "audience_id": query.audience_id,
        "object": str(query.object), "mode": str(query.mode), "window": [window.start.isoformat(),
                                                                         window.end.isoformat()],
        "full_reason": reason, **counts, **left, "rejected": len(rejects),
        "reject_reasons": dict(Counter(rejects["reason"])), "requests": dict(used), "dry_run": dry_run,
        "stage": stage.url,
    }
    summary["summary"] = summary_line(summary)
    stage.write_json("summary", summary)
    log.info("%s", summary["summary"])
    return summary


def mirror(mc: MailchimpHook, query: QueryDefinition, matched: set[str], *,
           dry_run: bool) -> tuple[dict[str, int], pd.DataFrame]:
    """Take the query's tag from its members who are not in ``matched`` (email hashes), and archive
    them with ``mirror_action: archive``. Reads the tag's members in pages of 1000 (unsubscribed,
    cleaned and transactional included; Mailchimp's tag listing leaves out pending and archived)."""
    from mcsf.hooks.mailchimp import MailchimpApiError
    from mcsf.queries import MirrorAction

    tag_id = static_tags(mc, query.audience_id).get(str(query.mirror_tag).lower())
    done = {"untagged": 0, "archived": 0}
    failures: list[tuple[str, str, str]] = []  # (email hash, step, reason)
    if tag_id is None:
        return done, _rejects(str(query.object), failures)
    pages = mc.iter_pages("GET /lists/{list_id}/segments/{segment_id}/members",
                          mc.client.lists.get_segment_members_list, "members", list_id=query.audience_id,
                          segment_id=str(tag_id), include_cleaned=True, include_transactional=True,
                          include_unsubscribed=True, fields=["id", "email_address"])
    stale = [m for page in pages for m in page if m.get("id") not in matched]
    archive = query.mirror_action is MirrorAction.ARCHIVE
    if dry_run:
        return {"untagged": len(stale), "archived": len(stale) if archive else 0}, _rejects(str(query.object), [])
    for start in range(0, len(stale), CHUNK):
        emails = [m["email_address"] for m in stale[start:start + CHUNK]]
        answer = mc.call("POST /lists/{list_id}/segments/{segment_id}", mc.client.lists.batch_segment_members,
                         {"members_to_add": [], "members_to_remove": emails}, query.audience_id, str(tag_id)) or {}
        done["untagged"] += int(answer.get("total_removed", len(answer.get("members_removed") or [])))
        for e in answer.get("errors") or []:
            failures += [(email_hash(a), "untag", f"Mailchimp refused: {redact(e.get('error', ''))}")
                         for a in e.get("email_addresses") or []]
    if archive:
        def archive_one(member: dict[str, Any]) -> str | None:
            try:
                mc.call("DELETE /lists/{list_id}/members/{subscriber_hash}", mc.client.lists.delete_list_member,
                        query.audience_id, member["id"])
            except MailchimpApiError as err:
                return None if err.status == 404 else f"Mailchimp refused: {redact(err.detail or err.title)}"
            return "archived"

        with ThreadPoolExecutor(max_workers=mc.max_connections) as pool:
            for member, outcome in zip(stale, pool.map(archive_one, stale), strict=True):
                if outcome == "archived":
                    done["archived"] += 1
                elif outcome:
                    failures.append((member["id"], "archive", outcome))
    return done, _rejects(str(query.object), failures)


def _rejects(object_name: str, failures: list[tuple[str, str, str]]) -> pd.DataFrame:
    """``(email hash, step, reason)`` triples in the staged reject shape."""
    frame = pd.DataFrame(failures, columns=["key", "step", "reason"], dtype=object)
    frame.insert(0, "object", object_name)
    frame["record_id"] = None
    return frame[[*REJECT_COLUMNS, "record_id"]]
