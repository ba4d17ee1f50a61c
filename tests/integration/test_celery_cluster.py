"""The distributed path: Airflow 3 with the CeleryExecutor on PostgreSQL and Redis, two workers.

The scheduler runs both DAGs on unpause (catchup is off: the latest interval) and a backfill of
three more hourly intervals created through the REST API, on two Celery workers with their own
hostnames that share one staging path. What landed in the sandbox's Salesforce must be what one
run would have written: every member of each audience but the rejected ones, no Lead twice —
whichever worker ran which task, however the runs interleaved.

Needs PostgreSQL and Redis (see devtools/celery_cluster.py); marked ``cluster``.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from devtools.airflow_env import summaries
from devtools.celery_cluster import start_cluster
from tests.integration.conftest import SMALL, Env

pytestmark = pytest.mark.cluster

DAGS = ("mcsf_audience_sync", "mcsf_campaign_activity_sync")
RUNS_TIMEOUT_S = 600
BACKFILL_HOURS = 3


def _dependencies_ready() -> str | None:
    """Why the cluster cannot start here, or None."""
    try:
        import airflow.providers.celery  # noqa: F401
        import psycopg2
        import redis
    except ImportError as err:
        return f"missing {err.name}: install requirements.txt"
    from devtools.celery_cluster import POSTGRES_URL, REDIS_URL

    try:
        psycopg2.connect(POSTGRES_URL, connect_timeout=3).close()
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except Exception as err:
        return f"PostgreSQL or Redis not reachable: {err}"
    return None


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    if reason := _dependencies_ready():
        if os.environ.get("CI", "").lower() == "true":  # CI has both services: never skip there
            pytest.fail(reason)
        pytest.skip(reason)
    environment = Env(tmp_path_factory.mktemp("mcsf"), *SMALL)
    environment.people_before = people(environment)
    yield environment
    environment.close()


def people(env: Env) -> dict[str, Counter]:
    """Leads and Contacts per email (case-insensitive): the seeded org already has a few duplicates."""
    with env.active():
        sf = env.salesforce()
        return {obj: Counter(sf.query_frame(f"SELECT Email FROM {obj}")["Email"].dropna().str.strip().str.lower())
                for obj in ("Lead", "Contact")}


@pytest.fixture(scope="module")
def cluster(env, tmp_path_factory):
    # The sandbox's audiences only: no query definitions of the repository (they name other audiences).
    no_queries = tmp_path_factory.mktemp("queries")
    with start_cluster(tmp_path_factory.mktemp("airflow-celery"), env.info, workers=2, concurrency=2,
                       mappings=env.mappings, extra={"MCSF_QUERIES_DIR": str(no_queries), **env.vars}) as running:
        yield running


@pytest.fixture(scope="module")
def runs(cluster):
    """Unpause both DAGs, backfill hourly intervals; every run, once none is queued or running."""
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    for dag_id in DAGS:
        cluster.wait_for(f"{dag_id} parsed", lambda d=dag_id: cluster.api("GET", f"/dags/{d}"), timeout=180)
        cluster.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
    first = hour - timedelta(hours=BACKFILL_HOURS + 1)
    backfill = cluster.api("POST", "/backfills", json={
        "dag_id": DAGS[0], "from_date": first.isoformat(),
        "to_date": (hour - timedelta(hours=2)).isoformat(), "max_active_runs": BACKFILL_HOURS})

    def settled() -> list[dict] | None:
        found = [run for dag_id in DAGS for run in cluster.pages(f"/dags/{dag_id}/dagRuns", "dag_runs")]
        hourly = [r for r in found if r["dag_id"] == DAGS[0]]
        done = all(r["state"] in ("success", "failed") for r in found)
        return found if done and len(hourly) >= BACKFILL_HOURS + 1 and len(found) > len(hourly) else None

    started = time.monotonic()
    found = cluster.wait_for("every run finished", settled, timeout=RUNS_TIMEOUT_S, interval=3)
    print_timings(cluster, found, time.monotonic() - started)
    return {"backfill": backfill, "runs": found, "hour": hour}


def print_timings(cluster, found: list[dict], runs_took: float) -> None:
    """Where the minutes go (shown with ``pytest -s``): start-up, runs, task durations, queueing."""
    tis = cluster.pages("/dags/~/dagRuns/~/taskInstances", "task_instances")
    durations = sorted(ti["duration"] or 0 for ti in tis)
    waits = sorted((datetime.fromisoformat(ti["start_date"]) - datetime.fromisoformat(ti["queued_when"]))
                   .total_seconds() for ti in tis if ti["start_date"] and ti["queued_when"])
    print(f"\ncluster started in {cluster.started_in:.0f} s; {len(found)} runs, {len(tis)} task instances "
          f"finished in {runs_took:.0f} s; task duration median {durations[len(durations) // 2]:.1f} s, "
          f"max {durations[-1]:.1f} s, sum {sum(durations):.0f} s; queued->running median "
          f"{waits[len(waits) // 2] if waits else 0:.1f} s")


def test_every_run_succeeds(cluster, runs):
    failed = [(r["dag_id"], r["dag_run_id"], r["state"]) for r in runs["runs"] if r["state"] != "success"]
    assert not failed, f"{failed}; logs in {cluster.home / 'logs'}"
    hourly = {datetime.fromisoformat(r["data_interval_start"]) for r in runs["runs"] if r["dag_id"] == DAGS[0]}
    want = {runs["hour"] - timedelta(hours=h) for h in range(1, BACKFILL_HOURS + 2)}
    assert want <= hourly, "the backfill's intervals and the latest one all ran"
    backfilled = [r for r in runs["runs"] if r["run_type"] == "backfill"]
    assert len(backfilled) == BACKFILL_HOURS and {r["dag_id"] for r in runs["runs"]} == set(DAGS)


def test_tasks_ran_on_both_workers(cluster, runs):
    # Only the runs waited for: past an hour's end the scheduler may have started another.
    waited = {(r["dag_id"], r["dag_run_id"]) for r in runs["runs"]}
    tis = [ti for ti in cluster.pages("/dags/~/dagRuns/~/taskInstances", "task_instances")
           if (ti["dag_id"], ti["dag_run_id"]) in waited]
    assert tis and all(ti["state"] == "success" for ti in tis), Counter(ti["state"] for ti in tis)
    hosts = Counter(ti["hostname"] for ti in tis)
    assert set(hosts) == {"worker-1", "worker-2"}, hosts


def test_salesforce_holds_every_member_but_the_rejected_once(env, cluster, runs):
    reports = summaries(env.vars, DAGS[0])
    with env.active():
        sf = env.salesforce()
        for list_id in env.lists:
            total = env.mailchimp().lists.get_list_members_info(list_id, count=1)["total_items"]
            full = [r for r in reports if r["audience_id"] == list_id and r["extracted"] == total]
            assert full, f"no run loaded the whole audience {list_id}"
            rejected = {r["validate_rejected"] for r in full}
            assert len(rejected) == 1, f"runs of the same data rejected differently: {rejected}"
            assert all(r["load_failed"] == 0 for r in full)
            subscribers = sf.query_frame("SELECT MC_Subscriber_Key__c FROM MC_Subscriber__c "
                                         f"WHERE MC_Subscriber_Key__c LIKE '{list_id}:%'")
            assert len(subscribers) == total - rejected.pop()
            assert subscribers["MC_Subscriber_Key__c"].is_unique


def test_no_lead_twice_and_none_for_a_contact(env, runs):
    """Concurrent runs, each a first full load, matched people by email before creating Leads."""
    before, after = env.people_before, people(env)
    created = after["Lead"] - before["Lead"]
    assert created, "the runs created no Lead at all"
    twice = {email: n for email, n in created.items() if n + before["Lead"][email] > 1}
    assert not twice, f"Leads created for emails that already had one: {list(twice.items())[:5]}"
    assert not set(created) & set(before["Contact"]), "a Lead was created for a Contact's email"


def test_nightly_run_reported_every_audience(env, runs):
    """Its reports were staged by whichever worker ran them, where the test (another machine) reads them."""
    reports = summaries(env.vars, DAGS[1])
    assert {r["audience_id"] for r in reports} == set(env.lists)
    assert all(r["load_failed"] == 0 for r in reports)
