"""Preflight: each bad input is one located problem; a clean run creates declared merge fields once.

The first half drives the pure :func:`check_mapping` with hand-written describes (fast, exact);
the second runs :func:`run_preflight` with the real hooks against the sandbox over HTTP.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mcsf.config import ConfigProblem, load_mapping
from mcsf.preflight import check_mapping


def _f(name: str, type: str = "string", length: int = 80, **kw: Any) -> dict[str, Any]:
    values = kw.pop("values", None)
    field = {"name": name, "label": name, "type": type, "length": length, "createable": True,
             "updateable": True, "nillable": True, "defaultedOnCreate": False,
             "picklistValues": [{"value": v, "label": v, "active": True} for v in values or []],
             "restrictedPicklist": False}
    field.update(kw)
    return field


LEAD = {f["name"]: f for f in [
    _f("Email", "email"), _f("FirstName", length=40), _f("LastName", nillable=False),
    _f("Company", length=255, nillable=False), _f("Phone", "phone", 40), _f("Street", "textarea", 255),
    _f("City", length=40), _f("NumberOfEmployees", "int", 0),
    _f("Status", "picklist", 255, nillable=False, defaultedOnCreate=True, values=["Open", "Closed"]),
    _f("LeadSource", "picklist", 255, values=["Web", "Mailchimp"]),
    _f("Rating", "picklist", 255, restrictedPicklist=True, values=["Hot", "Warm", "Cold"]),
    _f("CreatedDate", "datetime", 0, createable=False, updateable=False, nillable=False,
       defaultedOnCreate=True),
    _f("MC_Email_Key__c", length=255),
]}
CONTACT = {f["name"]: f for f in [
    _f("Email", "email"), _f("FirstName", length=40), _f("LastName", nillable=False),
    _f("Birthdate", "date", 0), _f("MailingCity", length=40), _f("Phone", "phone", 40),
]}
MERGE_FIELDS = [
    {"tag": "FNAME", "type": "text"}, {"tag": "LNAME", "type": "text"}, {"tag": "ADDRESS", "type": "address"},
    {"tag": "PHONE", "type": "phone"}, {"tag": "BIRTHDAY", "type": "birthday"},
    {"tag": "SIZE", "type": "dropdown", "options": {"choices": ["Hot", "Warm", "Cold", "Tepid"]}},
]
HEAD = "audience_id: a1b2c3d4e5\n"


def _check(tmp_path: Path, body: str) -> tuple[list[ConfigProblem], list[ConfigProblem]]:
    path = tmp_path / "m.yaml"
    path.write_text(HEAD + body)
    return check_mapping(load_mapping(path), MERGE_FIELDS, {"Lead": LEAD, "Contact": CONTACT})


def _fields(*entries: str) -> str:
    return "fields:\n" + "".join(f"  - {e}\n" for e in entries)


def _leads(default: str) -> str:
    return f"leads: {{create: true, defaults: {{LastName: x, Company: y, {default}}}}}\n"


# body after audience_id, (line, key) of the one problem, fragments of its message
BAD = [
    ("unknown merge tag", _fields("{merge_tag: NICK, lead_field: FirstName}"),
     (3, "fields[0].merge_tag"), ["merge tag NICK does not exist", "FNAME", "create_merge_fields"]),
    ("unknown field", _fields("{merge_tag: FNAME, lead_field: Compnay}"),
     (3, "fields[0].lead_field"), ["unknown Salesforce field 'Compnay' on Lead — use one of Company"]),
    ("read-only field", _fields("{merge_tag: FNAME, lead_field: CreatedDate}"),
     (3, "fields[0].lead_field"), ["Lead.CreatedDate is read-only"]),
    ("incompatible type", _fields("{merge_tag: BIRTHDAY, contact_field: Phone}"),
     (3, "fields[0].contact_field"),
     ["BIRTHDAY (birthday) does not fit Contact.Phone (phone)", "field of type string"]),
    ("birthday into a date", _fields("{merge_tag: BIRTHDAY, contact_field: Birthdate}"),
     (3, "fields[0].contact_field"), ["does not fit Contact.Birthdate (date)"]),
    ("part of a non-address", _fields("{merge_tag: FNAME.city, lead_field: City}"),
     (3, "fields[0].merge_tag"), ["FNAME is a text merge field, not an address"]),
    ("whole address", _fields("{merge_tag: ADDRESS, lead_field: Street}"),
     (3, "fields[0].merge_tag"), ["ADDRESS is an address — map its parts", "ADDRESS.addr1"]),
    ("choices outside a restricted picklist", _fields("{merge_tag: SIZE, lead_field: Rating}"),
     (3, "fields[0].lead_field"), ["choices ['Tepid'] of SIZE", "restricted picklist Lead.Rating"]),
    ("picklist values outside the dropdown",
     _fields("{merge_tag: SIZE, lead_field: LeadSource, direction: salesforce_to_mailchimp}"),
     (3, "fields[0].lead_field"), ["Lead.LeadSource values ['Mailchimp', 'Web'] are not choices of SIZE"]),
    ("lead creation without LastName", "leads: {create: true}\n",
     (2, "leads.create"), ["new Leads need LastName"]),
    ("bad restricted default", _leads("Rating: Lukewarm"),
     (2, "leads.defaults.Rating"), ["'Lukewarm' is not a value of the Lead.Rating picklist", "Hot, Warm"]),
    ("non-number default", _leads("NumberOfEmployees: many"),
     (2, "leads.defaults.NumberOfEmployees"), ["is a number"]),
    ("default too long", _leads(f"FirstName: {'n' * 41}"),
     (2, "leads.defaults.FirstName"), ["longer than Lead.FirstName allows (40)"]),
    ("read-only default", _leads("CreatedDate: today"),
     (2, "leads.defaults.CreatedDate"), ["not createable"]),
    ("declared with another type", "create_merge_fields:\n  - {tag: FNAME, name: First, type: number}\n",
     (3, "create_merge_fields[0].type"), ["FNAME already exists in the audience as a text field"]),
]


@pytest.mark.parametrize(("body", "where", "fragments"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_mapping_gives_one_located_problem(tmp_path: Path, body: str, where: tuple[int, str],
                                               fragments: list[str]) -> None:
    problems, _ = _check(tmp_path, body)
    assert [(p.line, p.key) for p in problems] == [where], problems
    for fragment in fragments:
        assert fragment in problems[0].message
    assert str(problems[0]).endswith(f"m.yaml:{where[0]}: {where[1]}: {problems[0].message}")


def test_good_mapping_passes_with_warnings_only(tmp_path: Path) -> None:
    problems, warnings = _check(tmp_path, (
        "leads:\n  create: true\n  defaults: {Company: '[not provided]'}\n"
        "create_merge_fields:\n  - {tag: COMPANY, name: Company, type: text}\n"
        + _fields("{merge_tag: FNAME, lead_field: FirstName, contact_field: FirstName, direction: both}",
                  "{merge_tag: LNAME, lead_field: LastName, contact_field: LastName}",
                  "{merge_tag: COMPANY, lead_field: Company}",  # declared, so it may be mapped
                  "{merge_tag: ADDRESS.city, lead_field: City, contact_field: MailingCity}",
                  "{merge_tag: PHONE, contact_field: Phone, overwrite: always}",
                  "{merge_tag: SIZE, lead_field: Rating, direction: salesforce_to_mailchimp}")))
    assert problems == []
    texts = [f"{w.key}: {w.message}" for w in warnings]
    assert any(t.startswith("leads.create: members without a value for Lead.LastName") for t in texts)
    [short] = [t for t in texts if t.startswith("fields: Salesforce fields shorter than Mailchimp's 255")]
    assert "Lead.FirstName (40), Contact.FirstName (40), Lead.LastName (80)" in short
    assert short.endswith("Contact.Phone (40) — longer values are rejected row by row")
    assert not any("LeadSource" in t for t in texts)  # 'Mailchimp' is a picklist value


def test_unreachable_systems_skip_their_checks(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(HEAD + _fields("{merge_tag: NICK, lead_field: Compnay}"))
    m = load_mapping(path)
    assert check_mapping(m, None, None) == ([], [])
    assert [p.key for p in check_mapping(m, MERGE_FIELDS, None)[0]] == ["fields[0].merge_tag"]
    assert [p.key for p in check_mapping(m, None, {"Lead": LEAD, "Contact": CONTACT})[0]] == [
        "fields[0].lead_field"]


def test_missing_lead_key_blocks_lead_creation(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(HEAD + "leads: {create: true, defaults: {LastName: x, Company: y}}\n")
    lead = {k: v for k, v in LEAD.items() if k != "MC_Email_Key__c"}
    problems, _ = check_mapping(load_mapping(path), MERGE_FIELDS, {"Lead": lead, "Contact": CONTACT})
    assert [p.key for p in problems] == ["leads.create"] and "MC_Email_Key__c" in problems[0].message


# --- against the sandbox, over HTTP -------------------------------------------------------------


def set_connections(monkeypatch: pytest.MonkeyPatch, sandbox: dict[str, Any], *, api_key: str | None = None,
                    secret: str | None = None) -> None:
    """Point the default Airflow connections at the sandbox (env vars: no metadata DB needed)."""
    monkeypatch.setenv("AIRFLOW_CONN_MAILCHIMP_DEFAULT", json.dumps(
        {"conn_type": "mailchimp", "host": sandbox["mailchimp_url"],
         "password": api_key or sandbox["mailchimp_api_key"]}))
    monkeypatch.setenv("AIRFLOW_CONN_SALESFORCE_DEFAULT", json.dumps(
        {"conn_type": "salesforce", "extra": {
            "instance_url": sandbox["salesforce_url"], "consumer_key": sandbox["salesforce_client_id"],
            "consumer_secret": secret or sandbox["salesforce_client_secret"],
            "ca_bundle": sandbox["ca_bundle"]}}))


@pytest.fixture
def live(monkeypatch: pytest.MonkeyPatch, sandbox: dict[str, Any]) -> dict[str, Any]:
    set_connections(monkeypatch, sandbox)
    return sandbox


@pytest.fixture(scope="module")
def audiences(sandbox: dict[str, Any]) -> dict[str, str]:
    """The sandbox's audience ids by name (they depend on the seed)."""
    import requests

    answer = requests.get(sandbox["mailchimp_url"] + "/lists", params={"count": 100},
                          auth=("x", sandbox["mailchimp_api_key"]), timeout=30)
    return {a["name"]: a["id"] for a in answer.json()["lists"]}


def _preflight(tmp_path: Path, files: dict[str, str], create: bool = True) -> Any:
    from mcsf.config import load_mappings
    from mcsf.hooks.mailchimp import MailchimpHook
    from mcsf.hooks.salesforce import McsfSalesforceHook
    from mcsf.preflight import run_preflight

    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return run_preflight(load_mappings(tmp_path), MailchimpHook(), McsfSalesforceHook(),
                         create_merge_fields=create)


def _lines(report: Any) -> list[str]:
    return [f"{p.file.name if p.file else ''}:{p.line or ''}: {p.key}: {p.message}" for p in report.problems]


LIVE_BAD = [
    ("unknown merge tag", "fields:\n  - {merge_tag: NICKNAME, lead_field: FirstName}\n",
     "a.yaml:3: fields[0].merge_tag: merge tag NICKNAME does not exist in audience"),
    ("unknown field", "fields:\n  - {merge_tag: COMPANY, lead_field: Compnay}\n",
     "a.yaml:3: fields[0].lead_field: unknown Salesforce field 'Compnay' on Lead — use one of Company"),
    ("read-only field", "fields:\n  - {merge_tag: FNAME, lead_field: CreatedDate}\n",
     "a.yaml:3: fields[0].lead_field: Lead.CreatedDate is read-only (not updateable)"),
    ("incompatible type", "fields:\n  - {merge_tag: WEBSITE, lead_field: NumberOfEmployees}\n",
     "a.yaml:3: fields[0].lead_field: WEBSITE (url) does not fit Lead.NumberOfEmployees (int)"),
    ("unknown segment", "segment_id: 9999\n",
     "a.yaml:2: segment_id: segment 9999 not found in audience"),
]


@pytest.mark.parametrize(("body", "expected"), [b[1:] for b in LIVE_BAD], ids=[b[0] for b in LIVE_BAD])
def test_live_bad_mapping_is_one_problem(live: dict[str, Any], audiences: dict[str, str], tmp_path: Path,
                                         body: str, expected: str) -> None:
    report = _preflight(tmp_path, {"a.yaml": f"audience_id: '{audiences['Newsletter']}'\n{body}"})
    assert len(report.problems) == 1 and _lines(report)[0].startswith(expected), _lines(report)
    assert report.audiences_checked == 1 and report.requests["mailchimp"] >= 3


def test_unknown_audience(live: dict[str, Any], tmp_path: Path) -> None:
    report = _preflight(tmp_path, {"a.yaml": "audience_id: '0000000000'\nsegment_id: 1\n"})
    assert _lines(report) == ["a.yaml:1: audience_id: cannot read audience 0000000000 in this Mailchimp "
                              "account — copy the id from Audience → Settings"]


def test_missing_connections(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_MAILCHIMP_DEFAULT", raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_SALESFORCE_DEFAULT", raising=False)
    report = _preflight(tmp_path, {"a.yaml": "audience_id: a1\n"})
    assert [str(p) for p in report.problems] == [
        "connection 'mailchimp_default' is not defined: set AIRFLOW_CONN_MAILCHIMP_DEFAULT or add it in "
        "Admin → Connections",
        "connection 'salesforce_default' is not defined: set AIRFLOW_CONN_SALESFORCE_DEFAULT or add it in "
        "Admin → Connections"]
    assert report.requests == {"mailchimp": 0, "salesforce": 0}


def test_wrong_credentials(
    monkeypatch: pytest.MonkeyPatch, sandbox: dict[str, Any], audiences: dict[str, str], tmp_path: Path
) -> None:
    set_connections(monkeypatch, sandbox, api_key="0123456789abcdef0123456789abcdef-us1", secret="wrong")
    report = _preflight(tmp_path, {"a.yaml": f"audience_id: '{audiences['Newsletter']}'\n"})
    keys = [p.key for p in report.problems]
    assert keys == ["connection mailchimp_default", "connection salesforce_default"], _lines(report)
    assert "401" in report.problems[0].message and "check the API key" in report.problems[0].message
    assert "cannot log in to Salesforce" in report.problems[1].message


def test_viewer_role_is_refused(live: dict[str, Any], audiences: dict[str, str], tmp_path: Path) -> None:
    import requests

    def set_role(role: str) -> None:
        url = live["mailchimp_url"].removesuffix("/3.0") + "/_sandbox/account"
        answer = requests.put(url, json={"role": role}, auth=("x", live["mailchimp_api_key"]), timeout=30)
        assert answer.status_code == 200, answer.text

    set_role("viewer")
    try:
        report = _preflight(tmp_path, {"a.yaml": f"audience_id: '{audiences['Newsletter']}'\n"})
    finally:
        set_role("owner")
    assert [str(p) for p in report.problems] == [
        "connection mailchimp_default: the API key's user has role 'viewer'; mcsf needs owner, admin, "
        "manager — use such a user's API key"]


def test_declared_merge_field_is_created_once_and_only_when_all_is_well(
    live: dict[str, Any], audiences: dict[str, str], tmp_path: Path
) -> None:
    from mcsf.hooks.mailchimp import MailchimpHook

    events = audiences["Events"]
    good = (f"audience_id: '{events}'\nsync_mode: activity\n"
            "fields:\n  - {merge_tag: MCSFPF, lead_field: Title, contact_field: Title}\n"
            "create_merge_fields:\n  - {tag: MCSFPF, name: Preflight test, type: text}\n")
    broken = f"audience_id: '{audiences['Customers']}'\nfields:\n  - {{merge_tag: NOPE, lead_field: Title}}\n"
    # Another file's problem blocks every write, this file's merge field included.
    failed = _preflight(tmp_path, {"events.yaml": good, "customers.yaml": broken})
    assert [p.key for p in failed.problems] == ["fields[0].merge_tag"] and failed.merge_fields_created == []
    assert failed.merge_fields_missing == [f"{events}:MCSFPF"]
    assert f"merge fields created: none (not created: {events}:MCSFPF)" in failed.summary()
    assert "MCSFPF" not in {f["tag"] for f in MailchimpHook().list_merge_fields(events)}

    (tmp_path / "customers.yaml").unlink()
    first = _preflight(tmp_path, {})
    assert first.ok and first.merge_fields_created == [f"{events}:MCSFPF"], _lines(first)
    created = {f["tag"]: f for f in MailchimpHook().list_merge_fields(events)}["MCSFPF"]
    assert (created["name"], created["type"]) == ("Preflight test", "text")
    second = _preflight(tmp_path, {})
    assert second.ok and second.merge_fields_created == []
    assert "merge fields created: none" in second.summary()
