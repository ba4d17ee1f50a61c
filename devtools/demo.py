"""``make demo``: the main job on one machine, end to end, then a short report.

1. Start the sandbox (state kept in ``.sandbox-state/demo``; seeded once: 3 audiences,
   ~50,000 members, campaigns with activity, some people already Contacts or Leads).
2. A fresh Airflow home on SQLite (``.airflow/demo``) with the sandbox's connections.
3. Real Airflow runs: the hourly DAG over the last few hours (a backfill, oldest first; the first
   run of an audience is a full load), then the nightly DAG for the busiest recent day.
4. Print per audience what changed where, and where to look in the UI (``make up``).

Running it again is safe: the same intervals run again and the report says nothing changed.
``make up`` (``--up``) serves the Airflow UI on the same sandbox instead.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from devtools.airflow_env import airflow, airflow_env, dags_test, init_home, summaries
from devtools.sandbox_proc import REPO, start_sandbox

STATE = REPO / ".sandbox-state" / "demo"
HOME = REPO / ".airflow" / "demo"
SEED_ARGS = ("--seed", "1", "--audiences", "3", "--members", "16700", "--campaigns", "12",
             "--activity-events", "60000")
HOURS = 3


def say(text: str = "") -> None:
    print(text, flush=True)


def busiest_day(info: dict[str, Any]) -> datetime:
    """Midnight after the most recent whole day (before today, UTC) a regular or SMS campaign went
    out: the nightly sync waits for its day to end, so today's would keep the demo waiting."""
    import mailchimp_marketing

    client = mailchimp_marketing.Client()
    client.set_config({"api_key": info["mailchimp_api_key"], "server": info["mailchimp_api_key"].split("-")[-1]})
    client.api_client.host = info["mailchimp_url"]
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    sent = [datetime.fromisoformat(c["send_time"]).astimezone(UTC)
            for c in client.campaigns.list(count=1000, status="sent")["campaigns"]
            if c["type"] in ("regular", "sms") and c.get("send_time")]
    latest = max(t for t in sent if t < today)
    return latest.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)


def run(env: dict[str, str], dag_id: str, end: datetime, log: Path) -> None:
    started = time.monotonic()
    result = dags_test(env, dag_id, end, log=log)
    status = "ok" if result.returncode == 0 else f"FAILED (exit {result.returncode}; log: {log})"
    say(f"  {dag_id} for the interval ending {end:%Y-%m-%d %H:%M} UTC: {status} in {time.monotonic() - started:.0f} s")
    if result.returncode != 0:
        say("\n".join((result.stdout + result.stderr).splitlines()[-25:]))
        raise SystemExit(1)


def report(env: dict[str, str], hourly: list[datetime], nightly: datetime) -> None:
    windows = {end.isoformat() for end in hourly}
    rows = [s for s in summaries(env, "mcsf_audience_sync") if s["window"][1] in windows]
    nights = [s for s in summaries(env, "mcsf_campaign_activity_sync") if s["window"][1] == nightly.isoformat()]
    say("\nWhat changed where")
    say("------------------")
    changed = 0
    for audience_id in sorted({r["audience_id"] for r in rows}):
        mine = [r for r in rows if r["audience_id"] == audience_id]
        night = [n for n in nights if n["audience_id"] == audience_id]
        reasons: Counter[str] = Counter()
        for r in mine + night:
            reasons.update(r.get("reject_reasons", {}))
        changed += sum(r["created"] + r["updated"] + r.get("deleted", 0) for r in mine + night)
        say(f"{mine[0]['name']} ({audience_id})")
        say(f"  members read from Mailchimp   {sum(r['extracted'] for r in mine):>8}")
        created, updated = sum(r["created"] for r in mine), sum(r["updated"] for r in mine)
        say(f"  Salesforce records created    {created:>8}   updated {updated}   unchanged "
            f"{sum(r['unchanged'] for r in mine)}")
        say(f"  leads created                 {sum(r['leads_created'] for r in mine):>8}")
        say(f"  linked to Contacts / Leads    {max((r['contacts_linked'] for r in mine), default=0):>8} / "
            f"{max((r['leads_linked'] for r in mine), default=0)}  (largest run)")
        if night:
            say(f"  activity events (nightly)     {night[0]['extracted']:>8}   records created {night[0]['created']}")
        say(f"  rejected                      {sum(r['rejected'] for r in mine + night):>8}")
        for reason, count in reasons.most_common(3):
            say(f"      {count:>6} × {reason}")
    say("")
    if changed == 0:
        say("Nothing changed: Salesforce already held what Mailchimp has for these intervals.")
    say(f"Rejected rows with reasons, and every staged file: {env['MCSF_STAGING_URL']}")
    say("Task logs end in SUMMARY lines; see them in the UI: `make up`, then the DAG's grid → a task → Logs.")


def demo() -> None:
    say("mcsf demo: starting the sandbox (first time: seeding ~50,000 members, about a minute)…")
    started = time.monotonic()
    sandbox = start_sandbox(STATE, *SEED_ARGS)
    try:
        say(f"  Mailchimp at {sandbox.info['mailchimp_url']}, Salesforce at {sandbox.info['salesforce_url']}")
        shutil.rmtree(HOME, ignore_errors=True)  # Airflow's own state is per demo; the org's state persists
        env = airflow_env(HOME, sandbox.info)
        say("Preparing Airflow (SQLite metadata database)…")
        init_home(env)
        now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        hourly = [now - timedelta(hours=h) for h in range(HOURS - 1, -1, -1)]
        nightly = busiest_day(sandbox.info)
        say(f"Backfilling {HOURS} hourly intervals of mcsf_audience_sync, oldest first "
            "(the first run of each audience is a full load):")
        for end in hourly:
            run(env, "mcsf_audience_sync", end, HOME / "logs" / "demo-hourly.log")
        say("One nightly run of mcsf_campaign_activity_sync:")
        run(env, "mcsf_campaign_activity_sync", nightly, HOME / "logs" / "demo-nightly.log")
        report(env, hourly, nightly)
        say(f"\nDone in {time.monotonic() - started:.0f} s.")
    finally:
        sandbox.stop()


def up() -> None:
    """Airflow standalone (SQLite) on the sandbox, DAGs unpaused, login printed."""
    sandbox = start_sandbox(STATE, *SEED_ARGS)
    home = REPO / ".airflow" / "up"
    env = airflow_env(home, sandbox.info, extra={
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__API__PORT": os.environ.get("MCSF_UI_PORT", "8080"),
    })
    init_home(env)
    for dag_id in ("mcsf_audience_sync", "mcsf_campaign_activity_sync"):
        airflow(env, "dags", "reserialize", check=False)
        airflow(env, "dags", "unpause", dag_id, check=False)
    say(f"Sandbox: Mailchimp {sandbox.info['mailchimp_url']}, Salesforce {sandbox.info['salesforce_url']}")
    say(f"Airflow UI: http://127.0.0.1:{env['AIRFLOW__API__PORT']}  (user admin; the password is printed by "
        f"standalone below and kept in {home}/simple_auth_manager_passwords.json.generated)")
    try:
        subprocess.run([str(Path(sys.executable).with_name("airflow")), "standalone"], env=env, cwd=REPO, check=False)
    finally:
        sandbox.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m devtools.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--up", action="store_true", help="serve the Airflow UI on the sandbox instead")
    args = parser.parse_args()
    up() if args.up else demo()


if __name__ == "__main__":
    main()
