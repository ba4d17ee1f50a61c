"""Hostile input (``devtools/corpus.py``, 231 members) loaded into two audiences, then synced.

Every record must end one of three ways, and the test names each record's way:

- **refused by Mailchimp** when it was written (the sandbox answers as Mailchimp does, e.g.
  "looks fake or invalid"): the record never reaches a sync; its reason is Mailchimp's;
- **loaded**: its subscriber is in Salesforce with email and names equal to what Mailchimp holds,
  byte for byte, except for the documented cleaning (surrounding blanks trimmed, control
  characters such as NUL dropped, since Salesforce cannot store them); a Lead mcsf created holds
  the same names;
- **rejected by mcsf or by Salesforce** with a reason an analyst can act on, staged with the
  subscriber key (never the email) in ``rejects_*.parquet``.

Nothing crashes: the run finishes, the sandbox never answers 5xx, a second run of the same
window writes nothing, and no corpus email appears in the log.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from typing import Any

import pandas as pd
import pytest
import requests

from devtools.corpus import build
from mcsf.lookup import soql_quote
from tests.integration.conftest import mapping_yaml
from tests.reliability import scenario
from tests.reliability.conftest import record_figures

TRIM_AND_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
EXTRA_FIELDS = """  - merge_tag: COMPANY
    lead_field: Description
    contact_field: Title
  - merge_tag: LTV
    lead_field: AnnualRevenue
  - merge_tag: SIGNUP
    contact_field: Birthdate
create_merge_fields:
  - tag: SIGNUP
    name: Signed up on
    type: date
"""
# Words that make a reason actionable: it names the field, the rule or the value's problem.
ACTIONABLE = re.compile(r"(email|longer than|no value for|not a (number|date|finite)|picklist|Salesforce refused: "
                        r"[A-Z_]+:|merge field|LastName|required|invalid)", re.IGNORECASE)


def cleaned(value: Any) -> str | None:
    """What Salesforce should hold for a Mailchimp text value: the value, trimmed, without C0
    control characters (Salesforce stores no NUL); None for blank."""
    if value in (None, ""):
        return None
    text = TRIM_AND_CONTROL.sub("", str(value)).strip()
    return text or None


def md5(email: str) -> str:
    return hashlib.md5(email.strip().lower().encode()).hexdigest()  # Mailchimp's subscriber hash


@pytest.fixture(scope="module")
def loaded(make_world, tmp_path_factory):
    """The corpus written to Mailchimp (each record alone, so one refusal does not hide others),
    then one run of the sync; what every record became."""
    world = make_world()
    lists = world.lists
    world.write_mapping(lists[0], mapping_yaml(lists[0], extra_fields=EXTRA_FIELDS).replace(
        "max_reject_share: 0.5", "max_reject_share: 1.0"))
    world.write_mapping(lists[1], mapping_yaml(lists[1]).replace("max_reject_share: 0.5", "max_reject_share: 1.0"))
    world.mailchimp().lists.add_list_merge_field(lists[0], {"tag": "SIGNUP", "name": "Signed up on", "type": "date"})
    base = world.info["mailchimp_url"].removesuffix("/3.0")
    start, end = scenario.hour(-1)
    refused: dict[str, str] = {}
    for record in build():
        member = {**record["member"], "last_changed": (start.replace(minute=30)).isoformat()}
        response = requests.post(f"{base}/_sandbox/lists/{lists[record['audience']]}/members",
                                 params={"skip_merge_validation": "true"}, json={"members": [member]}, timeout=60,
                                 auth=("corpus", world.info["mailchimp_api_key"]))
        assert response.status_code < 500, (record["id"], response.status_code, response.text[:300])
        if response.status_code >= 400:
            problem = response.json()
            refused[record["id"]] = "; ".join([problem.get("detail", "")] + [
                f"{e.get('field')}: {e.get('message')}" for e in problem.get("errors") or []])
    world.reset_counts()
    reports = world.run(start, end)
    again = world.run(start, end)
    counts = world.counts()
    return {"world": world, "refused": refused, "reports": reports, "again": again, "counts": counts,
            "window": (start, end)}


def stored_members(world, list_id: str, emails: list[str]) -> dict[str, dict[str, Any]]:
    """What Mailchimp holds for these emails, by subscriber hash."""
    mc = world.mailchimp()
    out = {}
    for digest in sorted({md5(e) for e in emails}):
        out[digest] = mc.lists.get_list_member(list_id, digest)
    return out


def sf_rows(world, soql_head: str, field: str, values: list[str]) -> pd.DataFrame:
    frames = []
    with world.active():
        sf = world.salesforce()
        for i in range(0, len(values), 100):
            chunk = ", ".join(soql_quote(v) for v in values[i:i + 100])
            frames.append(sf.query_frame(f"{soql_head} WHERE {field} IN ({chunk})"))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def staged_rejects(world, window) -> pd.DataFrame:
    root = world.root / "staging" / "mcsf_audience_sync"
    frames = [pd.read_parquet(p) for p in root.glob("*/*/rejects_*.parquet")]
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["object", "key", "step", "reason"])


def test_every_hostile_record_is_loaded_exactly_or_rejected_with_a_reason(loaded, capfd):
    world, refused = loaded["world"], loaded["refused"]
    lists = world.lists
    corpus = build()
    accepted = [r for r in corpus if r["id"] not in refused]
    members: dict[tuple[str, str], dict[str, Any]] = {}
    for index, list_id in enumerate(lists):
        emails = [str(r["member"]["email_address"]) for r in accepted if r["audience"] == index]
        for digest, member in stored_members(world, list_id, emails).items():
            members[(list_id, digest)] = member
    keys = [f"{list_id}:{digest}" for list_id, digest in members]
    subs = sf_rows(world, "SELECT MC_Subscriber_Key__c, Email__c, First_Name__c, Last_Name__c, Lead__c, Contact__c "
                   "FROM MC_Subscriber__c", "MC_Subscriber_Key__c", keys).set_index("MC_Subscriber_Key__c")
    lead_ids = [v for v in subs["Lead__c"].dropna()] if len(subs) else []
    leads = sf_rows(world, "SELECT Id, Email, FirstName, LastName, MC_Email_Key__c FROM Lead", "Id",
                    lead_ids).set_index("Id")
    rejects = staged_rejects(world, loaded["window"])
    reasons = rejects.groupby("key")["reason"].apply(list).to_dict() if len(rejects) else {}

    outcomes: Counter[str] = Counter()
    by_category: dict[str, Counter[str]] = {}
    problems: list[str] = []
    exact = cleaned_only = 0
    for record in corpus:
        rid, category = record["id"], record["category"]
        if rid in refused:
            outcome = "refused by Mailchimp"
            if not refused[rid].strip():
                problems.append(f"{rid}: refused by Mailchimp without a reason")
        else:
            list_id = lists[record["audience"]]
            member = members[(list_id, md5(str(record["member"]["email_address"])))]
            key = f"{list_id}:{member['id']}"
            if key in subs.index:
                outcome = "loaded"
                row = subs.loc[key]
                want = {"Email__c": cleaned(member["email_address"]),
                        "First_Name__c": cleaned(member["merge_fields"].get("FNAME")),
                        "Last_Name__c": cleaned(member["merge_fields"].get("LNAME"))}
                got = {k: (None if pd.isna(row[k]) else row[k]) for k in want}
                if got != want:
                    problems.append(f"{rid} ({category}): Salesforce holds {got!r}, Mailchimp {want!r}")
                merge = member["merge_fields"]
                raw = {"Email__c": member["email_address"], "First_Name__c": merge.get("FNAME") or None,
                       "Last_Name__c": merge.get("LNAME") or None}
                exact += got == raw
                cleaned_only += got == want and got != raw
                lead_id = row["Lead__c"]
                made_here = isinstance(lead_id, str) and lead_id in leads.index and isinstance(
                    leads.loc[lead_id, "MC_Email_Key__c"], str)
                if made_here and category != "case/whitespace twin":  # a twin's Lead takes either audience's names
                    lead = leads.loc[lead_id]
                    names = {"First_Name__c": lead["FirstName"], "Last_Name__c": lead["LastName"]}
                    names = {k: None if pd.isna(v) else v for k, v in names.items()}
                    if any(want[k] is not None and names[k] != want[k] for k in names):
                        problems.append(f"{rid} ({category}): the Lead holds {names!r}, Mailchimp {want!r}")
            elif key in reasons:
                outcome = "rejected with a reason"
                for reason in reasons[key]:
                    if not ACTIONABLE.search(str(reason)) or "Traceback" in str(reason):
                        problems.append(f"{rid} ({category}): reason an analyst cannot act on: {reason!r}")
            else:
                outcome = "LOST"
                problems.append(f"{rid} ({category}): accepted by Mailchimp, neither loaded nor rejected")
        outcomes[outcome] += 1
        by_category.setdefault(category, Counter())[outcome] += 1

    record_figures("hostile", {"records": len(corpus), "outcomes": dict(outcomes), "exact": exact,
                               "cleaned_only": cleaned_only,
                               "by_category": {k: dict(v) for k, v in by_category.items()},
                               "reject_reasons": dict(Counter(str(r).split(":")[0][:80]
                                                              for r in rejects.get("reason", [])))})
    assert len(corpus) >= 200
    assert not problems, "\n".join(problems[:40])
    assert outcomes["loaded"] > 100 and outcomes["rejected with a reason"] > 5
    log = capfd.readouterr()
    assert f"@{'corpus.example.org'}" not in log.out + log.err


def test_hostile_rows_reject_keys_are_never_emails(loaded):
    rejects = staged_rejects(loaded["world"], loaded["window"])
    assert len(rejects)
    assert not rejects["key"].astype(str).str.contains("@").any(), rejects[rejects["key"].str.contains("@")][:5]


def test_nothing_crashed_and_a_second_run_writes_nothing(loaded):
    assert len(loaded["reports"]) == 2
    for report in loaded["again"]:
        assert report["created"] == 0 and report["updated"] == 0, report["summary"]
    server_log = (loaded["world"].root / "sandbox" / "sandbox.log").read_text(errors="replace")
    assert "Traceback" not in server_log, server_log[server_log.find("Traceback"):][:3000]
    for report in loaded["reports"] + loaded["again"]:
        assert "@" not in report["summary"]
