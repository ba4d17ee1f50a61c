"""
### mcsf — hourly audience sync (Mailchimp → Salesforce)

Every hour, what changed in each enabled Mailchimp audience during the run's data interval lands
in Salesforce: the audience, its subscribers (one `MC_Subscriber__c` per audience and email),
segments and their members, interests — and people who are not yet Leads or Contacts become
Leads where the audience's mapping allows it.

**Flow per audience** (mapped tasks are named by audience):
`preflight` → `extract` → `map` → `validate` → `load_people` → `load_subscribers` → `report`.

- *preflight* checks every file in `include/mappings/` against both systems and stops the run,
  listing every problem, before anything is written.
- *extract* reads only `[data_interval_start, data_interval_end)` (or the whole audience on a
  full resync, or when the audience's field map changed since it was last loaded).
- *validate* rejects rows with reasons (Great Expectations); above the mapping's
  `max_reject_share` the audience is stopped having written nothing.
- *load_people* creates Leads (upserts on `Lead.MC_Email_Key__c`) and updates matched Leads and
  Contacts; *load_subscribers* (which waits for every audience's people) upserts subscribers
  linked to them, segments and interests. Only what differs from Salesforce is written, on
  external ids: re-running an interval changes nothing.
- *report* ends the log with one `SUMMARY` line an analyst can read.

Then *push_queries*, the Query Builder: Leads and Contacts selected by the SOQL in
`include/queries/*.yaml` are upserted into their Mailchimp audience (additive or mirror; an
unsubscribed member is never re-subscribed).

**Params**: `audiences` (ids or mapping names; empty = all enabled), `full_resync`,
`push_queries`, `dry_run` (everything but the writes; would-be writes are staged and counted).
Backfill from the UI (Trigger → Backfill) or `POST /api/v2/backfills`; intervals may run in any order.
"""

from __future__ import annotations

from datetime import timedelta

import mcsf_settings  # plugins/: parse-time settings, standard library only
import pendulum
from airflow.sdk import Asset, CronDataIntervalTimetable, Param, dag, task

SUBSCRIBERS = Asset("salesforce://mcsf/MC_Subscriber__c")
LEADS = Asset("salesforce://mcsf/Lead")
MAILCHIMP_MEMBERS = Asset("mailchimp://mcsf/members")


@dag(
    dag_id="mcsf_audience_sync",
    schedule=CronDataIntervalTimetable("0 * * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=mcsf_settings.catchup(),
    max_active_runs=1,
    default_args={
        "owner": "data-engineering",
        # each step's audiences side by side, or at most this many (a worker's memory)
        "max_active_tis_per_dagrun": mcsf_settings.audiences_at_once(),
        "retries": 2,
        "retry_delay": timedelta(seconds=30),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=10),
    },
    tags=["mcsf", "mailchimp", "salesforce", "hourly"],
    doc_md=__doc__,
    params={
        "audiences": Param([], type="array", items={"type": "string"}, title="Audiences",
                           description="Audience ids or mapping names to sync; empty means every enabled audience."),
        "full_resync": Param(False, type="boolean", title="Full resync",
                             description="Read whole audiences instead of the data interval's changes."),
        "push_queries": Param(True, type="boolean", title="Push queries",
                              description="Run the Query Builder pushes (include/queries) after the sync."),
        "dry_run": Param(False, type="boolean", title="Dry run",
                         description="Do everything but write to Salesforce; would-be writes are staged and counted."),
    },
)
def mcsf_audience_sync():
    @task
    def preflight(params=None, data_interval_start=None, data_interval_end=None) -> list[dict]:
        from mcsf import audience

        return audience.preflight(data_interval_start, data_interval_end, audiences=params["audiences"] or None,
                                  full_resync=params["full_resync"], dry_run=params["dry_run"])

    # one audience at a time: Mailchimp allows 10 connections per account (an extract uses 8),
    # and the run's audiences share one read of whole Salesforce objects
    @task(map_index_template="{{ audience_name }}", max_active_tis_per_dagrun=1)
    def extract(audience: dict) -> dict:
        from mcsf import audience as steps

        return steps.run_step("extract", audience)

    @task(task_id="map", map_index_template="{{ audience_name }}")
    def map_(audience: dict) -> dict:
        from mcsf import audience as steps

        return steps.run_step("map", audience)

    @task(map_index_template="{{ audience_name }}")
    def validate(audience: dict) -> dict:
        from mcsf import audience as steps

        return steps.run_step("validate", audience)

    @task(map_index_template="{{ audience_name }}", outlets=[LEADS])
    def load_people(audience: dict) -> dict:
        from mcsf import audience as steps

        return steps.run_step("load_people", audience)

    @task(map_index_template="{{ audience_name }}", outlets=[SUBSCRIBERS])
    def load_subscribers(audience: dict) -> dict:
        from mcsf import audience as steps

        return steps.run_step("load_subscribers", audience)

    @task(map_index_template="{{ audience_name }}")
    def report(audience: dict) -> dict:
        from mcsf import audience as steps

        return steps.run_step("report", audience)

    @task(outlets=[MAILCHIMP_MEMBERS])
    def push_queries(params=None, data_interval_start=None, data_interval_end=None) -> list[dict]:
        from mcsf.querybuilder import run

        if not params["push_queries"]:
            return []
        return run(data_interval_start, data_interval_end, full=params["full_resync"], dry_run=params["dry_run"])

    checked = validate.expand(audience=map_.expand(audience=extract.expand(audience=preflight())))
    # Every audience's people are written before any audience's subscribers link to them.
    reports = report.expand(audience=load_subscribers.expand(audience=load_people.expand(audience=checked)))
    # The Query Builder pushes Salesforce -> Mailchimp once the audiences are in step.
    reports >> push_queries()


mcsf_audience_sync()
