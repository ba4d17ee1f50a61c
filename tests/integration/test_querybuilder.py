"""The Query Builder on the sandbox: Contacts selected by SOQL land in a Mailchimp audience with the
query's tag; mirror mode takes the tag (or the membership) from those who stop matching; existing
members keep their status; broken clauses are caught with their file and line before any write."""

from __future__ import annotations

import hashlib
import math
import os
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from unittest import mock

import pandas as pd
import pytest

if TYPE_CHECKING:
    from pathlib import Path

    from tests.integration.conftest import Env

NOW = datetime.now(UTC)
WINDOW = (NOW - timedelta(hours=1), NOW + timedelta(hours=1))  # the records these tests write
PAST = (NOW - timedelta(days=400), NOW - timedelta(days=399))


def md5(email: str) -> str:
    return hashlib.md5(email.strip().lower().encode()).hexdigest()


def query_dir(env: Env, name: str, **files: str) -> Path:
    folder = env.root / "queries" / name
    folder.mkdir(parents=True, exist_ok=True)
    for stem, text in files.items():
        (folder / f"{stem}.yaml").write_text(text)
    return folder


def push(env: Env, folder: Path, window: tuple[datetime, datetime] = WINDOW, *, full: bool = False,
         dry_run: bool = False) -> list[dict[str, Any]]:
    from mcsf.audience import hooks
    from mcsf.querybuilder import push as run
    from mcsf.staging import Stage, Window

    with env.active(), mock.patch.dict(os.environ, {"MCSF_QUERIES_DIR": str(folder)}):
        mc, sf = hooks()
        stage = Stage(f"file://{env.root}/staging/queries/{folder.name}/{len(list(folder.parent.iterdir()))}")
        return run(Window(*window), full=full, dry_run=dry_run, stage_root=stage, mc=mc, sf=sf)


def add_contacts(env: Env, rows: list[dict[str, Any]]) -> list[str]:
    with env.active():
        result = env.salesforce().insert("Contact", pd.DataFrame(rows))
    assert len(result.failures) == 0, result.failures
    return result.successes["sf__Id"].tolist()


def update_contacts(env: Env, ids: list[str], **values: Any) -> None:
    with env.active():
        result = env.salesforce().update("Contact", pd.DataFrame({"Id": ids, **{k: [v] * len(ids)
                                                                               for k, v in values.items()}}))
    assert len(result.failures) == 0, result.failures


def member(env: Env, list_id: str, email: str) -> dict[str, Any] | None:
    from mailchimp_marketing.api_client import ApiClientError

    try:
        return env.mailchimp().lists.get_list_member(list_id, md5(email))
    except ApiClientError as err:
        if err.status_code == 404:
            return None
        raise


def tags_of(found: dict[str, Any] | None) -> set[str]:
    return {t["name"] for t in (found or {}).get("tags", [])}


def existing_email(env: Env, list_id: str, status: str) -> str | None:
    members = env.mailchimp().lists.get_list_members_info(list_id, status=status, count=1)["members"]
    return members[0]["email_address"] if members else None


@pytest.fixture(scope="module")
def audience(env: Env) -> str:
    """The audience the queries push to; fails at once when batch subscribe ignores ``status_if_new``."""
    list_id = env.lists[0]
    body = {"members": [{"email_address": "probe.status-if-new@example.com", "status_if_new": "subscribed"}],
            "update_existing": True}
    errors = env.mailchimp().lists.batch_list_members(list_id, body)["errors"]
    if errors:
        pytest.fail("the sandbox's batch subscribe refuses members[].status_if_new (Mailchimp takes it: the "
                    "status of a new member, an existing one keeps its own). Fix sandbox/mailchimp/"
                    f"member_routes.py batch_subscribe: status_if_new=item.get('status') or item.get("
                    f"'status_if_new'). Mailchimp said: {errors[0]}")
    return list_id


def contact_query(audience: str, where: str, tag: str, extra: str = "") -> str:
    return f"""object: Contact
where: |
  {where}
audience_id: "{audience}"
status_if_new: subscribed
tags: ["{tag}"]
fields:
  FirstName: FNAME
  LastName: LNAME
{extra}"""


def test_additive_push_adds_tags_and_keeps_every_status(env, audience):
    unsubscribed = existing_email(env, audience, "unsubscribed")
    assert unsubscribed, "the seed has unsubscribed members"
    cleaned = existing_email(env, audience, "cleaned")
    people = [
        {"Email": "alice.qb@example.com", "FirstName": "Alice", "LastName": "O'Brien \\ Jr"},
        {"Email": "o'hara.qb@example.com", "FirstName": 'Say "hi"', "LastName": "O'Hara"},
        {"Email": None, "FirstName": "No", "LastName": "Email"},
        {"Email": unsubscribed, "FirstName": "Was", "LastName": "Unsubscribed"},
        {"Email": cleaned, "FirstName": "Was", "LastName": "Cleaned"},
    ]
    people = [p for p in people if p["Email"] is not None or p["FirstName"] == "No"]
    ids = add_contacts(env, [{**p, "Department": "QB Additive"} for p in people])
    folder = query_dir(env, "additive", tagged=contact_query(audience, "Department = 'QB Additive'", "QB additive"))

    [first] = push(env, folder)
    existing = sum(1 for e in (unsubscribed, cleaned) if e)
    assert first["full_reason"].startswith("first push")  # a new tag reads every match, not just the window
    assert (first["matched"], first["pushed"], first["created"], first["updated"]) == \
        (len(people), len(people) - 1, 2, existing)
    assert first["kept_status"] == existing
    assert first["rejected"] == 1 and first["reject_reasons"] == {"no email address": 1}
    assert first["requests"]["mailchimp"] <= 3

    alice = member(env, audience, "alice.qb@example.com")
    assert alice["status"] == "subscribed" and "QB additive" in tags_of(alice)
    assert alice["merge_fields"]["LNAME"] == "O'Brien \\ Jr"
    quoted = member(env, audience, "o'hara.qb@example.com")
    assert quoted["merge_fields"]["FNAME"] == 'Say "hi"' and "QB additive" in tags_of(quoted)
    for email, status in ((unsubscribed, "unsubscribed"), (cleaned, "cleaned")):
        if email:
            kept = member(env, audience, email)
            assert kept["status"] == status, "an existing member must never be re-subscribed"
            assert "QB additive" in tags_of(kept) and kept["merge_fields"]["LNAME"] in ("Unsubscribed", "Cleaned")

    [quiet] = push(env, folder, PAST)  # the tag exists now: only the window is read
    assert quiet["full_reason"] is None and quiet["matched"] == 0 and quiet["requests"]["mailchimp"] <= 2

    update_contacts(env, ids[:1], FirstName="Alicia")
    [changed] = push(env, folder)
    assert (changed["matched"], changed["updated"], changed["created"]) == (len(people), len(people) - 1, 0)
    assert member(env, audience, "alice.qb@example.com")["merge_fields"]["FNAME"] == "Alicia"


def test_quotes_and_backslashes_in_the_clause_reach_salesforce_intact(env, audience):
    add_contacts(env, [{"Email": "esc.qb@example.com", "LastName": "O'Neil \\ Sr", "Department": "QB Escape"},
                       {"Email": "esc2.qb@example.com", "LastName": "ONeil Sr", "Department": "QB Escape"}])
    where = "LastName = 'O\\'Neil \\\\ Sr' AND Department = 'QB Escape'"
    folder = query_dir(env, "escape", esc=contact_query(audience, where, "QB escape"))
    [dry] = push(env, folder, dry_run=True)
    assert (dry["matched"], dry["pushed"], dry["created"]) == (1, 1, 0)
    assert member(env, audience, "esc.qb@example.com") is None  # a dry run writes nothing


def test_mirror_takes_the_tag_from_who_stops_matching(env, audience):
    emails = [f"mirror{i}.qb@example.com" for i in range(3)]
    ids = add_contacts(env, [{"Email": e, "LastName": f"M{i}", "Department": "QB Mirror"}
                             for i, e in enumerate(emails)])
    folder = query_dir(env, "mirror", mirrored=contact_query(audience, "Department = 'QB Mirror'", "QB mirror",
                                                             "mode: mirror\n"))
    [first] = push(env, folder)
    assert (first["created"], first["untagged"]) == (3, 0)
    assert all("QB mirror" in tags_of(member(env, audience, e)) for e in emails)

    update_contacts(env, ids[:1], Department="Elsewhere")
    [second] = push(env, folder, PAST)  # mirror reads every match, whatever the window
    assert second["full_reason"] == "mirror mode compares every match"
    assert (second["matched"], second["untagged"], second["archived"]) == (2, 1, 0)
    gone = member(env, audience, emails[0])
    assert gone["status"] == "subscribed" and "QB mirror" not in tags_of(gone)
    assert all("QB mirror" in tags_of(member(env, audience, e)) for e in emails[1:])
    [third] = push(env, folder)
    assert third["untagged"] == 0


def test_mirror_can_archive_who_stops_matching(env, audience):
    emails = ["archive0.qb@example.com", "archive1.qb@example.com"]
    ids = add_contacts(env, [{"Email": e, "LastName": "A", "Department": "QB Archive"} for e in emails])
    folder = query_dir(env, "archive", archived=contact_query(audience, "Department = 'QB Archive'", "QB archive",
                                                              "mode: mirror\nmirror_action: archive\n"))
    push(env, folder)
    update_contacts(env, ids[1:], Department="Elsewhere")
    [summary] = push(env, folder)
    assert (summary["untagged"], summary["archived"]) == (1, 1)
    assert member(env, audience, emails[1])["status"] == "archived"
    assert member(env, audience, emails[0])["status"] == "subscribed"


def test_check_queries_names_the_file_line_and_salesforce_message(env, audience):
    from airflow.sdk.exceptions import AirflowFailException

    from mcsf.audience import hooks
    from mcsf.querybuilder import check_queries

    bad = f"""object: Contact
where: Departmnt = 'QB Additive'
audience_id: "{audience}"
status_if_new: subscribed
fields:
  Titel: JOBTITLE
  LastName: NOPE
"""
    folder = query_dir(env, "broken", broken=bad, fine=contact_query(audience, "Department = 'x'", "QB fine"),
                       ghost=contact_query("0000000000", "Department = 'x'", "QB ghost"))
    with env.active():
        mc, sf = hooks()
        problems = check_queries(sf, mc, folder)
    ghost = [p.message for p in problems if p.file.name == "ghost.yaml"]
    assert len(ghost) == 2 and "no mapping file" in ghost[0] and "cannot read audience 0000000000" in ghost[1]
    by_key = {p.key: p for p in problems if p.file.name == "broken.yaml"}
    assert set(by_key) == {"where", "fields.Titel", "fields.LastName"}, [str(p) for p in problems]
    where = by_key["where"]
    assert (where.file.name, where.line) == ("broken.yaml", 2)
    assert "INVALID_FIELD" in where.message and "No such column 'Departmnt'" in where.message
    assert "unknown Salesforce field 'Titel' on Contact" in by_key["fields.Titel"].message
    assert by_key["fields.LastName"].line == 7 and "NOPE is not in audience" in by_key["fields.LastName"].message

    with pytest.raises(AirflowFailException, match=r"broken\.yaml:2"):
        push(env, folder)
    assert member(env, audience, "alice.qb@example.com")["merge_fields"]["LNAME"] != "x"  # nothing was written


def test_a_thousand_contacts_cost_a_batch_request_per_five_hundred(env, audience):
    n = 1100
    add_contacts(env, [{"Email": f"bulk{i}.qb@example.com", "LastName": f"Bulk {i}", "Department": "QB Bulk"}
                       for i in range(n)])
    folder = query_dir(env, "bulk", many=contact_query(audience, "Department = 'QB Bulk'", "QB bulk"))
    [summary] = push(env, folder)
    assert (summary["matched"], summary["created"], summary["rejected"]) == (n, n, 0)
    # merge fields + the audience's tags + one batch subscribe per 500 members
    assert summary["requests"]["mailchimp"] == 2 + math.ceil(n / 500), summary["requests"]
    total = env.mailchimp().lists.get_segment_members_list(
        audience, str(_tag_id(env, audience, "QB bulk")), count=1)["total_items"]
    assert total == n


def _tag_id(env: Env, list_id: str, name: str) -> int:
    segments = env.mailchimp().lists.list_segments(list_id, type="static", count=1000)["segments"]
    return next(s["id"] for s in segments if s["name"] == name)
