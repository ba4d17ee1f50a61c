"""``python -m mcsf check`` and ``scaffold``: exit codes, one problem per line, starter files that load."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from mcsf.cli import main
from mcsf.config import load_mapping
from mcsf.scaffold import scaffold_mapping

REPO = Path(__file__).resolve().parents[3]


def _f(name: str, type: str = "string", **kw: Any) -> dict[str, Any]:
    return {"name": name, "label": kw.pop("label", name), "type": type, "length": 80, "createable": True,
            "updateable": True, "nillable": True, "defaultedOnCreate": False, **kw}


LEAD = {f["name"]: f for f in [
    _f("FirstName"), _f("LastName", nillable=False), _f("Company", nillable=False), _f("Phone", "phone"),
    _f("Street", "textarea"), _f("City"), _f("State"), _f("PostalCode"), _f("Country"),
    _f("Shoe_Size__c", "double", label="Shoe size"), _f("CreatedDate", "datetime", updateable=False),
]}
CONTACT = {f["name"]: f for f in [
    _f("FirstName"), _f("LastName", nillable=False), _f("Phone", "phone"), _f("Birthdate", "date"),
    _f("MailingStreet", "textarea"), _f("MailingCity"), _f("MailingState"), _f("MailingPostalCode"),
    _f("MailingCountry"),
]}
MERGE_FIELDS = [
    {"tag": "FNAME", "name": "First Name", "type": "text"},
    {"tag": "LNAME", "name": "Last Name", "type": "text"},
    {"tag": "ADDRESS", "name": "Address", "type": "address"},
    {"tag": "PHONE", "name": "Phone", "type": "phone"},
    {"tag": "BIRTHDAY", "name": "Birthday", "type": "birthday"},
    {"tag": "COMPANY", "name": "Company", "type": "text"},
    {"tag": "MMERGE7", "name": "Shoe Size", "type": "number"},  # matched by name to the label
    {"tag": "CREATED", "name": "Created", "type": "date"},  # only a read-only field fits: left out
    {"tag": "PET", "name": "Pet", "type": "text"},  # nothing fits
]


def test_scaffold_matches_by_tag_part_and_name_and_loads(tmp_path: Path) -> None:
    text = scaffold_mapping({"id": "a1b2c3d4e5", "name": "News: \"Weekly\""}, MERGE_FIELDS, LEAD, CONTACT)
    path = tmp_path / "news.yaml"
    path.write_text(text)
    m = load_mapping(path)
    assert m.audience_id == "a1b2c3d4e5" and m.name == 'News: "Weekly"' and not m.leads.create
    assert m.lead_fields() == {
        "FNAME": "FirstName", "LNAME": "LastName", "ADDRESS.addr1": "Street", "ADDRESS.city": "City",
        "ADDRESS.state": "State", "ADDRESS.zip": "PostalCode", "ADDRESS.country": "Country",
        "PHONE": "Phone", "COMPANY": "Company", "MMERGE7": "Shoe_Size__c"}
    assert "BIRTHDAY" not in m.contact_fields()  # MM/DD has no year: no date field fits
    assert m.contact_fields()["ADDRESS.zip"] == "MailingPostalCode"
    assert "#   PET: Pet (text) — no writable Lead or Contact field fits" in text and "#   CREATED:" in text
    assert m.leads.defaults["LastName"] == "[not provided]"  # LastName is required on Lead


def test_scaffold_without_matches_is_still_valid(tmp_path: Path) -> None:
    pet = {"tag": "PET", "name": "Pet", "type": "text"}
    text = scaffold_mapping({"id": "zz9", "name": ""}, [pet], {}, {})
    assert yaml.safe_load(text)["fields"] == []
    (tmp_path / "x.yaml").write_text(text)
    assert load_mapping(tmp_path / "x.yaml").fields == []


def test_check_without_connections_names_the_env_vars(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_MAILCHIMP_DEFAULT", raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_SALESFORCE_DEFAULT", raising=False)
    (tmp_path / "a.yaml").write_text("audience_id: a1b2c3d4e5\n")
    (tmp_path / "b.yaml").write_text("audience_id: b1\nsync_mode: sometimes\n")
    out = io.StringIO()
    assert main(["check", "--mappings", str(tmp_path)], out=out) == 1
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("b.yaml:2: sync_mode: 'sometimes' is not a valid choice — use one of "
                             "'activity', 'subscribers_only' or 'off'")
    assert lines[1] == ("connection 'mailchimp_default' is not defined: set AIRFLOW_CONN_MAILCHIMP_DEFAULT "
                        "or add it in Admin → Connections")
    assert lines[2].startswith("connection 'salesforce_default' is not defined: set "
                               "AIRFLOW_CONN_SALESFORCE_DEFAULT")
    assert lines[3].startswith("preflight FAILED: 3 problems, 0 warnings; audiences checked: 1;")
    assert len(lines) == 4


def test_usage_errors_exit_2() -> None:
    with pytest.raises(SystemExit) as caught:
        main(["scaffold"])
    assert caught.value.code == 2


def test_python_dash_m_mcsf_runs(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "mcsf", "--help"], capture_output=True, text=True,
                          cwd=tmp_path, env={"PYTHONPATH": str(REPO / "plugins")}, timeout=60, check=False)
    assert done.returncode == 0 and "check" in done.stdout and "scaffold" in done.stdout


# --- against the sandbox, over HTTP -------------------------------------------------------------


@pytest.fixture
def live(monkeypatch: pytest.MonkeyPatch, sandbox: dict[str, Any]) -> dict[str, str]:
    """Connections to the sandbox; returns its audience ids by name (they depend on the seed)."""
    import json

    import requests

    monkeypatch.setenv("AIRFLOW_CONN_MAILCHIMP_DEFAULT", json.dumps({
        "conn_type": "mailchimp", "host": sandbox["mailchimp_url"],
        "password": sandbox["mailchimp_api_key"]}))
    monkeypatch.setenv("AIRFLOW_CONN_SALESFORCE_DEFAULT", json.dumps({"conn_type": "salesforce", "extra": {
        "instance_url": sandbox["salesforce_url"], "consumer_key": sandbox["salesforce_client_id"],
        "consumer_secret": sandbox["salesforce_client_secret"], "ca_bundle": sandbox["ca_bundle"]}}))
    answer = requests.get(sandbox["mailchimp_url"] + "/lists", params={"count": 100},
                          auth=("x", sandbox["mailchimp_api_key"]), timeout=30)
    return {a["name"]: a["id"] for a in answer.json()["lists"]}


def _check(*args: str) -> tuple[int, list[str]]:
    out = io.StringIO()
    code = main(["check", *args], out=out)
    return code, out.getvalue().splitlines()


def test_shipped_mappings_pass_against_the_sandbox(live: dict[str, str], tmp_path: Path) -> None:
    # The shipped files name the default-seed audiences; the test sandbox has other ids, same shape.
    for path in (REPO / "include" / "mappings").glob("*.yaml"):
        text = path.read_text()
        name = yaml.safe_load(text)["name"]
        (tmp_path / path.name).write_text(text.replace(yaml.safe_load(text)["audience_id"], live[name]))
    code, lines = _check("--mappings", str(tmp_path), "--no-create")
    assert code == 0, lines
    assert [line for line in lines if not line.startswith("warning: ")] == [lines[-1]]
    assert lines[-1].startswith("preflight passed: 0 problems") and "audiences checked: 3" in lines[-1]


def test_shipped_audience_ids_are_the_default_seeds(tmp_path: Path) -> None:
    import sqlite3

    subprocess.run([sys.executable, "-m", "sandbox", "seed", "--state-dir", str(tmp_path), "--seed", "1"],
                   cwd=REPO, check=True, capture_output=True, timeout=120)
    with sqlite3.connect(tmp_path / "mailchimp.sqlite3") as db:
        seeded = dict(db.execute("SELECT name, id FROM lists"))
        segments = set(db.execute("SELECT list_id, id FROM segments"))
    for path in (REPO / "include" / "mappings").glob("*.yaml"):
        m = load_mapping(path)
        assert seeded[m.name] == m.audience_id, f"{path.name}: re-read the ids after changing the seed"
        assert m.segment_id is None or (m.audience_id, m.segment_id) in segments


def test_config_problems_and_api_problems_print_together(live: dict[str, str], tmp_path: Path) -> None:
    news = live["Newsletter"]
    (tmp_path / "a.yaml").write_text(f"audience_id: '{news}'\n"
                                     "fields:\n  - {merge_tag: MCSFCLI, lead_field: Title}\n"
                                     "create_merge_fields:\n  - {tag: MCSFCLI, name: CLI test, type: text}\n")
    (tmp_path / "b.yaml").write_text(f"audience_id: '{news}'\n")
    (tmp_path / "c.yaml").write_text(f"audience_id: '{live['Events']}'\nsync: activity\n")
    entries = "".join(f"  - {{merge_tag: F{i}, lead_field: F{i}__c}}\n" for i in range(81))
    (tmp_path / "d.yaml").write_text(f"audience_id: '{live['Customers']}'\nfields:\n{entries}")
    code, lines = _check("--mappings", str(tmp_path))
    assert code == 1
    problems = [line for line in lines[:-1] if not line.startswith("warning: ")]
    assert len(problems) == 3, lines
    assert problems[0].endswith(f"b.yaml:1: audience_id: audience {news} is also configured in "
                                f"{tmp_path / 'a.yaml'} — keep one file per audience")
    assert problems[1].endswith("c.yaml:2: sync: unknown key 'sync' (did you mean 'sync_mode'?) — allowed "
                                "keys: audience_id, name, sync_mode, segment_id, leads, "
                                "activity_retention_days, opt_out_policy, max_reject_share, fields, "
                                "create_merge_fields")
    assert problems[2].endswith("d.yaml:2: fields: 81 fields mapped, at most 80 allowed — remove 1")
    # a.yaml itself is fine and was checked, but nothing is created while any file is broken
    assert lines[-1].startswith("preflight FAILED: 3 problems") and "audiences checked: 1" in lines[-1]
    assert "merge fields created: none" in lines[-1]
    for name in ("b.yaml", "c.yaml", "d.yaml"):
        (tmp_path / name).unlink()
    code, lines = _check("--mappings", str(tmp_path))
    assert code == 0 and f"merge fields created: {news}:MCSFCLI; API requests: mailchimp " in lines[-1]
    code, lines = _check("--mappings", str(tmp_path))
    assert code == 0 and "merge fields created: none" in lines[-1]


def test_scaffold_writes_a_file_that_passes_check(live: dict[str, str], tmp_path: Path) -> None:
    target = tmp_path / "maps" / "customers.yaml"
    out = io.StringIO()
    assert main(["scaffold", live["Customers"], "--out", str(target)], out=out) == 0
    assert out.getvalue().startswith(f"wrote {target}")
    m = load_mapping(target)
    assert m.audience_id == live["Customers"] and m.name == "Customers"
    assert m.lead_fields()["FNAME"] == "FirstName" and m.contact_fields()["ADDRESS.city"] == "MailingCity"
    assert m.lead_fields()["COMPANY"] == "Company"
    code, lines = _check("--mappings", str(target.parent), "--no-create")
    assert code == 0, lines
    target.write_text("# edited by hand\n" + target.read_text())
    assert main(["scaffold", live["Customers"], "--out", str(target)], out=io.StringIO()) == 1
    assert target.read_text().startswith("# edited by hand")  # refused without --force
    assert main(["scaffold", live["Customers"], "--out", str(target), "--force"], out=io.StringIO()) == 0
    assert not target.read_text().startswith("# edited by hand")
    stdout = io.StringIO()
    assert main(["scaffold", live["Customers"], "--out", "-"], out=stdout) == 0
    assert stdout.getvalue() == target.read_text()
