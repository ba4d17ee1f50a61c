"""The sync-status page in a real headless Chromium, served by a real ``airflow api-server``.

Summaries come from real syncs (``devtools.runner``) against a small sandbox: two days of hourly
windows with member changes and bad rows injected (one a dry run), and two nightly days of
campaign activity. The matching DagRuns are recorded in Airflow's SQLite metadata DB through its
public REST API (trigger with the interval, then mark success or failed; ``airflow dags test``
per run would cost minutes). A viewer logs in through Airflow's login form, opens the page
directly and from the UI's nav, and the screenshots land in ``tests/artifacts/``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from devtools.airflow_env import airflow_env
from tests.integration.conftest import Env, mapping_yaml

if TYPE_CHECKING:
    from collections.abc import Iterator

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "tests" / "artifacts"
SIZES = ("--audiences", "2", "--members", "120", "--campaigns", "3", "--activity-events", "600")
HOURLY, NIGHTLY = "mcsf_audience_sync", "mcsf_campaign_activity_sync"
USERS = {"admin": "admin", "viewer": "viewer"}
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1400,1000", "--force-device-scale-factor=1")
NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
# (hours before NOW the window ends, changed members, bad rows, dry run); the first is the full load.
HOURS = [(50, 0, 0, False), (42, 6, 1, False), (33, 8, 2, False), (26, 2, 0, True), (18, 5, 0, False),
         (8, 7, 1, False), (3, 3, 0, False), (1, 5, 2, False)]
FAILED_HOUR = 11  # a DagRun that failed before any report: no summary, a red dot on the chart


def browser_missing() -> str | None:
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        return "chromium and chromedriver are not installed: run scripts/install-browser.sh (Debian packages)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -r requirements.txt)"
    return None


pytestmark = pytest.mark.skipif(browser_missing() is not None, reason=browser_missing() or "")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def change(env: Env, list_id: str, start: datetime, hours_ago: int, good: int, bad: int) -> None:
    """Rename ``good`` members and add ``bad`` new ones that fail validation, all inside ``[start, start + 1 h)``."""
    at = (start + timedelta(minutes=7)).isoformat()
    members = env.mailchimp().lists.get_list_members_info(list_id, count=good, offset=hours_ago,
                                                          status="subscribed")["members"] if good else []
    changes = [{"email_address": m["email_address"], "merge_fields": {"FNAME": f"Renamed{hours_ago}"},
                "last_changed": at} for m in members]
    # a first name longer than Lead.FirstName allows, or no last name for the Lead: rejected with a reason
    changes += [{"email_address": f"bad.row.{hours_ago}.{i}@example.org", "status": "subscribed",
                 "merge_fields": {"FNAME": "F" * 60, "LNAME": "Row"} if i % 2 == 0 else {"FNAME": "Ann", "LNAME": ""},
                 "last_changed": at} for i in range(bad)]
    if changes:
        env.mc_private("POST", f"/lists/{list_id}/members?skip_merge_validation=true", {"members": changes})


def campaign_day(env: Env, list_id: str, day: datetime, opens: int) -> None:
    """A campaign sent to ``list_id`` at 08:00 on ``day``, opened by ``opens`` members during that day."""
    campaign = env.mc_private("POST", "/campaigns", {
        "list_id": list_id, "type": "regular", "status": "sent", "title": f"Daily news {day:%b %d}",
        "subject_line": "News", "send_time": (day + timedelta(hours=8)).isoformat(), "recipients": "all"})
    members = env.mailchimp().lists.get_list_members_info(list_id, count=opens, status="subscribed")["members"]
    env.mc_private("POST", f"/campaigns/{campaign['id']}/activity", {"events": [
        {"email_address": m["email_address"], "action": "open" if i % 3 else "click", "url": "https://example.org/a",
         "timestamp": (day + timedelta(hours=9, minutes=7 * i)).isoformat()} for i, m in enumerate(members)]})


class Airflow:
    """``airflow db migrate`` + ``dags reserialize`` (in the background), then ``airflow api-server``."""

    def __init__(self, home: Path, env: Env) -> None:
        home.mkdir(parents=True)
        passwords = home / "passwords.json"
        passwords.write_text(json.dumps(USERS))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.vars = airflow_env(home, env.info, mappings=env.mappings, extra={
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:{u}" for u in USERS),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__API_AUTH__JWT_SECRET": "status-page-test-jwt-secret",
            "AIRFLOW__API__SECRET_KEY": "status-page-test-secret-key",
            "AIRFLOW__API__BASE_URL": self.url,
        })
        self.log = (home / "airflow.log").open("wb")
        airflow = str(Path(sys.executable).with_name("airflow"))
        self.prepare = subprocess.Popen(f"'{airflow}' db migrate && '{airflow}' dags reserialize", shell=True,
                                        env=self.vars, cwd=REPO, stdout=self.log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        self.server: subprocess.Popen | None = None
        self.tokens: dict[str, str] = {}

    def start(self, timeout: float = 150) -> None:
        import requests

        assert self.prepare.wait(timeout) == 0, f"airflow db migrate / dags reserialize failed: {self.log.name}"
        airflow = str(Path(sys.executable).with_name("airflow"))
        self.server = subprocess.Popen([airflow, "api-server", "--host", "127.0.0.1", "--port", str(self.port)],
                                       env=self.vars, cwd=REPO, stdout=self.log, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.server.poll() is None, f"airflow api-server exited; see {self.log.name}"
            try:
                if requests.get(f"{self.url}/api/v2/monitor/health", timeout=10).ok:
                    return
            except requests.RequestException:  # not listening yet, or too busy starting to answer
                pass
            time.sleep(0.5)
        raise TimeoutError(f"airflow api-server did not answer within {timeout:.0f} s; see {self.log.name}")

    def token(self, user: str) -> str:
        import requests

        if user in self.tokens:
            return self.tokens[user]
        response = requests.post(f"{self.url}/auth/token", json={"username": user, "password": USERS[user]},
                                 timeout=30)
        response.raise_for_status()
        return self.tokens.setdefault(user, response.json()["access_token"])

    def api(self, method: str, path: str, body: Any = None, user: str = "admin") -> Any:
        import requests

        response = requests.request(method, f"{self.url}/api/v2{path}", json=body, timeout=60,
                                    headers={"Authorization": f"Bearer {self.token(user)}"})
        assert response.ok, f"{method} {path}: {response.status_code} {response.text[:500]}"
        return response.json()

    def record_run(self, dag_id: str, start: datetime, end: datetime, state: str) -> None:
        """A DagRun of that interval in the metadata DB, in its final state (no scheduler runs here)."""
        run = self.api("POST", f"/dags/{dag_id}/dagRuns", {
            "dag_run_id": f"manual__{start:%Y%m%dT%H%M}", "logical_date": start.isoformat(),
            "data_interval_start": start.isoformat(), "data_interval_end": end.isoformat()})
        self.api("PATCH", f"/dags/{dag_id}/dagRuns/{run['dag_run_id']}", {"state": state})

    def stop(self) -> None:
        """SIGTERM to each process group this started (the api-server forks its workers), then SIGKILL."""
        for process in (self.prepare, self.server):
            if process is None or process.poll() is not None:
                continue
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.log.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[dict[str, Any]]:
    """A sandbox, two days of real syncs staged, their DagRuns in Airflow, and the api-server up."""
    root = tmp_path_factory.mktemp("status")
    env = Env(root, *SIZES)
    airflow = Airflow(root / "airflow", env)
    try:
        # mapping files named like the seeded audiences; "Customers" syncs subscribers only
        names = {lst["id"]: lst["name"].lower() for lst in env.mailchimp().lists.get_all_lists(count=10)["lists"]}
        for path in env.mappings.glob("*.yaml"):
            path.unlink()
        for list_id, name in names.items():
            subscribers_only = name == "customers"
            (env.mappings / f"{name}.yaml").write_text(mapping_yaml(
                list_id, mode="subscribers_only" if subscribers_only else "activity",
                leads="false" if subscribers_only else "true"))
        env.vars["MCSF_STAGING_URL"] = airflow.vars["MCSF_STAGING_URL"]  # the api-server reads the same staging

        reports: dict[tuple[str, datetime], list[dict[str, Any]]] = {}
        for hours_ago, good, bad, dry in HOURS:
            start, end = NOW - timedelta(hours=hours_ago + 1), NOW - timedelta(hours=hours_ago)
            for list_id in env.lists:
                change(env, list_id, start, hours_ago, good, bad)
            reports[(HOURLY, start)] = env.run(start, end, dry_run=dry)
        newsletter = next(list_id for list_id, name in names.items() if name == "newsletter")
        for days_ago, opens in ((2, 25), (1, 40)):
            day = NOW.replace(hour=0) - timedelta(days=days_ago)
            campaign_day(env, newsletter, day, opens)
            reports[(NIGHTLY, day)] = env.run(day, day + timedelta(days=1), activity=True)

        airflow.start()
        airflow.api("PATCH", f"/dags/{HOURLY}", {"is_paused": False})
        for (dag_id, start), _ in reports.items():
            airflow.record_run(dag_id, start, start + timedelta(hours=1 if dag_id == HOURLY else 24), "success")
        failed = NOW - timedelta(hours=FAILED_HOUR + 1)
        airflow.record_run(HOURLY, failed, failed + timedelta(hours=1), "failed")
        yield {"airflow": airflow, "env": env, "reports": reports, "names": names}
    finally:
        airflow.stop()
        env.close()


def test_status_json_needs_a_user_and_matches_the_staged_runs(site):
    import requests

    airflow, reports = site["airflow"], site["reports"]
    assert requests.get(f"{airflow.url}/mcsf/status.json", timeout=30).status_code == 401
    redirect = requests.get(f"{airflow.url}/mcsf/status", allow_redirects=False, timeout=30)
    assert redirect.status_code == 303 and "/auth/login" in redirect.headers["location"]

    document = requests.get(f"{airflow.url}/mcsf/status.json", timeout=60,
                            headers={"Authorization": f"Bearer {airflow.token('viewer')}"}).json()

    hourly = [r for (dag_id, _), runs in reports.items() if dag_id == HOURLY for r in runs]
    audiences = {a["audience_id"]: a for a in document["audiences"]}
    assert {a["name"] for a in audiences.values()} == set(site["names"].values()) == {"newsletter", "customers"}
    for audience_id, row in audiences.items():
        mine = [r for r in hourly if r["audience_id"] == audience_id]
        totals = row["dags"][HOURLY]["totals"]
        assert totals["extracted"] == sum(r["extracted"] for r in mine) > 0
        assert totals["rejected"] == sum(r["rejected"] for r in mine) > 0
        assert row["dags"][HOURLY]["top_reasons"]
        assert row["dags"][HOURLY]["synced_through"][1] == (NOW - timedelta(hours=1)).isoformat()
    by_name = {a["name"]: a for a in audiences.values()}
    assert by_name["customers"]["sync_mode"] == "subscribers_only"
    assert by_name["customers"]["dags"][NIGHTLY]["applies"] is False
    assert by_name["newsletter"]["dags"][NIGHTLY]["totals"]["extracted"] > 0  # the send days' activity

    dag = {d["dag_id"]: d for d in document["dags"]}
    assert dag[HOURLY]["last_success"]["window"][1] == (NOW - timedelta(hours=1)).isoformat()
    # no scheduler runs here: once the next run is half an hour late the page says so
    assert dag[HOURLY]["health"] in ("ok", "overdue") and dag[HOURLY]["next_run_after"] is not None
    assert dag[NIGHTLY]["health"] == "paused"
    assert dag[HOURLY]["states"] == {"success": len(HOURS), "failed": 1}
    assert [r["dry_run"] for r in dag[HOURLY]["runs"]].count(True) == 1


@pytest.fixture(scope="module")
def browser(site) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    profile = tempfile.mkdtemp(prefix="mcsf-chromium-")
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def test_a_viewer_logs_in_and_reads_the_page(site, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as until
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 60)
    browser.get(f"{site['airflow'].url}/mcsf/status")
    wait.until(until.element_to_be_clickable((By.CSS_SELECTOR, "input[name=username]"))).send_keys("viewer")
    browser.find_element(By.CSS_SELECTOR, "input[type=password]").send_keys("viewer", Keys.ENTER)
    wait.until(until.presence_of_element_located((By.CSS_SELECTOR, "svg.mcsf-chart")))
    assert browser.current_url.endswith("/mcsf/status")

    text = browser.find_element(By.TAG_NAME, "body").text
    assert "Mailchimp ↔ Salesforce sync status" in text
    assert "newsletter" in text and "customers" in text
    assert "longer than Lead.FirstName allows (40)" in text and "paused" in text
    assert "not synced in subscribers only mode" in text
    extracted = sum(r["extracted"] for (dag_id, _), runs in site["reports"].items() if dag_id == HOURLY
                    for r in runs if site["names"][r["audience_id"]] == "newsletter")
    cells = [td.text for td in browser.find_elements(By.CSS_SELECTOR, "table.audiences td.num")]
    assert f"{extracted:,}" in cells  # newsletter's hourly total, as the staged summaries add up
    charts = browser.find_elements(By.CSS_SELECTOR, "svg.mcsf-chart")
    assert len(charts) == 2
    written = charts[0].find_elements(By.CSS_SELECTOR, "rect.mcsf-written")
    assert len(written) >= 5 and all(bar.size["height"] > 0 for bar in written)
    assert charts[0].find_elements(By.CSS_SELECTOR, "circle.mcsf-failed")
    assert "@" not in text  # no email anywhere on the page

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.set_window_size(1400, browser.execute_script(  # the whole page, not just the first screen
        "return document.documentElement.scrollHeight + window.outerHeight - window.innerHeight"))
    shot = ARTIFACTS / "status_page.png"
    assert browser.save_screenshot(str(shot))
    print(f"\nstatus page screenshot: {shot}")


def test_the_page_is_in_airflows_nav(site, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as until
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 60)
    browser.set_window_size(1400, 1000)
    browser.get(f"{site['airflow'].url}/")
    wait.until(until.element_to_be_clickable(
        (By.CSS_SELECTOR, "[data-testid=nav-sidebar] a[aria-label='Sync status']"))).click()
    wait.until(until.url_contains("/plugin/mcsf-status"))
    frame = wait.until(until.presence_of_element_located((By.CSS_SELECTOR, "iframe[title='Sync status']")))
    browser.switch_to.frame(frame)
    wait.until(until.presence_of_element_located((By.CSS_SELECTOR, "svg.mcsf-chart")))
    assert "newsletter" in browser.find_element(By.TAG_NAME, "body").text
    browser.switch_to.default_content()
    shot = ARTIFACTS / "status_page_in_airflow.png"
    assert browser.save_screenshot(str(shot))
    print(f"\nstatus page in the Airflow UI: {shot}")
