"""Both DAGs through real Airflow (`airflow dags test`, SQLite metadata DB) on the sandbox.

The task logs must end in the analyst's SUMMARY lines and never show an email, a key or a token.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from devtools.airflow_env import airflow_env, dags_test, init_home, summaries


@pytest.fixture(scope="module")
def airflow_home(env, tmp_path_factory):
    home = tmp_path_factory.mktemp("airflow")
    variables = airflow_env(home, env.info, mappings=env.mappings, queries=env.queries)
    init_home(variables)
    return variables


def secrets_of(env) -> list[str]:
    token = env.info["salesforce_client_secret"]
    return [env.info["mailchimp_api_key"], env.info["mailchimp_api_key"].split("-")[0], token,
            env.info["salesforce_client_id"]]


def test_hourly_dag_runs_in_airflow_and_reruns_as_a_no_op(env, airflow_home):
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    first = dags_test(airflow_home, "mcsf_audience_sync", end)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    output = first.stdout + first.stderr
    assert "SUMMARY" in output
    reports = [s for s in summaries(airflow_home, "mcsf_audience_sync") if s["window"][1] == end.isoformat()]
    assert {r["audience_id"] for r in reports} == set(env.lists)
    assert all(r["extracted"] > 0 for r in reports)

    second = dags_test(airflow_home, "mcsf_audience_sync", end)
    assert second.returncode == 0, second.stdout[-3000:]
    again = [s for s in summaries(airflow_home, "mcsf_audience_sync") if s["window"][1] == end.isoformat()]
    assert sum(r["created"] + r["updated"] for r in again) == 0

    logs = output + second.stdout + second.stderr
    for secret in secrets_of(env):
        assert secret not in logs
    assert not re.search(r"[\w.+-]+@[\w-]+\.(com|org|net|de|io|co)\b", logs), "an email reached the log"


def busiest_day(env) -> datetime:
    """Midnight ending the day a regular campaign was sent (the seed's activity trails its sends)."""
    sent = [c for c in env.mailchimp().campaigns.list(count=100, status="sent")["campaigns"]
            if c["type"] in ("regular", "sms")]
    send = datetime.fromisoformat(sent[0]["send_time"])
    return send.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)


def test_nightly_dag_runs_in_airflow(env, airflow_home):
    midnight = busiest_day(env)
    result = dags_test(airflow_home, "mcsf_campaign_activity_sync", midnight)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    reports = [s for s in summaries(airflow_home, "mcsf_campaign_activity_sync")
               if s["window"][0] == (midnight - timedelta(days=1)).isoformat()]
    assert {r["audience_id"] for r in reports} == set(env.lists)
    assert sum(r["extracted"] for r in reports) > 0
