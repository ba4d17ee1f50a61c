"""The sync-status page: what each audience's runs did, joined with what Airflow knows of them.

Counts come from the ``summary.json`` every run's *report* task stages per audience
(:func:`mcsf.audience.report`); run states, the last successful interval and the next scheduled
run come from Airflow's metadata DB. :func:`build_status` turns both into one JSON-ready document
(served as ``/mcsf/status.json``), :func:`chart_svg` and :func:`render_html` draw it. Only counts,
audience names and reject reasons reach the page — never emails, merge values or credentials.

The two readers (:func:`read_summaries`, :func:`read_airflow`) are the only I/O; everything else is
pure, with ``now`` passed in.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable

    from sqlalchemy.orm import Session

    from mcsf.config import AudienceMapping

#: The DAGs the page reports on, with the label a reader sees.
DAGS = {"mcsf_audience_sync": "Audience sync", "mcsf_campaign_activity_sync": "Campaign activity"}
#: Which sync modes each DAG serves (an audience in another mode is "not synced" by it, not "never run").
MODES = {"mcsf_audience_sync": ("activity", "subscribers_only"), "mcsf_campaign_activity_sync": ("activity",)}
COUNTS = ("extracted", "rejected", "created", "updated", "deleted", "unchanged", "leads_created",
          "contacts_linked", "leads_linked", "load_failed")
TOP_REASONS = 3
RECENT_RUNS = 12
OVERDUE = timedelta(minutes=30)
_KEY_STAMP = "%Y%m%dT%H%MZ"


# -- reading -----------------------------------------------------------------------------------

def window_of_key(name: str) -> tuple[datetime, datetime] | None:
    """``20261120T0900Z_20261120T1000Z`` (a staging folder, see ``Window.key``) -> its interval."""
    try:
        start, end = (datetime.strptime(part, _KEY_STAMP).replace(tzinfo=UTC) for part in name.split("_"))
    except ValueError:
        return None
    return start, end


def read_summaries(dag_ids: Iterable[str], since: datetime, base: str | None = None) -> list[dict[str, Any]]:
    """Every audience's ``summary.json`` of runs whose interval ends after ``since``, tagged with ``dag_id``.

    Lists one folder per DAG and opens only the recent windows' files, so a long history costs a
    directory listing, not a read per run ever made. The newest summary of each audience also
    carries the Mailchimp audience name (``audience.json``) when the run staged it.
    """
    from airflow.sdk import ObjectStoragePath

    from mcsf.staging import staging_base

    found: list[dict[str, Any]] = []
    newest: dict[str, tuple[datetime, dict[str, Any], Any]] = {}
    for dag_id in dag_ids:
        root = ObjectStoragePath(f"{base or staging_base()}/{dag_id}")
        if not root.exists():
            continue
        for folder in root.iterdir():
            window = window_of_key(folder.name)
            if window is None or window[1] <= since:
                continue
            for stage in folder.iterdir():
                summary = stage / "summary.json"
                if stage.name.startswith(("_", ".")) or not summary.exists():
                    continue
                report = {**json.loads(summary.read_text()), "dag_id": dag_id}
                found.append(report)
                if window[1] > newest.get(report["audience_id"], (since,))[0]:
                    newest[report["audience_id"]] = (window[1], report, stage)
    for _, report, stage in newest.values():
        described = stage / "audience.json"
        if described.exists():
            report["mailchimp_name"] = json.loads(described.read_text()).get("name")
    return found


@dataclass(frozen=True)
class AirflowRun:
    """One DagRun as Airflow's metadata DB has it."""

    dag_id: str
    run_id: str
    state: str  # queued | running | success | failed
    run_type: str  # scheduled | manual | backfill | asset_triggered
    start: datetime
    end: datetime


@dataclass(frozen=True)
class DagInfo:
    """A DAG's schedule as the scheduler sees it; ``paused`` is None when the DAG was never parsed."""

    dag_id: str
    paused: bool | None = None
    schedule: str | None = None
    next_run_after: datetime | None = None
    next_interval: tuple[datetime, datetime] | None = None
    last_success: AirflowRun | None = None


def read_airflow(session: Session, dag_ids: list[str], since: datetime) -> tuple[list[AirflowRun], dict[str, DagInfo]]:
    """The runs of ``dag_ids`` whose interval ends after ``since`` (oldest first), and each DAG's schedule."""
    from airflow.models.dag import DagModel
    from airflow.models.dagrun import DagRun
    from sqlalchemy import select

    columns = (DagRun.dag_id, DagRun.run_id, DagRun.state, DagRun.run_type, DagRun.data_interval_start,
               DagRun.data_interval_end)

    def as_run(row: Any) -> AirflowRun:
        return AirflowRun(row[0], row[1], _text(row[2]), _text(row[3]), row[4], row[5])

    recent = session.execute(select(*columns).where(
        DagRun.dag_id.in_(dag_ids), DagRun.data_interval_end > since,
        DagRun.data_interval_start.is_not(None)).order_by(DagRun.id)).all()
    infos = {}
    for model in session.scalars(select(DagModel).where(DagModel.dag_id.in_(dag_ids))):
        last = session.execute(select(*columns).where(
            DagRun.dag_id == model.dag_id, DagRun.state == "success", DagRun.data_interval_end.is_not(None))
            .order_by(DagRun.data_interval_end.desc()).limit(1)).first()
        interval = (model.next_dagrun_data_interval_start, model.next_dagrun_data_interval_end)
        infos[model.dag_id] = DagInfo(
            model.dag_id, paused=bool(model.is_paused), schedule=model.timetable_description,
            next_run_after=model.next_dagrun_create_after,
            next_interval=interval if None not in interval else None,
            last_success=as_run(last) if last else None)
    return [as_run(row) for row in recent], infos


def _text(value: Any) -> str:
    return str(getattr(value, "value", value))


# -- aggregating -------------------------------------------------------------------------------

def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat() if moment else None


def _interval(start: datetime, end: datetime) -> list[str]:
    return [_iso(start), _iso(end)]


def changes(counts: dict[str, Any]) -> int:
    """Records created + updated + deleted in Salesforce (for a dry run: that it would have written)."""
    return sum(int(counts.get(k, 0)) for k in ("created", "updated", "deleted"))


def written(counts: dict[str, Any]) -> int:
    """Records a run really wrote to Salesforce: :func:`changes`, or nothing for a dry run."""
    return 0 if counts.get("dry_run") else changes(counts)


def run_rows(summaries: list[dict[str, Any]], runs: list[AirflowRun]) -> list[dict[str, Any]]:
    """One row per (DAG, interval), newest first: the audiences' counts summed, and Airflow's state.

    An interval with a summary but no DagRun (run by ``devtools.runner``, or the DB was cleaned)
    has state None; a DagRun without summaries (failed before *report*, or still running) has zero
    counts. When an interval ran more than once, the latest DagRun's state counts.
    """
    airflow = {(r.dag_id, r.start.astimezone(UTC), r.end.astimezone(UTC)): r for r in runs}
    grouped: dict[tuple[str, datetime, datetime], list[dict[str, Any]]] = {key: [] for key in airflow}
    for report in summaries:
        start, end = (_utc(v) for v in report["window"])
        grouped.setdefault((report["dag_id"], start, end), []).append(report)
    rows = []
    for (dag_id, start, end), reports in grouped.items():
        run = airflow.get((dag_id, start, end))
        totals = {k: sum(int(r.get(k, 0)) for r in reports) for k in COUNTS}
        rows.append({
            "dag_id": dag_id, "window": _interval(start, end), "state": run.state if run else None,
            "run_id": run.run_id if run else None, "run_type": run.run_type if run else None,
            "audiences": len(reports), **totals, "written": sum(written(r) for r in reports),
            "dry_run": bool(reports) and all(r.get("dry_run") for r in reports),
        })
    return sorted(rows, key=lambda row: (row["window"][1], row["dag_id"]), reverse=True)


def audience_rows(summaries: list[dict[str, Any]], runs: list[AirflowRun], mappings: list[AudienceMapping],
                  dag_ids: list[str]) -> list[dict[str, Any]]:
    """Per audience (mapped or seen in staging) and DAG: the interval synced through, totals, top rejects."""
    state = {(r.dag_id, r.start.astimezone(UTC), r.end.astimezone(UTC)): r.state for r in runs}
    audiences: dict[str, dict[str, Any]] = {
        m.audience_id: {"audience_id": m.audience_id, "name": m.label, "sync_mode": str(m.sync_mode),
                        "mailchimp_name": None} for m in mappings}
    by_audience: dict[str, list[dict[str, Any]]] = {}
    for report in sorted(summaries, key=lambda r: _utc(r["window"][1])):
        audiences.setdefault(report["audience_id"], {"audience_id": report["audience_id"], "name": report["name"],
                                                     "sync_mode": None, "mailchimp_name": None})
        if report.get("mailchimp_name"):
            audiences[report["audience_id"]]["mailchimp_name"] = report["mailchimp_name"]
        by_audience.setdefault(report["audience_id"], []).append(report)
    rows = []
    for audience_id, row in sorted(audiences.items(), key=lambda item: (item[1]["name"].lower(), item[0])):
        reports = by_audience.get(audience_id, [])
        row["dags"] = {dag_id: _audience_dag(dag_id, [r for r in reports if r["dag_id"] == dag_id], state,
                                             row["sync_mode"]) for dag_id in dag_ids}
        rows.append(row)
    return rows


def _audience_dag(dag_id: str, reports: list[dict[str, Any]], state: dict[tuple, str],
                  sync_mode: str | None) -> dict[str, Any]:
    """``reports`` oldest first. Synced through = the newest real (not dry) report whose run did not fail."""
    def landed(report: dict[str, Any]) -> bool:
        start, end = (_utc(v) for v in report["window"])
        return not report.get("dry_run") and state.get((dag_id, start, end), "success") == "success"

    synced = next((r for r in reversed(reports) if landed(r)), None)
    reasons = sum((Counter(r.get("reject_reasons", {})) for r in reports), Counter())
    requests = sum((Counter(r.get("requests", {})) for r in reports), Counter())
    latest = reports[-1] if reports else None
    return {
        "applies": sync_mode is None or sync_mode in MODES.get(dag_id, ()),
        "synced_through": [_iso(_utc(v)) for v in synced["window"]] if synced else None,
        "runs": len(reports),
        "totals": {**{k: sum(int(r.get(k, 0)) for r in reports) for k in COUNTS},
                   "written": sum(written(r) for r in reports), "requests": dict(requests)},
        "latest": {"window": [_iso(_utc(v)) for v in latest["window"]], "dry_run": bool(latest.get("dry_run")),
                   **{k: int(latest.get(k, 0)) for k in COUNTS}} if latest else None,
        "top_reasons": [[reason, n] for reason, n in reasons.most_common(TOP_REASONS)],
        "other_reasons": max(0, len(reasons) - TOP_REASONS),
    }


def dag_health(info: DagInfo | None, rows: list[dict[str, Any]], now: datetime) -> str:
    """``failed`` when Airflow's newest run failed, else ``paused``, ``overdue`` (the next run is more than
    :data:`OVERDUE` late: is the scheduler running?), ``ok``, or ``unknown`` (never parsed)."""
    states = [row["state"] for row in rows if row["state"]]
    if states and states[0] == "failed":
        return "failed"
    if info is None or info.paused is None:
        return "unknown"
    if info.paused:
        return "paused"
    return "overdue" if info.next_run_after and now - info.next_run_after > OVERDUE else "ok"


def build_status(summaries: list[dict[str, Any]], runs: list[AirflowRun], dags: dict[str, DagInfo],
                 mappings: list[AudienceMapping], *, dag_ids: list[str], now: datetime, days: int,
                 problems: list[str] | None = None) -> dict[str, Any]:
    """The whole page as JSON-ready data (the ``/mcsf/status.json`` document)."""
    rows = run_rows(summaries, runs)
    since = now - timedelta(days=days)
    dag_docs = []
    for dag_id in dag_ids:
        info = dags.get(dag_id)
        mine = [row for row in rows if row["dag_id"] == dag_id]
        last = info.last_success if info else None
        dag_docs.append({
            "dag_id": dag_id, "label": DAGS.get(dag_id, dag_id), "health": dag_health(info, mine, now),
            "paused": info.paused if info else None, "schedule": info.schedule if info else None,
            "next_run_after": _iso(info.next_run_after) if info else None,
            "next_interval": _interval(*info.next_interval) if info and info.next_interval else None,
            "last_success": {"window": _interval(last.start, last.end), "run_id": last.run_id,
                             "run_type": last.run_type} if last else None,
            "states": dict(Counter(row["state"] or "not in Airflow" for row in mine)),
            "totals": {"runs": len(mine), "written": sum(r["written"] for r in mine),
                       "rejected": sum(r["rejected"] for r in mine), "extracted": sum(r["extracted"] for r in mine)},
            "runs": mine,
        })
    return {
        "generated_at": _iso(now), "since": _iso(since), "days": days, "dags": dag_docs,
        "audiences": audience_rows(summaries, runs, mappings, dag_ids), "mapping_problems": problems or [],
    }


# -- drawing -----------------------------------------------------------------------------------

def log_top(value: float) -> int:
    """The power of ten at or above ``value`` (at least 10): the top of a log-scaled axis."""
    return 10 ** max(1, math.ceil(math.log10(value))) if value > 1 else 10


def log_height(value: float, top: int, height: float) -> float:
    """Bar height on a ``log10(1 + v)`` scale, so a 500-row first load and a 3-row hour both read."""
    return height * math.log10(1 + value) / math.log10(1 + top) if value > 0 else 0.0


def compact(n: float) -> str:
    """``1234`` -> ``1.2k``; axis labels stay short."""
    for size, suffix in ((1_000_000, "M"), (1_000, "k")):
        if n >= size:
            return f"{n / size:.1f}".rstrip("0").rstrip(".") + suffix
    return str(int(n))


def when(moment: str | datetime | None, now: datetime | None = None) -> str:
    """``Nov 27 19:00 UTC``, plus ``(in 42 min)`` / ``(3 h ago)`` relative to ``now`` when given."""
    if moment is None:
        return "—"
    moment = _utc(moment) if isinstance(moment, str) else moment.astimezone(UTC)
    text = f"{moment:%b %d %H:%M} UTC"
    if now is None:
        return text
    minutes = round((moment - now).total_seconds() / 60)
    size = abs(minutes)
    span = f"{size} min" if size < 120 else f"{round(size / 60)} h" if size < 48 * 60 else f"{round(size / 1440)} d"
    return f"{text} ({'in ' + span if minutes >= 0 else span + ' ago'})"


def span(window: list[str] | None) -> str:
    """An interval for people: ``Nov 27 19:00–20:00``, a whole day as ``Nov 26``."""
    if not window:
        return "—"
    start, end = (_utc(v) for v in window)
    if end - start == timedelta(days=1) and start.hour == start.minute == 0:
        return f"{start:%b %d}"
    if start.date() == end.date() or end - start <= timedelta(hours=1):
        return f"{start:%b %d %H:%M}–{end:%H:%M}"
    return f"{start:%b %d %H:%M} – {end:%b %d %H:%M}"


@dataclass(frozen=True)
class Chart:
    width: int = 760
    left: int = 40
    right: int = 12
    top: int = 28
    written_h: int = 100
    gap: int = 12
    rejected_h: int = 40
    bottom: int = 22
    widest_bar: float = 26.0

    @property
    def height(self) -> int:
        return self.top + self.written_h + self.gap + self.rejected_h + self.bottom


def chart_svg(runs: list[dict[str, Any]], since: datetime, until: datetime, *, title: str,
              chart: Chart = Chart()) -> str:
    """Records written (up) and rejected (down, below the gap) per run as inline SVG, log-scaled.

    One bar per run, placed on its data interval; a dry run is an outline of what it would have
    written; a failed or unfinished Airflow run is a dot in the gap. ``<title>`` gives the numbers.
    """
    c = chart
    plot_w = c.width - c.left - c.right
    total = (until - since).total_seconds() or 1.0

    def x(moment: datetime) -> float:
        return c.left + max(0.0, min(1.0, (moment - since).total_seconds() / total)) * plot_w

    shown = [r for r in runs if _utc(r["window"][1]) > since and _utc(r["window"][0]) < until]
    top_w = log_top(max([changes(r) for r in shown] + [0]))
    top_r = log_top(max([r["rejected"] for r in shown] + [0]))
    base_w = c.top + c.written_h
    base_r = base_w + c.gap
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="mcsf-chart" viewBox="0 0 {c.width} {c.height}" '
           f'width="{c.width}" height="{c.height}" role="img" aria-label="{escape(title)}">',
           f"<title>{escape(title)}</title>", _STYLE]
    out += _axes(c, since, until, x, top_w, top_r)
    for run in sorted(shown, key=lambda r: r["window"][0]):
        x0, x1 = x(_utc(run["window"][0])), x(_utc(run["window"][1]))
        width = min(max(x1 - x0 - 1.0, 1.0), c.widest_bar)
        left = (x0 + x1) / 2 - width / 2
        tip = escape(f"{span(run['window'])}: {changes(run):,} {'would be ' if run['dry_run'] else ''}written, "
                     f"{run['rejected']:,} rejected; Airflow: {run['state'] or 'no run recorded'}")
        if changes(run):
            h = log_height(changes(run), top_w, c.written_h)
            kind = "mcsf-dry" if run["dry_run"] else "mcsf-written"
            out.append(f'<rect class="{kind}" x="{left:.1f}" y="{base_w - h:.1f}" width="{width:.1f}" '
                       f'height="{h:.1f}"><title>{tip}</title></rect>')
        if run["rejected"]:
            h = log_height(run["rejected"], top_r, c.rejected_h)
            out.append(f'<rect class="mcsf-rejected" x="{left:.1f}" y="{base_r:.1f}" width="{width:.1f}" '
                       f'height="{h:.1f}"><title>{tip}</title></rect>')
        if run["state"] in ("failed", "running", "queued"):
            kind = "mcsf-failed" if run["state"] == "failed" else "mcsf-pending"
            out.append(f'<circle class="{kind}" cx="{(x0 + x1) / 2:.1f}" cy="{base_w + c.gap / 2:.1f}" r="4">'
                       f"<title>{tip}</title></circle>")
    if not shown:
        out.append(f'<text class="mcsf-empty" x="{c.left + plot_w / 2:.0f}" y="{c.top + c.written_h / 2:.0f}" '
                   f'text-anchor="middle">No runs since {since:%b %d %H:%M} UTC</text>')
    out += _legend(c, any(r["dry_run"] for r in shown), any(r["state"] == "failed" for r in shown))
    out.append("</svg>")
    return "\n".join(out)


_STYLE = """<style>
.mcsf-chart text{font:11px system-ui,-apple-system,"Segoe UI",sans-serif;fill:var(--mcsf-muted,#5b6472)}
.mcsf-chart .mcsf-grid{stroke:var(--mcsf-grid,#e8ebf1);stroke-width:1}
.mcsf-chart .mcsf-axis{stroke:var(--mcsf-axis,#9aa3b2);stroke-width:1}
.mcsf-chart .mcsf-written{fill:var(--mcsf-written,#1f8a70)}
.mcsf-chart .mcsf-dry{fill:var(--mcsf-card,#fff);stroke:var(--mcsf-written,#1f8a70);stroke-width:1.2;
  stroke-dasharray:2 1.5}
.mcsf-chart .mcsf-rejected{fill:var(--mcsf-rejected,#d64545)}
.mcsf-chart .mcsf-failed{fill:var(--mcsf-rejected,#d64545);stroke:var(--mcsf-card,#fff);stroke-width:1.5}
.mcsf-chart .mcsf-pending{fill:var(--mcsf-axis,#9aa3b2)}
.mcsf-chart .mcsf-empty{font-size:13px}
.mcsf-chart .mcsf-panel{font-size:10px;letter-spacing:.04em;text-transform:uppercase}
.mcsf-chart rect[class]:hover,.mcsf-chart circle:hover{opacity:.7}
</style>"""


def _axes(c: Chart, since: datetime, until: datetime, x: Any, top_w: int, top_r: int) -> list[str]:
    right = c.width - c.right
    base_w, base_r = c.top + c.written_h, c.top + c.written_h + c.gap
    out = []
    tick = 1
    while tick <= top_w:  # 1, 10, 100 ... on the written panel
        y = base_w - log_height(tick, top_w, c.written_h)
        out.append(f'<line class="mcsf-grid" x1="{c.left}" x2="{right}" y1="{y:.1f}" y2="{y:.1f}"/>')
        out.append(f'<text x="{c.left - 6}" y="{y + 4:.1f}" text-anchor="end">{compact(tick)}</text>')
        tick *= 10
    bottom = base_r + c.rejected_h
    out.append(f'<line class="mcsf-grid" x1="{c.left}" x2="{right}" y1="{bottom}" y2="{bottom}"/>')
    out.append(f'<text x="{c.left - 6}" y="{bottom + 4}" text-anchor="end">{compact(top_r)}</text>')
    days = max(1, math.ceil((until - since).total_seconds() / 86400))
    every = 1 if days <= 10 else 2 if days <= 20 else 7
    midnight = since.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    index = 0
    while midnight < until:
        px = x(midnight)
        out.append(f'<line class="mcsf-grid" x1="{px:.1f}" x2="{px:.1f}" y1="{c.top}" y2="{bottom}"/>')
        if index % every == 0:
            out.append(f'<text x="{px:.1f}" y="{c.height - 6}" text-anchor="middle">{midnight:%b %d}</text>')
        midnight += timedelta(days=1)
        index += 1
    out.append(f'<line class="mcsf-axis" x1="{c.left}" x2="{right}" y1="{base_w}" y2="{base_w}"/>')
    out.append(f'<line class="mcsf-axis" x1="{c.left}" x2="{right}" y1="{base_r}" y2="{base_r}"/>')
    out.append(f'<text class="mcsf-panel" x="{right}" y="17" text-anchor="end">log scale</text>')
    return out


def _legend(c: Chart, dry: bool, failed: bool) -> list[str]:
    items = [("mcsf-written", "rect", "written to Salesforce"), ("mcsf-rejected", "rect", "rejected")]
    if dry:
        items.append(("mcsf-dry", "rect", "dry run (would write)"))
    if failed:
        items.append(("mcsf-failed", "circle", "failed run"))
    out, px = [], c.left
    for kind, shape, label in items:
        if shape == "rect":
            out.append(f'<rect class="{kind}" x="{px}" y="7" width="11" height="11" rx="2"/>')
        else:
            out.append(f'<circle class="{kind}" cx="{px + 5.5}" cy="12.5" r="4.5"/>')
        out.append(f'<text x="{px + 16}" y="17">{label}</text>')
        px += 34 + int(5.8 * len(label))
    return out


def render_html(status: dict[str, Any]) -> str:
    """The page (``status_page.html``, autoescaped) with one chart per DAG."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape
    from markupsafe import Markup

    now, since = _utc(status["generated_at"]), _utc(status["since"])
    until = max([now, *(_utc(r["window"][1]) for d in status["dags"] for r in d["runs"])])
    env = Environment(loader=FileSystemLoader(Path(__file__).parent), autoescape=select_autoescape(default=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(n=lambda v: f"{int(v or 0):,}", span=span,
                       when=lambda v, relative=False: when(v, now if relative else None))
    # chart_svg escapes every text it draws (titles, labels); the rest of the page is autoescaped.
    charts = {d["dag_id"]: Markup(chart_svg(  # noqa: S704
        d["runs"], since, until, title=f"{d['label']}: records written and rejected per run, last {status['days']} d"))
        for d in status["dags"]}
    return env.get_template("status_page.html").render(status=status, charts=charts, dags=DAGS,
                                                       recent=RECENT_RUNS, periods=(1, 7, 30))
