"""Nothing leaks, nothing is trusted blindly, nothing is open.

- The artifacts of a full run of both syncs (the twin: four hourly runs and one nightly run, in a
  child process as a worker runs a task) hold no API key, client secret or access token anywhere,
  and no email outside the staged data files whose job is to carry them (:data:`EMAIL_FILES`).
- No ``verify=False`` / ``CERT_NONE`` (or kin) in the repository's code and configuration.
- Every route of both emulators refuses a request without valid credentials.
- The Mailchimp emulator survives schemathesis fuzzing of the operations it implements (from the
  public OpenAPI description) without a 5xx or a crash.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import re
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.reliability.conftest import REPO, SOAK, record_figures

#: Staged files that exist to carry emails (members read from Mailchimp, what Salesforce holds for
#: them, the rows mapped, validated and linked, the Leads an audience created for the run's others to
#: link to, and the rejects, whose Salesforce refusal texts
#: quote the refused value). Everything else — logs, summaries, return values, JSON metadata,
#: activity events (keyed by email hash) — must hold none.
EMAIL_FILES = frozenset({"members", "mapped", "valid", "sf_subscribers", "sf_contacts", "sf_leads", "links",
                         "leads_created", "rejects_validate", "rejects_people", "rejects_load"})
INSECURE = [re.compile(p) for p in (r"verify\s*=\s*False", r"CERT_NONE", r"_create_unverified_context",
                                    r"check_hostname\s*=\s*False", r"disable_warnings\s*\(",
                                    r"verify:\s*false", r"PYTHONHTTPSVERIFY")]
SKIP_DIRS = {".venv", ".git", "node_modules", "__pycache__", ".sandbox-state", ".airflow", ".pytest_cache",
             ".ruff_cache", "mcsf-staging"}
SPEC = Path("/work/shared/reference/mailchimp-marketing-openapi-3.0.55.yaml")
FUZZ_SECONDS = float(os.environ.get("MCSF_FUZZ_SECONDS", "300" if SOAK else "60"))
EXAMPLES_PER_ROUND = 5


# -- secrets and emails in artifacts ---------------------------------------------------------------


def secrets_of(sandbox_dir: Path, variables: dict[str, str]) -> dict[str, str]:
    """Every credential a run had: its connections' and each token Salesforce issued."""
    conns = {k: json.loads(v) for k, v in variables.items() if k.startswith("AIRFLOW_CONN_")}
    mc_key = conns["AIRFLOW_CONN_MAILCHIMP_DEFAULT"]["password"]
    sf_extra = conns["AIRFLOW_CONN_SALESFORCE_DEFAULT"]["extra"]
    found = {"mailchimp api key": mc_key, "mailchimp api key (without data centre)": mc_key.split("-")[0],
             "salesforce client secret": sf_extra["consumer_secret"]}
    with contextlib.closing(sqlite3.connect(sandbox_dir / "salesforce.sqlite3")) as db:
        for i, (token,) in enumerate(db.execute("SELECT token FROM _sf_tokens")):
            found[f"salesforce access token #{i}"] = token
            found[f"salesforce access token #{i} (after the org id)"] = token.split("!", 1)[-1]
    return found


def emails_of(sandbox_dir: Path) -> set[str]:
    with contextlib.closing(sqlite3.connect(sandbox_dir / "mailchimp.sqlite3")) as db:
        emails = {row[0].strip().lower() for row in db.execute("SELECT email_address FROM members")}
    with contextlib.closing(sqlite3.connect(sandbox_dir / "salesforce.sqlite3")) as db:
        for table in ("Lead", "Contact"):
            emails |= {row[0].strip().lower() for row in db.execute(f'SELECT Email FROM "{table}"') if row[0]}
    return emails


def parquet_text(path: Path) -> str:
    """Every cell and column name of a Parquet file, as text (the file itself is compressed)."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    return "\n".join([*table.column_names, *(str(v) for col in table.columns for v in col.to_pylist())])


def staged_files(staging: Path) -> dict[str, str]:
    return {str(path.relative_to(staging)): parquet_text(path) if path.suffix == ".parquet"
            else path.read_text(errors="replace") for path in sorted(staging.rglob("*")) if path.is_file()}


def search(files: dict[str, str], secrets: dict[str, str], emails: set[str]) -> tuple[list[str], set[str]]:
    """Leaks (a secret anywhere, an email outside :data:`EMAIL_FILES`) and the email-holding files."""
    email_pattern = _finder(emails)
    leaks, holders = [], set()
    for name, text in files.items():
        leaks += [f"{what} in {name}" for what, value in secrets.items() if value and value in text]
        hit = email_pattern.search(text)
        if hit:
            stem = Path(name).name.split(".")[0]
            if stem in EMAIL_FILES:
                holders.add(stem)
            else:
                leaks.append(f"an email ({len(hit.group())} chars) in {name}")
    return leaks, holders


def _finder(needles: set[str]) -> re.Pattern[str]:
    return re.compile("|".join(re.escape(n) for n in sorted(needles, key=len, reverse=True)), re.IGNORECASE)


def test_no_secret_and_no_stray_email_in_any_artifact(twin):
    """The twin's artifacts: its log (the output of a process running both syncs' steps), its
    return values (what XCom carries) and every staged file."""
    root = Path(twin["root"])
    secrets = secrets_of(root / "sandbox", twin["vars"])
    emails = emails_of(root / "sandbox")
    files = {"task log": Path(twin["log"]).read_text(errors="replace"),
             "return values (XCom)": json.dumps(twin["reports"]), **staged_files(root / "staging")}
    leaks, holders = search(files, secrets, emails)
    record_figures("security", {"artifacts_searched": len(files), "secrets_searched": len(secrets),
                                "emails_searched": len(emails), "leaked": len(leaks),
                                "files_holding_emails": sorted(holders)})
    assert len(secrets) >= 20 and len(emails) > 100 and len(files) > 20
    assert "members" in holders  # the search finds what it looks for
    assert not leaks, "\n".join(leaks[:20])


@pytest.mark.skipif(not SOAK, reason="two real Airflow runs take minutes; MCSF_SOAK=1 runs them")
def test_real_airflow_task_logs_and_xcom_hold_no_secret_or_email(make_world, tmp_path):
    """Both DAGs through ``airflow dags test``: the task logs (``dags test`` prints them; files
    under ``$AIRFLOW_HOME/logs`` too, where there are any), the XCom rows in Airflow's metadata DB
    and the staged files."""
    from devtools.airflow_env import airflow_env, dags_test, init_home
    from tests.reliability import scenario

    world = make_world()
    env = airflow_env(tmp_path / "home", world.info, mappings=world.mappings, queries=world.root / "queries")
    init_home(env)
    runs = [dags_test(env, "mcsf_audience_sync", scenario.ANCHOR),
            dags_test(env, "mcsf_campaign_activity_sync", scenario.NIGHT[1])]
    assert all(run.returncode == 0 for run in runs), runs[0].stdout[-2000:] + runs[1].stdout[-2000:]
    files = {f"dags test output {i}": run.stdout + run.stderr for i, run in enumerate(runs)}
    home = Path(env["AIRFLOW_HOME"])
    files.update({f"task log {p.relative_to(home)}": p.read_text(errors="replace")
                  for p in (home / "logs").rglob("*") if p.is_file()})
    with contextlib.closing(sqlite3.connect(home / "airflow.db")) as db:
        xcoms = db.execute("SELECT dag_id, task_id, map_index, value FROM xcom").fetchall()
    files.update({f"XCom {d}.{t}[{m}]": v.decode(errors="replace") if isinstance(v, bytes) else str(v)
                  for d, t, m, v in xcoms})
    files.update(staged_files(Path(env["MCSF_STAGING_URL"].removeprefix("file://"))))
    leaks, holders = search(files, secrets_of(world.root / "sandbox", world.vars), emails_of(world.root / "sandbox"))
    record_figures("security-airflow", {"artifacts_searched": len(files), "xcom_rows": len(xcoms),
                                        "leaked": len(leaks), "files_holding_emails": sorted(holders)})
    assert len(xcoms) > 10 and all("SUMMARY" in run.stdout + run.stderr for run in runs)  # the task logs are there
    assert not leaks, "\n".join(leaks[:20])


def test_failure_messages_name_no_secret(make_world):
    """Errors end up in task logs and in the UI: bad credentials must not be echoed back."""
    from simple_salesforce.exceptions import SalesforceAuthenticationFailed

    from mcsf.hooks.mailchimp import MailchimpApiError, MailchimpHook
    from mcsf.hooks.salesforce import McsfSalesforceHook

    world = make_world()
    wrong_secret = "S3CRET" + "9" * 58
    wrong_key = "f" * 32 + "-us1"
    conns = {k: json.loads(v) for k, v in world.vars.items() if k.startswith("AIRFLOW_CONN_")}
    conns["AIRFLOW_CONN_SALESFORCE_DEFAULT"]["extra"]["consumer_secret"] = wrong_secret
    conns["AIRFLOW_CONN_MAILCHIMP_DEFAULT"]["password"] = wrong_key
    with world.active():
        os.environ.update({k: json.dumps(v) for k, v in conns.items()})
        with pytest.raises(SalesforceAuthenticationFailed) as sf_err:
            _ = McsfSalesforceHook().conn
        with pytest.raises(MailchimpApiError) as mc_err:
            MailchimpHook().get_root()
    for err, secret in ((sf_err.value, wrong_secret), (mc_err.value, wrong_key)):
        text = f"{err} {err!r} {err.args}"
        assert secret not in text and secret[:20] not in text, text
    assert "client-credentials login" in str(sf_err.value) and "401" in str(mc_err.value)


# -- TLS verification ------------------------------------------------------------------------------


def insecure_python(source: str) -> list[str]:
    """TLS switched off in Python code (not in prose): ``verify=False`` as an argument or an
    assignment (tuple assignments paired up), ``CERT_NONE``, ``check_hostname = False``, unverified
    contexts, silenced urllib3 warnings."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return [p.pattern for p in INSECURE if p.search(source)]
    found = []

    def false(node: ast.AST) -> bool:
        return isinstance(node, ast.Constant) and node.value is False

    def name(node: ast.AST) -> str:
        return node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else ""

    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg in ("verify", "check_hostname") and false(node.value):
            found.append(f"{node.arg}=False (line {node.value.lineno})")
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                pairs = zip(target.elts, node.value.elts, strict=False) if isinstance(target, ast.Tuple) and \
                    isinstance(node.value, ast.Tuple) else [(target, node.value)]
                found += [f"{name(t)} = False (line {t.lineno})" for t, v in pairs
                          if name(t) in ("verify", "check_hostname") and v is not None and false(v)]
        elif isinstance(node, ast.Name | ast.Attribute) and name(node) in (
                "CERT_NONE", "_create_unverified_context", "disable_warnings"):
            found.append(f"{name(node)} (line {node.lineno})")
    return found


def test_nothing_turns_tls_verification_off():
    hits, scanned = [], 0
    for path in REPO.rglob("*"):
        parts = set(path.relative_to(REPO).parts)
        if not path.is_file() or SKIP_DIRS & parts or any(p.startswith(".venv") for p in parts) \
                or path.stat().st_size > 2_000_000:
            continue
        try:
            text = path.read_text()
        except (UnicodeDecodeError, OSError):
            continue
        scanned += 1
        if path.suffix == ".py":
            hits += [f"{path.relative_to(REPO)}: {hit}" for hit in insecure_python(text)]
            continue
        fenced = False
        for line in text.splitlines():
            if path.suffix in (".md", ".rst"):
                # Prose cannot turn TLS off (and says "never verify=False"); a fenced snippet a
                # reader copies can, so only code blocks of documentation are searched.
                if line.lstrip().startswith(("```", "~~~")):
                    fenced = not fenced
                if not fenced:
                    continue
            hits += [f"{path.relative_to(REPO)}: {p.pattern}" for p in INSECURE if p.search(line)]
    assert scanned > 100
    assert not hits, "\n".join(hits)


def test_the_tls_scan_finds_what_it_looks_for():
    assert insecure_python("requests.get(url, verify=False)\n")
    assert insecure_python("session.verify = False\n")
    assert insecure_python("s.trust_env, s.verify = True, False\n")
    assert insecure_python("ctx.verify_mode = ssl.CERT_NONE\n")
    assert not insecure_python('"""never verify=False"""\n# nor CERT_NONE\ns.trust_env, s.verify = False, ca\n')


# -- authentication on every route ----------------------------------------------------------------


def routes(app: Any) -> list[tuple[str, str]]:
    while not hasattr(app, "routes"):
        app = app.app
    return [(method, route.path) for route in app.routes for method in sorted(route.methods or ()) if method != "HEAD"]


def filled(path: str) -> str:
    version = "59.0" if path.startswith("/services/async/") else "v59.0"  # Bulk 1.0 has no "v"
    return re.sub(r"\{[^}]+\}", "x1", path.replace("{version}", version))


@pytest.fixture(scope="module")
def open_world(make_world, tmp_path_factory):
    """A world, and the route tables of apps built on a copy of its state (not served)."""
    from sandbox.controls import Controls
    from sandbox.mailchimp.app import create_app as mailchimp_app
    from sandbox.salesforce import create_app as salesforce_app

    world = make_world()
    copy = tmp_path_factory.mktemp("routes")
    import shutil

    shutil.copytree(world.root / "sandbox", copy / "s", ignore=shutil.ignore_patterns("*.log", "bulk"))
    return world, routes(mailchimp_app(copy / "s", Controls(), "http://x/3.0")), \
        routes(salesforce_app(copy / "s", Controls(), "https://127.0.0.1:1"))


def test_every_mailchimp_route_needs_the_api_key(open_world):
    world, mc_routes, _ = open_world
    base = world.info["mailchimp_url"].removesuffix("/3.0")
    key = world.info["mailchimp_api_key"]
    other_dc = key.rsplit("-", 1)[0] + "-us9"
    bad = []
    for method, path in [*mc_routes, ("GET", "/3.0/no/such/path"), ("GET", "/etc/passwd")]:
        url = base + filled(path)
        if path.startswith("/_sandbox/batch-results/"):
            response = requests.request(method, url, timeout=30)
            if response.status_code == 200:
                bad.append(f"{method} {path}: 200 for a made-up token")
            continue
        for auth, want in ((None, 401), (("u", "0" * 32 + "-us1"), 401), (("u", other_dc), 403),
                           (("u", ""), 401)):
            response = requests.request(method, url, auth=auth, json={}, timeout=30)
            if response.status_code != want:
                bad.append(f"{method} {path} with {'no key' if auth is None else 'a bad key'}: "
                           f"{response.status_code}, expected {want}")
    record_figures("auth", {"api": "mailchimp", "routes": len(mc_routes), "open": len(bad)})
    assert len(mc_routes) > 30
    assert not bad, "\n".join(bad)


def test_every_salesforce_route_needs_a_valid_token(open_world):
    world, _, sf_routes = open_world
    session = world._sf_session()
    base = world.info["salesforce_url"]
    expired = world.sf_token()
    world.sf_private("POST", "/oauth/ttl", {"seconds": 0, "token": expired})
    # Where credentials are presented, and the API version list (public in Salesforce too).
    public = {"/services/oauth2/token", "/services/oauth2/revoke", "/services/data", "/services/data/"}
    bad = []
    for method, path in [*sf_routes, ("GET", "/services/data/v59.0/no/such/path")]:
        if path in public:
            continue
        for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": f"Bearer {expired}"},
                        {"X-SFDC-Session": "not-a-token"}):
            response = session.request(method, base + filled(path), headers=headers, json={}, timeout=30)
            if path.startswith("/services/async/"):  # Bulk 1.0 says 400 InvalidSessionId, as Salesforce does
                refused_here = response.status_code == 400 and "InvalidSessionId" in response.text
            elif "/no/such/" in path:  # no route: nothing to protect, a 404 is as good as a 401
                refused_here = response.status_code in (401, 404)
            else:
                refused_here = response.status_code == 401
            if not refused_here:
                bad.append(f"{method} {path} with {headers or 'no token'}: {response.status_code}")
    refused = session.post(base + "/services/oauth2/token", timeout=30, data={
        "grant_type": "client_credentials", "client_id": world.info["salesforce_client_id"], "client_secret": "x"})
    record_figures("auth", {"api": "salesforce", "routes": len(sf_routes), "open": len(bad)})
    assert len(sf_routes) > 40
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_client"
    assert not bad, "\n".join(bad[:30])


# -- fuzzing the Mailchimp emulator with its public OpenAPI description ------------------------


def _template(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path.removeprefix("/3.0"))


@pytest.mark.skipif(not SPEC.exists(), reason=f"{SPEC} is not on this machine")
def test_schemathesis_fuzzing_finds_no_server_error(open_world):
    """Every operation of the spec that the emulator implements, with generated parameters and
    bodies (real audience, member and campaign ids half the time, so handlers are reached)."""
    import hypothesis
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings

    world, mc_routes, _ = open_world
    implemented = {(m, _template(p)) for m, p in mc_routes if p.startswith("/3.0")}
    schema = schemathesis.openapi.from_path(str(SPEC)).include(
        func=lambda ctx: (ctx.operation.method.upper(), _template(ctx.operation.path)) in implemented)
    operations = [result.ok() for result in schema.get_all_operations()]
    mc = world.mailchimp()
    list_id = world.lists[0]
    real = {"list_id": list_id, "campaign_id": mc.campaigns.list(count=1)["campaigns"][0]["id"],
            "subscriber_hash": mc.lists.get_list_members_info(list_id, count=1)["members"][0]["id"]}
    base = world.info["mailchimp_url"]
    auth = {"Authorization": requests.auth._basic_auth_str("fuzz", world.info["mailchimp_api_key"])}
    deadline = time.monotonic() + FUZZ_SECONDS
    calls, rounds, server_errors = 0, 0, []

    def fuzzer(operation: Any, round_: int) -> Any:
        @hypothesis.seed(round_)
        @settings(max_examples=EXAMPLES_PER_ROUND, deadline=None, database=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(), use_real=hypothesis.strategies.booleans())
        def fuzz(case: Any, use_real: bool) -> None:
            nonlocal calls
            if time.monotonic() > deadline:
                return
            if use_real and case.path_parameters:
                case.path_parameters = {k: real.get(k, v) for k, v in case.path_parameters.items()}
            response = case.call(base_url=base, headers=auth, timeout=30)
            calls += 1
            if response.status_code >= 500:
                server_errors.append(f"{operation.method.upper()} {operation.path}: {response.status_code} "
                                     f"{response.text[:200]}")

        return fuzz

    # Rounds over every operation (seeded: a failure replays), until the time is up.
    operations.sort(key=lambda op: (op.path, op.method))
    while time.monotonic() < deadline:
        rounds += 1
        for operation in operations:
            fuzzer(operation, rounds)()
    alive = requests.get(f"{base}/ping", auth=("u", world.info["mailchimp_api_key"]), timeout=30)
    server_log = (world.root / "sandbox" / "sandbox.log").read_text(errors="replace")
    record_figures("fuzz", {"schemathesis": schemathesis.__version__, "operations": len(operations),
                            "calls": calls, "rounds": rounds, "server_errors": len(server_errors),
                            "seconds": FUZZ_SECONDS})
    assert len(operations) >= 40 and rounds >= 1 and calls >= len(operations)
    assert not server_errors, "\n".join(server_errors[:20])
    assert alive.status_code == 200 and world.proc.process.poll() is None
    assert "Traceback" not in server_log, server_log[server_log.find("Traceback"):][:3000]
