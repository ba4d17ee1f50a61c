"""An Airflow home on SQLite wired to a running sandbox, and runs of the mcsf DAGs in it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def connection_env(info: dict[str, Any]) -> dict[str, str]:
    """``AIRFLOW_CONN_*`` variables (JSON form) for the sandbox's two APIs."""
    return {
        "AIRFLOW_CONN_MAILCHIMP_DEFAULT": json.dumps({
            "conn_type": "mailchimp", "host": info["mailchimp_url"], "password": info["mailchimp_api_key"],
        }),
        "AIRFLOW_CONN_SALESFORCE_DEFAULT": json.dumps({
            "conn_type": "salesforce",
            "extra": {"instance_url": info["salesforce_url"], "consumer_key": info["salesforce_client_id"],
                      "consumer_secret": info["salesforce_client_secret"], "ca_bundle": info["ca_bundle"]},
        }),
    }


def airflow_env(home: Path, info: dict[str, Any], *, mappings: Path | None = None, queries: Path | None = None,
                extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for ``airflow`` commands: SQLite home, our DAGs and plugins, sandbox connections.

    :param mappings: audience files (default: the repo's, for the default sandbox seed)
    :param queries: Query Builder files; with custom ``mappings`` and none given, an empty folder
        (the repo's queries name the default seed's audiences)
    """
    if queries is None and mappings is not None:
        queries = home / "queries"
        queries.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "AIRFLOW__"))}
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "MCSF_STAGING_URL": f"file://{home / 'staging'}",
        "MCSF_MAPPINGS_DIR": str(mappings or REPO / "include" / "mappings"),
        "MCSF_QUERIES_DIR": str(queries or REPO / "include" / "queries"),
        "PYTHONPATH": os.pathsep.join([str(REPO / "plugins"), str(REPO)]),
        **connection_env(info),
        **(extra or {}),
    })
    return env


def airflow(env: dict[str, str], *args: str, check: bool = True, capture: bool = True) -> subprocess.CompletedProcess:
    """Run the ``airflow`` CLI of this venv."""
    cmd = [str(Path(sys.executable).with_name("airflow")), *args]
    return subprocess.run(cmd, env=env, cwd=REPO, check=check, text=True,
                          capture_output=capture)


def init_home(env: dict[str, str]) -> None:
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    airflow(env, "db", "migrate")


def dags_test(env: dict[str, str], dag_id: str, interval_end: datetime, conf: dict[str, Any] | None = None,
              log: Path | None = None) -> subprocess.CompletedProcess:
    """``airflow dags test DAG END``: runs the interval that ends at END, in-process, on real Airflow."""
    args = ["dags", "test", dag_id, interval_end.isoformat()]
    if conf:
        args += ["--conf", json.dumps(conf)]
    result = airflow(env, *args, check=False)
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a") as handle:
            handle.write(result.stdout + result.stderr)
    return result


def summaries(env: dict[str, str], dag_id: str) -> list[dict[str, Any]]:
    """The per-audience report dicts the runs staged (``summary.json``), oldest window first."""
    root = Path(env["MCSF_STAGING_URL"].removeprefix("file://")) / dag_id
    return [json.loads(p.read_text()) for p in sorted(root.glob("*/*/summary.json"))]
