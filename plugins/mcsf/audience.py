"""The hourly audience sync, one function per DAG task: preflight, extract, map, validate, load, report.

Each step reads what the previous one staged, writes its own output, and returns a small dict
(the audience's identity, the window, counts, requests used) that the next task receives by
XCom. The DAG file only wires these together.
"""

from __future__ import annotations

import logging
from collections import Counter
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from mcsf.config import SyncMode, load_mapping, load_mappings
from mcsf.report import log_summary
from mcsf.staging import Stage, Window

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from mcsf.config import AudienceMapping

log = logging.getLogger("mcsf")
DAG_ID = "mcsf_audience_sync"
DESCRIBED = ("Lead", "Contact", "MC_Subscriber__c")
DESCRIBE_KEYS = ("type", "length", "picklistValues", "restrictedPicklist", "createable", "updateable")


def hooks(mailchimp_conn_id: str = "mailchimp_default", salesforce_conn_id: str = "salesforce_default"):
    """Both hooks, built lazily (no connection is opened until the first call)."""
    from mcsf.hooks.mailchimp import MailchimpHook
    from mcsf.hooks.salesforce import McsfSalesforceHook

    return MailchimpHook(mailchimp_conn_id), McsfSalesforceHook(salesforce_conn_id)


def _requests(mc: Any = None, sf: Any = None, before: dict[str, int] | None = None) -> dict[str, int]:
    used = Counter(before or {})
    if mc is not None:
        used["mailchimp"] += sum(mc.requests_used.values())
    if sf is not None:
        used["salesforce"] += sum(sf.requests_used.values())
    return dict(used)


def preflight(start: datetime, end: datetime, *, audiences: list[str] | None = None, full_resync: bool = False,
              dry_run: bool = False, modes: tuple[SyncMode, ...] = (SyncMode.ACTIVITY, SyncMode.SUBSCRIBERS_ONLY),
              dag_id: str = DAG_ID) -> list[dict[str, Any]]:
    """Check the mappings against both systems, create declared merge fields, stage per audience
    what mapping it needs (stats; Salesforce describes and interests) and return one small dict per
    audience to sync. Raises with every problem listed when anything is wrong; nothing is written then.

    The hourly sync checks in full (role, merge fields, Salesforce fields) the audiences whose load
    is full (first load, mapping changed, ``full_resync``); the others are not asked for at all
    (their members read proves them) and ``extract`` checks them in full once it finds changed
    members. An hour with nothing changed then costs one Salesforce login and query here.

    :param audiences: audience ids or mapping names to restrict the run to (None: all enabled)
    """
    from airflow.sdk.exceptions import AirflowFailException

    from mcsf.extract import sync_state_records
    from mcsf.preflight import run_preflight

    window = Window(start, end)
    mappings = [m for m in load_mappings() if m.sync_mode in modes]
    if audiences:
        wanted = set(audiences)
        unknown = wanted - {m.audience_id for m in mappings} - {m.label for m in mappings}
        if unknown:
            raise AirflowFailException(f"audiences param names unknown or disabled audiences: {sorted(unknown)}")
        mappings = [m for m in mappings if m.audience_id in wanted or m.label in wanted]
    mc, sf = hooks()
    state, deep = _sync_state(sf, mappings, full_resync)
    if dag_id != DAG_ID and state is not None:  # the nightly maps no member: audiences and logins suffice
        deep = set()
    # An hour whose audiences all load only their changes checks none of them in full: each
    # audience's members read proves it, and extract checks in full those with members changed.
    # The account's audience list is read every hour, one request for all: their stats.
    report = run_preflight(mappings, mc, sf, create_merge_fields=not dry_run, deep=deep, account=dag_id != DAG_ID)
    if dag_id == DAG_ID:  # the hourly DAG ends with the Query Builder: check its files up front too
        from mcsf.querybuilder import check_queries

        report.problems += check_queries(sf, mc)
    _raise_on_problems(report)
    Stage.shared(dag_id, window).clear()  # what an earlier run of this interval shared is stale now
    out = []
    for mapping in mappings:
        checked = deep is None or mapping.audience_id in deep
        info = report.lists.get(mapping.audience_id, {})
        stats = info.get("stats") or {}
        stage = Stage.for_run(dag_id, window, mapping.audience_id)
        stage.write_json("audience", {"name": info.get("name"), "stats": info.get("stats"), "interests": None})
        if checked:
            _stage_metadata(mc, sf, mapping, stage)
        out.append({
            "audience_id": mapping.audience_id,
            "name": mapping.label,
            "mapping_file": str(mapping.source_file),
            "member_count": int(stats.get("member_count", 0)) + int(stats.get("unsubscribe_count", 0))
            + int(stats.get("cleaned_count", 0)),
            "window": [start.isoformat(), end.isoformat()],
            "stage": stage.url,
            "full_resync": full_resync,
            "dry_run": dry_run,
            "checked": checked,
            "lists": {mapping.audience_id: info} if info else {},  # for extract's check: it is in the account
            "sync_state": None if state is None else sync_state_records(state[mapping.audience_id]),
        })
    # which audiences this run holds, and their mappings: one of them creates each new Lead (load_people)
    Stage.shared(dag_id, window).write_json("audiences", {a["audience_id"]: a["mapping_file"] for a in out})
    log.info("SUMMARY preflight: %s audience(s) ready (%s checked in full: first or full load, or mapping changed; "
             "the others are checked when members changed), %s merge field(s) created, requests %s", len(out),
             sum(a["checked"] for a in out), len(report.merge_fields_created), _requests(mc, sf))
    return out


def _sync_state(sf: Any, mappings: list[AudienceMapping], full_resync: bool
                ) -> tuple[dict[str, pd.DataFrame] | None, set[str] | None]:
    """Every audience's ``MC_Audience__c`` row (one query) and the audiences to check in full now:
    those whose next load is full. (None, None) when it cannot be read: everything is checked, and
    the check says why."""
    from mcsf.extract import full_reason, read_sync_state

    try:
        state = read_sync_state(sf, [m.audience_id for m in mappings])
    except Exception as err:  # no login, or mcsf's objects missing: the full check names the fix
        log.warning("could not read the sync state (%s); checking every audience in full", type(err).__name__)
        return None, None
    return state, {m.audience_id for m in mappings if full_reason(m, state[m.audience_id], full_resync)}


def _raise_on_problems(report: Any) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    for warning in report.warnings:
        log.warning("%s", warning)
    if report.problems:
        for problem in report.problems:
            log.error("%s", problem)
        raise AirflowFailException(f"preflight found {len(report.problems)} problem(s); nothing was written:\n"
                                   + "\n".join(str(p) for p in report.problems))


def _stage_metadata(mc: Any, sf: Any, mapping: AudienceMapping, stage: Stage) -> None:
    """What mapping and loading an audience's members need: the Salesforce describes and its interests."""
    stage.write_json("describes", {obj: _slim_describe(sf.describe(obj)) for obj in DESCRIBED})
    meta = stage.read_json("audience")
    meta["interests"] = [
        {"category_id": c["id"], "category": c.get("title"), "interest_id": i["id"], "name": i.get("name"),
         "subscriber_count": i.get("subscriber_count")}
        for c in mc.list_interest_categories(mapping.audience_id)
        for i in mc.list_interests(mapping.audience_id, c["id"])
    ]
    stage.write_json("audience", meta)


def preflight_activity(start: datetime, end: datetime, *, audiences: list[str] | None = None,
                       campaigns: list[str] | None = None, dry_run: bool = False) -> list[dict[str, Any]]:
    """The nightly sync's preflight: the hourly one, for ``activity`` audiences only; campaign ids
    of the ``campaigns`` Param must name campaigns of those audiences."""
    from airflow.sdk.exceptions import AirflowFailException

    ready = preflight(start, end, audiences=audiences, dry_run=dry_run, modes=(SyncMode.ACTIVITY,),
                      dag_id="mcsf_campaign_activity_sync")
    if campaigns:
        mc, _ = hooks()
        synced = {a["audience_id"] for a in ready}
        found = {cid: mc.get_campaign(cid) for cid in dict.fromkeys(campaigns)}
        wrong = [f"{cid} (no such campaign)" if c is None else f"{cid} (sent to audience "
                 f"{(c.get('recipients') or {}).get('list_id')}, not one this run syncs)"
                 for cid, c in found.items() if c is None or (c.get("recipients") or {}).get("list_id") not in synced]
        if wrong:
            raise AirflowFailException(f"campaigns param: {'; '.join(wrong)}; nothing was written")
    return [{**a, "campaigns": campaigns} for a in ready]


def awaiting_members(audiences: list[dict[str, Any]]) -> list[str]:
    """The nightly run's audiences whose members the hourly sync has not yet loaded through the day's end.

    Every activity links to its member's ``MC_Subscriber__c``; a member who joined late in the day
    (or every member, while an audience's first full load is still running) is in Salesforce only
    once an hourly run whose interval ends at or after midnight has finished for that audience —
    its report is staged then (dry runs do not count). Until then Salesforce would refuse their
    activity. Reads the staging's listing only: no API request.
    """
    from mcsf.status import read_summaries

    if not audiences:
        return []
    end = datetime.fromisoformat(audiences[0]["window"][1])
    reports = read_summaries([DAG_ID], since=end - timedelta(microseconds=1))
    synced = {r["audience_id"] for r in reports if not r.get("dry_run")}
    waiting = [a["name"] for a in audiences if a["audience_id"] not in synced]
    if waiting:
        log.info("waiting for the hourly sync to load the members of %s through %s (no finished hourly run of "
                 "theirs ends at or after it yet); their activity would be refused until then",
                 ", ".join(waiting), end.isoformat())
    else:
        log.info("the hourly sync has loaded the members of every audience through %s", end.isoformat())
    return waiting


def _slim_describe(describe: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["name"]: {k: f.get(k) for k in DESCRIBE_KEYS} for f in describe.get("fields", [])}


def _context(audience: dict[str, Any]) -> tuple[AudienceMapping, Window, Stage]:
    start, end = (datetime.fromisoformat(v) for v in audience["window"])
    return load_mapping(Path(audience["mapping_file"])), Window(start, end), Stage(audience["stage"])


def extract(audience: dict[str, Any]) -> dict[str, Any]:
    from airflow.sdk.exceptions import AirflowFailException

    from mcsf.extract import SYNC_STATE_COLUMNS, extract_audience
    from mcsf.hooks.mailchimp import MailchimpApiError

    mapping, window, stage = _context(audience)
    mc, sf = hooks()
    state = audience.get("sync_state")
    try:
        counts = extract_audience(mapping, window, stage, full=audience["full_resync"], mc=mc, sf=sf,
                                  member_count=audience["member_count"],
                                  sync_state=None if state is None else pd.DataFrame(state, columns=SYNC_STATE_COLUMNS))
    except MailchimpApiError as err:
        if err.status != 404 or _in_account(mc, mapping.audience_id):  # e.g. a segment deleted meanwhile
            raise
        raise AirflowFailException(
            f"{mapping.source_file}: audience {mapping.audience_id} is not in this Mailchimp account any more "
            f"({err}) — set sync_mode: off, or copy the right id from Audience → Settings; nothing was written "
            "for it") from err
    if not audience.get("checked", True):
        if counts["members"]:  # members to map: check the mapping in full first, as preflight does
            from mcsf.preflight import run_preflight

            lists = audience["lists"]  # preflight's read of the account (this audience, if it is there)
            # The run's audiences extract one after another: the first one's describes serve the rest.
            with shared_in_run(stage, "sf_describes", sf.remember_describes, lambda: sf.describes):
                _raise_on_problems(run_preflight([mapping], mc, sf, create_merge_fields=not audience["dry_run"],
                                                 deep={mapping.audience_id}, lists=lists))
                _stage_metadata(mc, sf, mapping, stage)
        else:  # nothing to map: no describes needed
            stage.write_json("describes", {})
    log.info("SUMMARY extract %s %s: %s members (%s), %s segments, %s Salesforce subscribers known, requests %s",
             mapping.label, window, counts["members"],
             f"full: {counts['full_reason']}" if counts["full"] else "changed in window",
             counts["segments"], counts["sf_subscribers_known"], _requests(mc, sf))
    return {**audience, "extract": counts, "requests": _requests(mc, sf)}


def _in_account(mc: Any, list_id: str) -> bool:
    """Whether the audience still exists (asked only after a read of it answered 404)."""
    from mcsf.hooks.mailchimp import MailchimpApiError

    try:
        mc.get_list(list_id)
    except MailchimpApiError as err:
        if err.status == 404:
            return False
        raise
    return True


def map_(audience: dict[str, Any]) -> dict[str, Any]:
    from mcsf.mapping import mapped_rows, person_values, to_subscribers

    mapping, window, stage = _context(audience)
    members = stage.read("members")
    describes = stage.read_json("describes")
    mapped = mapped_rows(to_subscribers(members, mapping), person_values(members, mapping, describes))
    stage.write("mapped", mapped)
    log.info("SUMMARY map %s %s: %s subscribers mapped, %s Lead and %s Contact fields each, %s with mapping problems",
             mapping.label, window, len(mapped), len(mapping.lead_fields()), len(mapping.contact_fields()),
             int((mapped["_reasons"] != "").sum()) if len(mapped) else 0)
    return {**audience, "mapped": len(mapped)}


def validate(audience: dict[str, Any]) -> dict[str, Any]:
    from airflow.sdk.exceptions import AirflowFailException

    from mcsf.load import rejects_frame
    from mcsf.mapping import SUBSCRIBER, SUBSCRIBER_KEY
    from mcsf.validate import subscriber_rules, validate_rows

    mapping, window, stage = _context(audience)
    mapped = stage.read("mapped")
    describes = stage.read_json("describes")
    verdict = validate_rows(mapped, subscriber_rules(mapping, describes))
    stopped = bool(verdict.total) and verdict.reject_share > mapping.max_reject_share
    # A stopped audience stages no rows: the run's other audiences must not leave it a new Lead to
    # create, or a field value to offer, that it will never write.
    stage.write("valid", verdict.passed.iloc[:0] if stopped else verdict.passed)
    stage.write("rejects_validate", rejects_frame(SUBSCRIBER, verdict.rejected[SUBSCRIBER_KEY], "validate",
                                                  verdict.rejected["_reason"]))
    counts = {"passed": len(verdict.passed), "rejected": len(verdict.rejected),
              "reject_reasons": dict(verdict.failures), "reject_share": round(verdict.reject_share, 4)}
    log.info("SUMMARY validate %s %s: %s passed, %s rejected (%s)", mapping.label, window, counts["passed"],
             counts["rejected"], ", ".join(f"{r} ×{n}" for r, n in verdict.top_reasons(5)) or "none")
    if stopped:
        raise AirflowFailException(
            f"{mapping.label}: {verdict.reject_share:.1%} of rows rejected, above max_reject_share "
            f"{mapping.max_reject_share:.1%} in {mapping.source_file}; nothing was written for this audience. "
            f"Rejects with reasons are staged at {stage.url}/rejects_validate.parquet")
    return {**audience, "validate": counts}


@contextmanager
def shared_in_run(stage: Stage, name: str, remember: Callable[[Any], None], held: Callable[[], Any]) -> Iterator[None]:
    """Around a task's work: ``remember`` what the run's earlier tasks left as ``name`` (JSON in the
    run's shared stage; ``{}`` at first), then leave ``held()`` there for the next ones."""
    shared = stage.run_shared()
    remember(shared.read_json(name, {}))
    yield
    shared.write_json(name, held())


def shared_job_rates(sf: Any, stage: Stage) -> AbstractContextManager[None]:
    """Around a task's Bulk work: start from the speeds the run's earlier tasks learnt
    (:attr:`McsfSalesforceHook.job_rates`) and leave this task's for the next ones, so each task
    process times its first Bulk polls by the org's speed, not by a first guess."""
    return shared_in_run(stage, "sf_job_rates", sf.remember_job_rates, lambda: sf.job_rates)


def load_people(audience: dict[str, Any]) -> dict[str, Any]:
    from mcsf.audience_load import load_people as load

    mapping, window, stage = _context(audience)
    _, sf = hooks()
    with shared_job_rates(sf, stage):
        counts = load(mapping, window, stage, sf=None if audience["dry_run"] else sf)
    return {**audience, "people": counts, "requests": _requests(None, sf, audience.get("requests"))}


def load_subscribers(audience: dict[str, Any]) -> dict[str, Any]:
    from mcsf.audience_load import load_subscribers as load

    mapping, window, stage = _context(audience)
    _, sf = hooks()
    with shared_job_rates(sf, stage):
        counts = load(mapping, window, stage, audience["people"], audience.get("extract", {}),
                      sf=None if audience["dry_run"] else sf, reader=sf)
    return {**audience, "load": counts, "requests": _requests(None, sf, audience.get("requests"))}


def report(audience: dict[str, Any]) -> dict[str, Any]:
    """The per-audience summary line (last line of the task log) and the XCom for the status page."""
    mapping_name = audience["name"]
    start, end = audience["window"]
    validated = audience.get("validate", {})
    loaded = audience.get("load", {})
    counts = {
        "extracted": audience.get("extract", {}).get("members", 0),
        "rejected": (validated.get("rejected", 0) + loaded.get("load_failed", 0)
                     + loaded.get("lead_creates_rejected", 0)),
        "reject_reasons": Counter(validated.get("reject_reasons", {})) + Counter(loaded.get("reject_reasons", {})),
        **{k: loaded.get(k, 0) for k in ("leads_created", "contacts_linked", "leads_linked", "created",
                                          "updated", "unchanged", "deleted", "load_failed")},
        "requests": audience.get("requests", {}),
        "dry_run": audience.get("dry_run", False),
        "by_object": loaded.get("by_object", {}),
        "validate_rejected": validated.get("rejected", 0),
    }
    line = log_summary(f"{mapping_name} ({audience['audience_id']}) [{start}, {end})", counts)
    result = {"audience_id": audience["audience_id"], "name": mapping_name, "window": audience["window"],
              "summary": line, **{k: v for k, v in counts.items() if k != "reject_reasons"},
              "reject_reasons": dict(counts["reject_reasons"]),
              "rejects_staged_at": audience["stage"]}
    Stage(audience["stage"]).write_json("summary", result)  # read by the status page and `make demo`
    return result


STEPS = {"extract": extract, "map": map_, "validate": validate, "load_people": load_people,
         "load_subscribers": load_subscribers, "report": report}


def run_step(name: str, audience: dict[str, Any], *, activity: bool = False) -> dict[str, Any]:
    """Run one per-audience step inside a mapped task, naming the task instance by audience.

    :param activity: the nightly activity sync's step of that name (preflight and report are shared)
    """
    from airflow.sdk import get_current_context

    get_current_context()["audience_name"] = audience["name"]
    if activity and name != "report":
        from mcsf import activity_sync

        return getattr(activity_sync, {"map": "map_"}.get(name, name))(audience)
    return STEPS[name](audience)
