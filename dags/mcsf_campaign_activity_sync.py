"""
### mcsf — nightly campaign-activity sync (Mailchimp → Salesforce)

Once a day, at midnight in the org's time zone (`MCSF_ORG_TIMEZONE`, default `UTC`), the
previous day `[00:00, 24:00)` of campaign activity of every audience in `activity` mode lands in
Salesforce: the campaigns (`MC_Campaign__c`, with their stats) and one `MC_Activity__c` per
send, open, click (with its URL), bounce and unsubscribe, linked to the subscriber and so to its
Lead or Contact. Standard email (`regular`) and SMS campaigns are synced, as the Mailchimp app does.

**Flow per audience** (mapped tasks are named by audience):
`preflight` → `members_synced` → `extract` → `map` → `validate` → `load` (with retention) → `report`.

- `members_synced` waits (a sensor in reschedule mode: no worker slot held, a check a minute, up to
  4 hours) until the hourly `mcsf_audience_sync` has finished a run ending at or after midnight
  for every audience, so the members who joined late in the day — or, on a new org, every member
  of a first full load still running — are in Salesforce before their activity links to them.

- Events are read with `since` = the day's start and cut at its end, so an event at 23:59:59
  lands in its own day and never in two.
- Every event has a deterministic key (campaign, member, action, timestamp, URL): re-running a
  day writes nothing new, duplicates collapse, days can be backfilled in any order.
- Retention: activity older than the audience's `activity_retention_days` is deleted (Bulk 2.0).

**Params**: `audiences`, `campaigns` (campaign ids; empty = all), `dry_run`, `wait_for_hourly_sync`
(off: load at once; activity of members not yet in Salesforce is rejected with Salesforce's reason).
"""

from __future__ import annotations

import os
from datetime import timedelta

import mcsf_settings  # plugins/: parse-time settings, standard library only
import pendulum
from airflow.sdk import Asset, CronDataIntervalTimetable, Param, PokeReturnValue, dag, task

ACTIVITY = Asset("salesforce://mcsf/MC_Activity__c")
CAMPAIGNS = Asset("salesforce://mcsf/MC_Campaign__c")
ORG_TIMEZONE = os.environ.get("MCSF_ORG_TIMEZONE", "UTC")
MEMBERS_POKE = timedelta(minutes=1)
MEMBERS_TIMEOUT = timedelta(hours=4)


@dag(
    dag_id="mcsf_campaign_activity_sync",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone=ORG_TIMEZONE),
    start_date=pendulum.datetime(2026, 1, 1, tz=ORG_TIMEZONE),
    catchup=mcsf_settings.catchup(),
    max_active_runs=1,
    default_args={
        "owner": "data-engineering",
        # each step's audiences side by side, or at most this many (a worker's memory)
        "max_active_tis_per_dagrun": mcsf_settings.audiences_at_once(),
        "retries": 2,
        "retry_delay": timedelta(minutes=1),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=15),
    },
    tags=["mcsf", "mailchimp", "salesforce", "nightly"],
    doc_md=__doc__,
    params={
        "audiences": Param([], type="array", items={"type": "string"}, title="Audiences",
                           description="Audience ids or mapping names (activity mode); empty means all."),
        "campaigns": Param([], type="array", items={"type": "string"}, title="Campaigns",
                           description="Campaign ids to sync; empty means every campaign of the audiences."),
        "dry_run": Param(False, type="boolean", title="Dry run",
                         description="Do everything but write to Salesforce; would-be writes are staged and counted."),
        "wait_for_hourly_sync": Param(True, type="boolean", title="Wait for the hourly sync",
                                      description="Wait until the hourly sync has loaded each audience's members "
                                                  "through the day's end (off: activity of members not yet in "
                                                  "Salesforce is rejected)."),
    },
)
def mcsf_campaign_activity_sync():
    @task
    def preflight(params=None, data_interval_start=None, data_interval_end=None) -> list[dict]:
        from mcsf import audience

        return audience.preflight_activity(data_interval_start, data_interval_end,
                                           audiences=params["audiences"] or None,
                                           campaigns=params["campaigns"] or None, dry_run=params["dry_run"])

    @task.sensor(poke_interval=MEMBERS_POKE, timeout=MEMBERS_TIMEOUT, mode="reschedule")
    def members_synced(audiences: list[dict], params=None) -> PokeReturnValue:
        from mcsf.audience import awaiting_members

        waiting = awaiting_members(audiences) if params["wait_for_hourly_sync"] else []
        return PokeReturnValue(is_done=not waiting, xcom_value=audiences)

    # one audience at a time: Mailchimp allows 10 connections per account (an extract uses 8)
    @task(map_index_template="{{ audience_name }}", max_active_tis_per_dagrun=1)
    def extract(audience: dict) -> dict:
        from mcsf.audience import run_step

        return run_step("extract", audience, activity=True)

    @task(task_id="map", map_index_template="{{ audience_name }}")
    def map_(audience: dict) -> dict:
        from mcsf.audience import run_step

        return run_step("map", audience, activity=True)

    @task(map_index_template="{{ audience_name }}")
    def validate(audience: dict) -> dict:
        from mcsf.audience import run_step

        return run_step("validate", audience, activity=True)

    @task(map_index_template="{{ audience_name }}", outlets=[ACTIVITY, CAMPAIGNS])
    def load(audience: dict) -> dict:
        from mcsf.audience import run_step

        return run_step("load", audience, activity=True)

    @task(map_index_template="{{ audience_name }}")
    def report(audience: dict) -> dict:
        from mcsf.audience import run_step

        return run_step("report", audience, activity=True)

    report.expand(audience=load.expand(audience=validate.expand(audience=map_.expand(
        audience=extract.expand(audience=members_synced(preflight()))))))


mcsf_campaign_activity_sync()
