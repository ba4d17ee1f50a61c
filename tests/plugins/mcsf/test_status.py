"""The sync-status page's numbers and chart: staged summaries + Airflow runs -> per run, per audience, SVG."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mcsf.config import AudienceMapping
from mcsf.staging import Stage, Window
from mcsf.status import (
    AirflowRun,
    DagInfo,
    audience_rows,
    build_status,
    chart_svg,
    compact,
    dag_health,
    log_height,
    log_top,
    read_summaries,
    render_html,
    run_rows,
    span,
    window_of_key,
)

PLUGINS = Path(__file__).resolve().parents[3] / "plugins"
HOURLY, NIGHTLY = "mcsf_audience_sync", "mcsf_campaign_activity_sync"
DAG_IDS = [HOURLY, NIGHTLY]
NOW = datetime(2026, 11, 27, 20, 30, tzinfo=UTC)
SVG = "{http://www.w3.org/2000/svg}"


def hour(offset: int) -> tuple[datetime, datetime]:
    end = NOW.replace(minute=0) + timedelta(hours=offset)
    return end - timedelta(hours=1), end


def report(audience_id: str, window: tuple[datetime, datetime], *, dag_id: str = HOURLY, name: str | None = None,
           **counts) -> dict:
    """A summary.json as ``mcsf.audience.report`` stages it (plus the dag_id the reader adds)."""
    base = {k: 0 for k in ("extracted", "rejected", "leads_created", "contacts_linked", "leads_linked", "created",
                           "updated", "unchanged", "deleted", "load_failed", "validate_rejected")}
    return {**base, "audience_id": audience_id, "name": name or f"list-{audience_id}",
            "window": [window[0].isoformat(), window[1].isoformat()], "reject_reasons": {},
            "requests": {"mailchimp": 2, "salesforce": 3}, "dry_run": False, "by_object": {},
            "summary": f"SUMMARY list-{audience_id}: extracted ...", "rejects_staged_at": "file:///staging/x",
            "dag_id": dag_id, **counts}


def airflow_run(window: tuple[datetime, datetime], state: str = "success", dag_id: str = HOURLY,
                run_id: str | None = None) -> AirflowRun:
    return AirflowRun(dag_id, run_id or f"scheduled__{window[0]:%Y%m%dT%H}", state, "scheduled", *window)


def mapping(audience_id: str, name: str, mode: str = "activity") -> AudienceMapping:
    return AudienceMapping(audience_id=audience_id, name=name, sync_mode=mode)


# -- reading staging -------------------------------------------------------------------------------

def test_window_of_key_reads_the_staging_folder_name():
    assert window_of_key("20261120T0900Z_20261120T1000Z") == (datetime(2026, 11, 20, 9, tzinfo=UTC),
                                                              datetime(2026, 11, 20, 10, tzinfo=UTC))
    assert window_of_key("_run") is None
    assert window_of_key("20261120T0900Z") is None


def test_read_summaries_reads_recent_windows_only(tmp_path, monkeypatch):
    monkeypatch.setenv("MCSF_STAGING_URL", f"file://{tmp_path}")
    for offset in (-50, -2, -1):
        start, end = hour(offset)
        stage = Stage.for_run(HOURLY, Window(start, end), "aaa")
        stage.write_json("summary", report("aaa", (start, end), created=offset + 100))
        stage.write_json("audience", {"name": f"Mailchimp name {offset}", "stats": {}})
    # a run-level folder and a stage that never reached *report* are not audiences
    Stage.for_run(HOURLY, Window(*hour(-1)), "_run").write_json("preflight", {})
    Stage.for_run(HOURLY, Window(*hour(-1)), "bbb").write_json("audience", {"name": "Unfinished"})

    found = read_summaries(DAG_IDS, since=NOW - timedelta(days=1))

    assert sorted(r["created"] for r in found) == [98, 99]
    assert {r["dag_id"] for r in found} == {HOURLY}
    assert [r.get("mailchimp_name") for r in sorted(found, key=lambda r: r["created"])] == [None, "Mailchimp name -1"]


# -- per run -----------------------------------------------------------------------------------------

def test_run_rows_sum_audiences_and_join_airflow_state():
    rows = run_rows(
        [report("aaa", hour(-2), created=3, updated=2, rejected=1), report("bbb", hour(-2), deleted=4),
         report("aaa", hour(-1), created=1)],
        [airflow_run(hour(-2), "failed", run_id="first"), airflow_run(hour(-2), "success", run_id="rerun"),
         airflow_run(hour(0), "running")])

    assert [(r["window"][1], r["state"]) for r in rows] == [
        (hour(0)[1].isoformat(), "running"),  # a DagRun without summaries yet: zero counts
        (hour(-1)[1].isoformat(), None),  # summaries without a DagRun (devtools.runner, cleaned DB)
        (hour(-2)[1].isoformat(), "success"),  # the latest DagRun of an interval run twice
    ]
    assert rows[0]["audiences"] == 0 and rows[0]["written"] == 0
    assert rows[2]["run_id"] == "rerun"
    assert (rows[2]["audiences"], rows[2]["written"], rows[2]["rejected"]) == (2, 9, 1)


def test_a_dry_run_writes_nothing_but_keeps_its_would_be_counts():
    (row,) = run_rows([report("aaa", hour(-1), created=5, dry_run=True)], [])
    assert row["dry_run"] is True
    assert row["written"] == 0 and row["created"] == 5


# -- per audience ------------------------------------------------------------------------------------

def test_synced_through_skips_dry_runs_and_failed_runs():
    summaries = [report("aaa", hour(-3), created=1), report("aaa", hour(-2), created=1),
                 report("aaa", hour(-1), created=1, dry_run=True)]
    runs = [airflow_run(hour(-3)), airflow_run(hour(-2), "failed"), airflow_run(hour(-1))]

    (row,) = audience_rows(summaries, runs, [mapping("aaa", "Newsletter")], DAG_IDS)

    hourly = row["dags"][HOURLY]
    assert hourly["synced_through"] == [t.isoformat() for t in hour(-3)]
    assert hourly["runs"] == 3
    assert hourly["totals"]["written"] == 2  # the dry run's would-be write is not counted
    assert hourly["latest"]["dry_run"] is True
    assert row["dags"][NIGHTLY]["synced_through"] is None and row["dags"][NIGHTLY]["runs"] == 0


def test_top_reject_reasons_add_up_over_runs():
    summaries = [report("aaa", hour(-2), rejected=5, reject_reasons={"invalid email address": 3, "no LastName": 2}),
                 report("aaa", hour(-1), rejected=6, reject_reasons={"no LastName": 4, "too long": 1, "bounced": 1}),
                 report("aaa", hour(-1), dag_id=NIGHTLY, rejected=2, reject_reasons={"unknown member": 2})]

    (row,) = audience_rows(summaries, [], [mapping("aaa", "Newsletter")], DAG_IDS)

    assert row["dags"][HOURLY]["top_reasons"] == [["no LastName", 6], ["invalid email address", 3], ["too long", 1]]
    assert row["dags"][HOURLY]["other_reasons"] == 1
    assert row["dags"][HOURLY]["totals"]["rejected"] == 11
    assert row["dags"][NIGHTLY]["top_reasons"] == [["unknown member", 2]]


def test_audiences_come_from_mappings_and_staging_sorted_by_name():
    summaries = [report("zzz", hour(-1), name="archived-list"), report("aaa", hour(-1))]
    mappings = [mapping("aaa", "Newsletter"), mapping("ccc", "Customers", "subscribers_only"),
                mapping("ddd", "Dormant", "off")]

    rows = audience_rows(summaries, [], mappings, DAG_IDS)

    assert [(r["name"], r["sync_mode"]) for r in rows] == [
        ("archived-list", None), ("Customers", "subscribers_only"), ("Dormant", "off"), ("Newsletter", "activity")]
    by_name = {r["name"]: r for r in rows}
    assert by_name["Customers"]["dags"][HOURLY]["applies"] is True
    assert by_name["Customers"]["dags"][NIGHTLY]["applies"] is False  # no activity in subscribers_only mode
    assert not any(d["applies"] for d in by_name["Dormant"]["dags"].values())
    assert all(d["applies"] for d in by_name["archived-list"]["dags"].values())  # unknown mode: show what ran


@pytest.mark.parametrize(
    ("info", "states", "health"),
    [
        (DagInfo(HOURLY, paused=False), ["failed", "success"], "failed"),
        (DagInfo(HOURLY, paused=False, next_run_after=NOW - timedelta(minutes=10)), [None, "success"], "ok"),
        (DagInfo(HOURLY, paused=False, next_run_after=NOW - timedelta(hours=2)), ["success"], "overdue"),
        (DagInfo(HOURLY, paused=True, next_run_after=NOW - timedelta(hours=2)), ["success"], "paused"),
        (None, [], "unknown"),
    ],
)
def test_dag_health(info, states, health):
    assert dag_health(info, [{"state": s} for s in states], NOW) == health


def test_the_document_is_json_and_carries_no_log_lines_or_paths():
    summaries = [report("aaa", hour(-1), created=2, reject_reasons={"invalid email address": 1}, rejected=1)]
    info = DagInfo(HOURLY, paused=False, schedule="At the start of every hour",
                   next_run_after=NOW.replace(minute=0) + timedelta(hours=1),
                   next_interval=hour(1), last_success=airflow_run(hour(-1)))

    document = build_status(summaries, [airflow_run(hour(-1))], {HOURLY: info}, [mapping("aaa", "Newsletter")],
                            dag_ids=DAG_IDS, now=NOW, days=7)

    text = json.dumps(document)
    assert "SUMMARY" not in text and "file://" not in text
    hourly, nightly = document["dags"]
    assert hourly["last_success"]["window"] == [t.isoformat() for t in hour(-1)]
    assert hourly["next_interval"] == [t.isoformat() for t in hour(1)]
    assert hourly["totals"] == {"runs": 1, "written": 2, "rejected": 1, "extracted": 0}
    assert nightly["health"] == "unknown" and nightly["runs"] == []
    assert document["since"] == (NOW - timedelta(days=7)).isoformat()


# -- drawing -----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "top"), [(0, 10), (1, 10), (7, 10), (10, 10), (11, 100), (573, 1_000)])
def test_log_top(value, top):
    assert log_top(value) == top


def test_log_height_keeps_small_runs_visible_next_to_a_full_load():
    assert log_height(0, 1_000, 100) == 0
    assert log_height(1_000, 1_000, 100) == 100
    assert log_height(3, 1_000, 100) == pytest.approx(20.1, abs=0.1)  # a linear scale would give 0.3 px
    assert log_height(10, 100, 100) < log_height(50, 100, 100) < log_height(100, 100, 100)


@pytest.mark.parametrize(("n", "text"), [(0, "0"), (950, "950"), (1_000, "1k"), (1_250, "1.2k"), (2_500_000, "2.5M")])
def test_compact(n, text):
    assert compact(n) == text


def test_span_reads_like_a_person_would_write_it():
    assert span([t.isoformat() for t in hour(-1)]) == "Nov 27 18:00–19:00"
    day = datetime(2026, 11, 26, tzinfo=UTC)
    assert span([day.isoformat(), (day + timedelta(days=1)).isoformat()]) == "Nov 26"
    assert span(None) == "—"


def rows_for_chart():
    return run_rows(
        [report("aaa", hour(-30), created=40, updated=60), report("aaa", hour(-20), created=10, rejected=4),
         report("aaa", hour(-10), updated=7, dry_run=True), report("aaa", hour(-1), updated=1, rejected=8),
         report("aaa", hour(-200), created=999)],  # older than the chart: left out
        [airflow_run(hour(-5), "failed")])


def bars(svg: ET.Element, kind: str) -> list[ET.Element]:
    return [e for e in svg.iter(f"{SVG}rect") if e.get("class") == kind and e.find(f"{SVG}title") is not None]


def test_chart_draws_one_bar_per_run_on_its_interval_and_to_scale():
    svg = ET.fromstring(chart_svg(rows_for_chart(), NOW - timedelta(days=2), NOW, title="Audience sync"))
    labels = [t.text for t in svg.iter(f"{SVG}text")]
    assert {"1", "10", "100"} <= set(labels) and "1k" not in labels  # log ticks up to the tallest run

    written, rejected, dry = bars(svg, "mcsf-written"), bars(svg, "mcsf-rejected"), bars(svg, "mcsf-dry")
    assert len(written) == 3 and len(rejected) == 2 and len(dry) == 1
    xs = [float(e.get("x")) for e in written]
    assert xs == sorted(xs)  # chronological, left to right
    heights = {e.find(f"{SVG}title").text.split(": ")[1]: float(e.get("height")) for e in written}
    # log scale up to 100 (the tallest run wrote 100): it fills the panel, 10 rows about half of it
    assert heights["100 written, 0 rejected; Airflow"] == pytest.approx(100)
    assert heights["10 written, 4 rejected; Airflow"] == pytest.approx(log_height(10, 100, 100), abs=0.1)
    # rejected bars hang in their own panel with their own top (10)
    assert max(float(e.get("height")) for e in rejected) == pytest.approx(log_height(8, 10, 40), abs=0.1)
    assert float(dry[0].get("height")) == pytest.approx(log_height(7, 100, 100), abs=0.1)  # would-be writes
    failed = [e for e in svg.iter(f"{SVG}circle")
              if e.get("class") == "mcsf-failed" and e.find(f"{SVG}title") is not None]
    assert len(failed) == 1 and "failed" in failed[0].find(f"{SVG}title").text
    assert "Nov 26" in labels  # a day tick


def test_chart_without_runs_says_so_and_escapes_its_title():
    svg = chart_svg([], NOW - timedelta(days=7), NOW, title="<Audience & co>")
    ET.fromstring(svg)  # well-formed despite the title
    assert "&lt;Audience &amp; co&gt;" in svg
    assert "No runs since Nov 20 20:30 UTC" in svg


def test_page_shows_audiences_counts_reasons_and_charts_escaped():
    summaries = [report("aaa", hour(-1), name="Newsletter", created=1234, rejected=2,
                        reject_reasons={"<b>bad</b> value": 2})]
    document = build_status(summaries, [], {}, [mapping("aaa", "Newsletter")], dag_ids=DAG_IDS, now=NOW, days=7)

    html = render_html(document)

    assert "Newsletter" in html and "1,234" in html
    assert "&lt;b&gt;bad&lt;/b&gt; value" in html and "<b>bad</b>" not in html
    assert html.count('<svg xmlns="http://www.w3.org/2000/svg" class="mcsf-chart"') == 2
    assert not re.search(r"[\w.+-]+@[\w-]+\.\w+", html)
    assert "<script" not in html


def test_page_warns_about_mapping_files_that_do_not_load():
    problem = "include/mappings/events.yaml:4: sync_mode: 'everything' is not 'activity', 'subscribers_only' or 'off'"
    document = build_status([], [], {}, [], dag_ids=DAG_IDS, now=NOW, days=1, problems=[problem])

    html = render_html(document)

    assert "1 problem(s) in the mapping files" in html and "events.yaml:4: sync_mode" in html
    assert "No audience is mapped" in html


# -- the plugin file ---------------------------------------------------------------------------------

def test_the_plugin_file_imports_nothing_heavy():
    """Every Airflow component imports it: FastAPI, Jinja and mcsf.status load only in the api-server."""
    code = ("import sys, airflow.plugins_manager; before = set(sys.modules); import mcsf_status_plugin; "
            "print(' '.join(sorted(set(sys.modules) - before)))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join([str(PLUGINS), str(PLUGINS.parent)])})
    assert loaded.stdout.split() == ["mcsf_status_plugin"], loaded.stdout


def test_the_plugin_mounts_its_app_and_a_nav_entry():
    from mcsf_status_plugin import McsfStatusPlugin

    plugin = McsfStatusPlugin()
    (app,) = plugin.fastapi_apps
    assert app["url_prefix"] == "/mcsf"
    assert {route.path for route in app["app"].routes} >= {"/status", "/status.json", "/icon.svg"}
    (view,) = plugin.external_views
    assert view["destination"] == "nav" and view["href"] == "/mcsf/status"
