"""One deterministic history of both syncs, replayable on any sandbox seeded from the same template.

A *scenario* is a list of steps: member changes written through the Mailchimp sandbox's private
upsert (each with its own ``last_changed`` inside the next hourly window), activity events added
to a seeded campaign, hourly runs and one nightly activity run. The plan is computed once, with
faults off, from what the sandbox holds; replaying it on another sandbox made from the same
template (a fault-free twin, a faulted copy, a copy whose run was SIGKILLed) must end in the same
Salesforce state. ``python -m tests.reliability.scenario PLAN.json`` replays a plan in a child
process (the crash tests kill that process).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devtools.sandbox_proc import mailchimp_private
from tests.integration.conftest import OBJECTS

if TYPE_CHECKING:
    from tests.integration.conftest import Env

ANCHOR = datetime(2026, 11, 20, 10, tzinfo=UTC)
DATA_SEED = 11
SIZES = ("--audiences", "2", "--members", "80", "--campaigns", "6", "--activity-events", "600")
NIGHT = (datetime(2026, 11, 17, tzinfo=UTC), datetime(2026, 11, 18, tzinfo=UTC))
# What the state comparison reads: every object mcsf writes, by external id, references as keys.
STATE_OBJECTS = {
    **OBJECTS,
    "MC_Campaign__c": ("MC_Campaign_Id__c", ["Name", "Type__c", "Status__c", "Emails_Sent__c", "Opens__c",
                                            "Clicks__c", "Bounces__c", "Audience__r.MC_Audience_Id__c"]),
    "MC_Activity__c": ("MC_Activity_Key__c", ["Action__c", "Bounce_Type__c", "Occurred_At__c", "URL__c",
                                              "Full_URL__c", "Campaign__r.MC_Campaign_Id__c",
                                              "Subscriber__r.MC_Subscriber_Key__c"]),
}
LONG_URL = "https://example.org/landing?" + "&".join(f"utm_{i}=v{i}" for i in range(40))
PUSH_TAG = "SF: reliability push"


def push_query(list_id: str) -> str:
    """A Query Builder definition for audience A: every Contact with an email, tagged, additive."""
    return f"""object: Contact
where: "Email != null AND HasOptedOutOfEmail = false"
audience_id: "{list_id}"
status_if_new: subscribed
tags: ["{PUSH_TAG}"]
mode: additive
fields:
  FirstName: FNAME
  LastName: LNAME
"""
log = logging.getLogger("mcsf.reliability")


@dataclass
class Step:
    """``kind``: ``members`` (``list_id``, ``payload``), ``activity`` (``campaign_id``, ``payload``),
    ``hourly``, ``nightly`` or ``push`` (the Query Builder after an hourly run; ``window``)."""

    name: str
    kind: str
    window: tuple[str, str] | None = None
    list_id: str | None = None
    campaign_id: str | None = None
    payload: list[dict[str, Any]] = field(default_factory=list)


def hour(offset: int) -> tuple[datetime, datetime]:
    start = ANCHOR + timedelta(hours=offset)
    return start, start + timedelta(hours=1)


def _at(window: tuple[datetime, datetime], minutes: int) -> str:
    return (window[0] + timedelta(minutes=minutes)).isoformat()


def _iso(window: tuple[datetime, datetime]) -> tuple[str, str]:
    return window[0].isoformat(), window[1].isoformat()


def plan(env: Env) -> list[Step]:
    """The scenario for this sandbox's data; call it with faults off (it reads the public API)."""
    mc = env.mailchimp()
    list_a, list_b = env.lists
    a = [m["email_address"] for m in mc.lists.get_list_members_info(list_a, count=8, status="subscribed")["members"]]
    b = [m["email_address"] for m in mc.lists.get_list_members_info(list_b, count=8, status="subscribed")["members"]]
    in_mailchimp = {e.strip().lower() for e in a + b}
    with env.active():
        contacts = env.salesforce().query_frame("SELECT Email FROM Contact WHERE Email != null ORDER BY Email LIMIT 40")
    contact = next(e for e in contacts["Email"] if e.strip().lower() not in in_mailchimp)
    campaigns = [c for lst in (list_a, list_b) for c in mc.campaigns.list(list_id=lst, status="sent", count=100)[
        "campaigns"] if c["type"] == "regular"]
    w1, w2, w3 = hour(0), hour(1), hour(2)
    steps = [Step("first load", "hourly", _iso(hour(-1)))]
    steps.append(Step("changes 1 in A", "members", list_id=list_a, payload=[
        {"email_address": a[0], "merge_fields": {"FNAME": "Changed", "PHONE": "+47 22 00 00 01"},
         "last_changed": _at(w1, 5)},
        {"email_address": a[1], "status": "unsubscribed", "last_changed": _at(w1, 10)},
        {"email_address": "new.person+1@example.org", "status": "subscribed",
         "merge_fields": {"FNAME": "New", "LNAME": "Person"}, "last_changed": _at(w1, 15)},
    ]))
    steps.append(Step("changes 1 in B", "members", list_id=list_b, payload=[
        {"email_address": b[0], "merge_fields": {"LNAME": "O'Brien \\ \"Q\""}, "last_changed": _at(w1, 20)},
    ]))
    steps.append(Step("hour 1", "hourly", _iso(w1)))
    steps.append(Step("changes 2 in B", "members", list_id=list_b, payload=[
        {"email_address": "NEW.PERSON+1@example.org ", "status": "subscribed",
         "merge_fields": {"FNAME": "New", "LNAME": "Person"}, "last_changed": _at(w2, 5)},
        {"email_address": b[1], "status": "unsubscribed", "last_changed": _at(w2, 6)},
    ]))
    steps.append(Step("changes 2 in A", "members", list_id=list_a, payload=[
        {"email_address": a[1], "status": "subscribed", "last_changed": _at(w2, 7)},
        {"email_address": contact.upper(), "status": "subscribed",
         "merge_fields": {"FNAME": "Known", "LNAME": "Contact"}, "last_changed": _at(w2, 8)},
    ]))
    steps.append(Step("hour 2", "hourly", _iso(w2)))
    steps.append(Step("push", "push", _iso(w2)))
    steps.append(Step("changes 3 in A", "members", list_id=list_a, payload=[
        {"email_address": f"batch.{i}@example.net", "status": "subscribed",
         "merge_fields": {"FNAME": name, "LNAME": f"Nummer {i}"}, "last_changed": _at(w3, 10 + i)}
        for i, name in enumerate(["Åsa", "محمد", "😀 Emoji", "Zoë", "李"])
    ] + [{"email_address": a[3], "merge_fields": {"FNAME": "🚀 Rocket"}, "last_changed": _at(w3, 30)}]))
    steps.append(Step("hour 3", "hourly", _iso(w3)))
    if campaigns:
        day = NIGHT[0]
        events = []
        for i, email in enumerate(a[4:8] if campaigns[0]["recipients"]["list_id"] == list_a else b[4:8]):
            at = (day + timedelta(hours=3 + i, minutes=7)).isoformat()
            events += [{"email_address": email, "action": "open", "timestamp": at},
                       {"email_address": email, "action": "click", "timestamp": at, "url": LONG_URL}]
        events.append({"email_address": events[0]["email_address"], "action": "bounce", "type": "soft",
                       "timestamp": (day + timedelta(hours=20)).isoformat()})
        steps.append(Step("activity", "activity", campaign_id=campaigns[0]["id"], payload=events))
    steps.append(Step("night", "nightly", _iso(NIGHT)))
    return steps


def apply(env: Env, step: Step) -> list[dict[str, Any]]:
    """Do one step; the run's reports for a sync step (empty for a change)."""
    if step.kind == "members":
        env.mc_private("POST", f"/lists/{step.list_id}/members?skip_merge_validation=true",
                       {"members": step.payload})
        return []
    if step.kind == "activity":
        env.mc_private("POST", f"/campaigns/{step.campaign_id}/activity", {"events": step.payload})
        return []
    start, end = (datetime.fromisoformat(v) for v in step.window or ())
    if step.kind == "push":  # every match, as a mirror query or the full_resync Param would
        from mcsf import querybuilder

        return querybuilder.run(start, end, full=True)
    return env.run(start, end, activity=step.kind == "nightly")


def pushed_members(list_id: str) -> list[tuple]:
    """Audience A's members carrying the push's tag, as rows for :func:`diff_states` (read with
    mcsf's hook: it retries, so faults still on do not disturb the reading)."""
    from mcsf.hooks.mailchimp import MailchimpHook

    hook = MailchimpHook()
    rows = []
    for page in hook.iter_members(list_id, fields=["email_address", "status", "tags", "merge_fields"]):
        for m in page:
            tags = sorted(t.get("name", "") for t in m.get("tags") or [])
            if PUSH_TAG in tags:
                merge = m.get("merge_fields") or {}
                rows.append((m["email_address"].lower(), m["status"], ";".join(tags), merge.get("FNAME") or "",
                             merge.get("LNAME") or ""))
    return rows


def save(steps: list[Step], path: Path) -> None:
    path.write_text(json.dumps([asdict(s) for s in steps]))


def load(path: Path) -> list[Step]:
    return [Step(**{**s, "window": tuple(s["window"]) if s["window"] else None}) for s in json.loads(path.read_text())]


class _Child:
    """What :func:`apply` needs of an Env, in a child process that only has the env vars and URLs."""

    def __init__(self, info: dict[str, Any]) -> None:
        self.info = info

    def mc_private(self, method: str, path: str, body: Any = None) -> Any:
        return mailchimp_private(self.info, method, path, body)

    def run(self, start: datetime, end: datetime, **params: Any) -> list[dict[str, Any]]:
        from devtools.runner import run_sync

        return run_sync(start, end, **params)

    def state(self) -> tuple[dict[str, list[tuple]], int]:
        """The Salesforce state, and the requests reading it took (the sandbox counts them too)."""
        from mcsf.hooks.salesforce import McsfSalesforceHook
        from tests.integration.conftest import sf_state

        hook = McsfSalesforceHook()
        state = {**sf_state(hook, STATE_OBJECTS), "Mailchimp members pushed": pushed_members(self.info["lists"][0])}
        return state, hook.requests_used.total()


def main(argv: list[str]) -> int:
    """Replay a plan against a running sandbox; the environment must already point mcsf at it.

    Prints ``STARTED`` once the imports are done and ``STEP name`` before each step, so a parent
    that kills this process knows where the kill landed. A sync step that raises is run again up
    to ``--retries`` times, as Airflow retries a failed task (``TASK RETRY`` in the output).
    """
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tests.reliability.scenario")
    parser.add_argument("--plan", type=Path, required=True)
    parser.add_argument("--info", type=Path, required=True, help="the sandbox's JSON line, as a file")
    parser.add_argument("--start-at", default=None, help="skip the steps before this one (a resumed run)")
    parser.add_argument("--stop-after", default=None, help="skip the steps after this one")
    parser.add_argument("--retries", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="write reports (and snapshots) here as JSON")
    parser.add_argument("--snapshots", action="store_true", help="Salesforce state after every sync step")
    args = parser.parse_args(argv)
    steps = load(args.plan)
    names = [s.name for s in steps]
    steps = steps[names.index(args.start_at) if args.start_at else 0:
                  names.index(args.stop_after) + 1 if args.stop_after else len(steps)]
    child = _Child(json.loads(args.info.read_text()))
    import devtools.runner  # noqa: F401 - imported before STARTED so the kill delay measures the run
    import mcsf.audience  # noqa: F401

    print("STARTED", flush=True)
    out: dict[str, Any] = {"reports": {}, "snapshots": {}, "seconds": {}, "task_retries": 0}
    for step in steps:
        print(f"STEP {step.name}", flush=True)
        started = time.monotonic()
        for attempt in range(args.retries + 1):
            try:
                out["reports"][step.name] = apply(child, step)  # type: ignore[arg-type]
                break
            except Exception as err:
                if attempt == args.retries:
                    raise
                out["task_retries"] += 1
                print(f"TASK RETRY {step.name} after {type(err).__name__}: {err}", flush=True)
        out["seconds"][step.name] = round(time.monotonic() - started, 2)
        if args.snapshots and step.kind in ("hourly", "nightly", "push"):
            out["snapshots"][step.name], used = child.state()
            out["snapshot_requests"] = out.get("snapshot_requests", 0) + used
    if args.out:
        args.out.write_text(json.dumps(out, default=str))
    print("DONE", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
