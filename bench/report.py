"""Turn the run's records into ``bench/results/<scenario>.json``, a printed table, targets and a chart."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SCENARIOS = {
    "1": "first full sync",
    "2": "hourly, 1% changed",
    "3": "hourly, nothing changed",
    "4": "nightly activity",
    "5": "Query Builder push",
    "6": "map + validate core",
}
FILES = {"1": "1_first_full_sync", "2": "2_hourly_changed", "3": "3_hourly_unchanged", "4": "4_nightly_activity",
         "5": "5_querybuilder_push", "6": "6_core_map_validate"}
CONTENDERS = {"mcsf": "mcsf", "mcsf_extract_tls": "mcsf members read (TLS front)",
              "a": "(a) Bulk 1.0 operator", "b": "(b) per-record REST", "c": "(c) Airbyte source-mailchimp"}


def machine() -> dict[str, Any]:
    import psutil

    model = ""
    with contextlib.suppress(OSError, StopIteration):
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[1]).stdout.strip()
    return {"cpus": os.cpu_count(), "cpu_model": model, "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(), "platform": platform.platform(terse=True),
            "load_avg_1_5_15": [round(x, 2) for x in os.getloadavg()], "git_commit": commit}


def total_requests(counts: dict[str, Any]) -> dict[str, Any]:
    return {api: {"total": snap["total"], "by_endpoint": snap["by_endpoint"],
                  **({"rejected_over_connection_limit": snap["rejected_over_connection_limit"]}
                     if snap.get("rejected_over_connection_limit") else {})}
            for api, snap in counts.items()}


def record(scenario: str, contender: str, result: dict[str, Any], counts: dict[str, Any] | None,
           bound: dict[str, Any] | None, common: dict[str, Any], extrapolate_to: int | None = None) -> dict[str, Any]:
    """One contender's figures in one scenario, with ratios and (for partial peer runs) extrapolation."""
    wall = result.get("core_s") or result["wall_s"]
    rows = int(result.get("rows") or 0)
    out: dict[str, Any] = {"scenario": scenario, "title": SCENARIOS[scenario], "contender": contender,
                           "rows": rows, "wall_s": wall, "rows_per_s": round(rows / wall) if wall else None,
                           "cpu_s": result.get("cpu_s"), "sandbox_cpu_s": result.get("sandbox_cpu_s"),
                           # mcsf's steps run one process each, as Airflow's tasks: the largest is a task's
                           # peak; a peer's child (Airbyte's connector) lives next to its parent: summed
                           "peak_rss_mb": result["peak_rss_mb"]["per_task" if result.get("steps") else "total"],
                           "peak_rss_detail_mb": result["peak_rss_mb"], **common}
    if result.get("steps"):  # summed over the audiences' tasks: above wall_s when tasks ran side by side
        out["task_s"] = round(sum(result["steps"].values()), 2)
    for key in ("steps", "peak_rss_mb_by_step", "outcome", "full", "records", "errors", "returncode", "capped_at",
                "matched"):
        if key in result:
            out[key] = result[key]
    if counts is not None:
        out["requests"] = total_requests(counts)
        out["requests_total"] = sum(v["total"] for v in out["requests"].values())
    if bound is not None:
        out["requests_lower_bound"] = bound
    if extrapolate_to and rows and rows < extrapolate_to:
        factor = extrapolate_to / rows
        out["extrapolated"] = {"rows": extrapolate_to, "factor": round(factor, 1), "wall_s": round(wall * factor, 1),
                               "requests_total": round(out.get("requests_total", 0) * factor),
                               "method": f"measured on {rows:,} rows, scaled linearly"}
    total = out.get("extrapolated", {}).get("requests_total", out.get("requests_total"))
    if bound and total is not None:
        out["ratio_to_lower_bound"] = round(total / bound["total"], 3)
    return out


def write(results_dir: Path, records: list[dict[str, Any]], extra: dict[str, Any]) -> None:
    """``<scenario>.json``: mcsf's figures at the top level, the peers' under ``peers``."""
    results_dir.mkdir(parents=True, exist_ok=True)
    by_scenario: dict[str, list[dict[str, Any]]] = {}
    for rec in records:
        by_scenario.setdefault(rec["scenario"], []).append(rec)
    for scenario, recs in by_scenario.items():
        main = next((r for r in recs if r["contender"] == "mcsf"), recs[0])
        doc = {**main, "peers": {r["contender"]: r for r in recs if r is not main}}
        (results_dir / f"{FILES[scenario]}.json").write_text(json.dumps(doc, indent=2, default=str))
    for name, payload in extra.items():
        (results_dir / f"{name}.json").write_text(json.dumps(payload, indent=2, default=str))


def table(records: list[dict[str, Any]]) -> str:
    head = (f"{'scenario':<27} {'contender':<30} {'rows':>10} {'wall s':>9} {'rows/s':>9} {'Mailchimp':>9} "
            f"{'Salesforce':>10} {'bound':>7} {'ratio':>6} {'RSS MB':>7}")
    lines = [head, "-" * len(head)]
    for r in records:
        req = r.get("requests", {})
        ext = r.get("extrapolated")
        wall = f"{r['wall_s']:.1f}" + ("" if not ext else f"→{ext['wall_s']:.0f}*")
        bound = r.get("requests_lower_bound", {}).get("total", "")
        ratio = r.get("ratio_to_lower_bound", "")
        who = CONTENDERS.get(r["contender"], r["contender"])
        lines.append(f"{r['scenario'] + ' ' + r['title']:<27.27} {who:<30.30} "
                     f"{r['rows']:>10,} {wall:>9} {r['rows_per_s'] or 0:>9,} "
                     f"{req.get('mailchimp', {}).get('total', ''):>9} {req.get('salesforce', {}).get('total', ''):>10} "
                     f"{bound:>7} {ratio:>6} {r['peak_rss_mb']:>7.0f}")
    lines.append("* partial run, extrapolated linearly to the scenario's rows (see the JSON's 'extrapolated')")
    return "\n".join(lines)


def markdown(records: list[dict[str, Any]], checked: list[dict[str, Any]], common: dict[str, Any]) -> str:
    """The table and the targets as Markdown, for docs/benchmarks.md and the README."""
    m = common["machine"]
    out = [f"Run {common['date']}, size {common['size']}, {common['latency_ms']} ms added latency; "
           f"{m['cpus']} CPUs ({m['cpu_model'] or 'unknown model'}), {m['memory_gb']} GB, Python {m['python']}, "
           f"commit {m['git_commit']}, load average at start {m['load_avg_1_5_15']} (shared machine: wall times "
           "are noisy, request counts exact).", "",
           "| scenario | contender | rows | wall s | rows/s | CPU s (sandbox CPU s) | Mailchimp req | Salesforce req "
           "| lower bound | ratio | peak RSS MB |",
           "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for r in records:
        req = r.get("requests", {})
        ext = r.get("extrapolated")
        wall = f"{r['wall_s']:,.1f}" + (f" (→ {ext['wall_s']:,.0f} for {ext['rows']:,})" if ext else "")
        cpu = f"{r.get('cpu_s') or 0:,.0f}" + (f" ({r['sandbox_cpu_s']:,.0f})" if r.get("sandbox_cpu_s") is not None
                                               else "")
        bound = r.get("requests_lower_bound", {}).get("total", "")
        who = CONTENDERS.get(r["contender"], r["contender"])
        out.append(f"| {r['scenario']}. {r['title']} | {who} | {r['rows']:,} "
                   f"| {wall} | {r['rows_per_s'] or 0:,} | {cpu} | {req.get('mailchimp', {}).get('total', '')} "
                   f"| {req.get('salesforce', {}).get('total', '')} | {bound} | {r.get('ratio_to_lower_bound', '')} "
                   f"| {r['peak_rss_mb']:,.0f} |")
    out += ["", "| target | value | |", "|---|--:|---|"]
    verdict = {None: "—", True: "pass", False: "**fail**"}
    out += [f"| {t['target']} | {t['value']} | {verdict[t['pass']]} |" for t in checked]
    return "\n".join(out) + "\n"


def targets(records: list[dict[str, Any]], parse: dict[str, Any], audiences: int) -> list[dict[str, Any]]:
    """Each target of the brief with its measured value and pass/fail."""
    get = {(r["scenario"], r["contender"]): r for r in records}
    out: list[dict[str, Any]] = []

    def add(name: str, value: Any, ok: bool | None) -> None:
        out.append({"target": name, "value": value, "pass": ok})

    for s in ("1", "2", "3", "4", "5"):
        r = get.get((s, "mcsf"))
        if r and "ratio_to_lower_bound" in r:
            ratio = r["ratio_to_lower_bound"]
            add(f"scenario {s}: requests / lower bound <= 1.1", ratio, ratio <= 1.1)
    for s, limit in (("1", 300), ("4", 600)):
        if r := get.get((s, "mcsf")):
            add(f"scenario {s}: wall <= {limit} s", r["wall_s"], r["wall_s"] <= limit)
    if r := get.get(("2", "mcsf")):  # the brief: "at most 30 s of task time"
        spent = r.get("task_s", r["wall_s"])
        add("scenario 2: task time (all tasks summed) <= 30 s", spent, spent <= 30)
    if r := get.get(("3", "mcsf")):
        per = round(r["requests_total"] / audiences, 2)
        add("scenario 3: <= 3 requests per audience", per, per <= 3)
    if r := get.get(("5", "mcsf")):
        mc = r["requests"]["mailchimp"]["total"]
        add("scenario 5: <= 205 Mailchimp requests", mc, mc <= 205)
    if r := get.get(("6", "mcsf")):
        add("scenario 6: >= 150,000 rows/s", r["rows_per_s"], r["rows_per_s"] >= 150_000)
    rss = max((r["peak_rss_mb"] for r in records if r["contender"] == "mcsf"), default=0)
    add("peak RSS <= 2 GB (mcsf, every scenario)", rss, rss <= 2048)
    at_once = max((r["peak_rss_detail_mb"].get("at_once", 0) for r in records if r["contender"] == "mcsf"), default=0)
    if at_once:
        add("(for sizing a worker) memory of all mcsf tasks at once, MB (proportional set sizes)", at_once, None)
    for s in ("1", "2", "3", "4"):
        mine, peer = get.get((s, "mcsf")), get.get((s, "a"))
        if mine and peer:
            theirs = peer.get("extrapolated", peer)
            fewer = round(theirs["requests_total"] / max(1, mine["requests_total"]), 2)
            sf_fewer = round(peer["requests"]["salesforce"]["total"] * peer.get("extrapolated", {}).get("factor", 1)
                             / max(1, mine["requests"]["salesforce"]["total"]), 2)
            add(f"scenario {s}: >= 5x fewer requests than peer (a) (all APIs; Salesforce alone {sf_fewer}x)", fewer,
                fewer >= 5)
            add(f"scenario {s}: faster than peer (a) (mcsf/peer wall)", round(mine["wall_s"] / theirs["wall_s"], 2),
                mine["wall_s"] < theirs["wall_s"])
    mine, peer = get.get(("1", "mcsf_extract_tls")), get.get(("1", "c"))
    if mine and peer and peer.get("rows"):
        add("extraction at least as fast as peer (c) (mcsf rows/s / Airbyte rows/s)",
            round(mine["rows_per_s"] / max(1, peer["rows_per_s"]), 2), mine["rows_per_s"] >= peer["rows_per_s"])
    for name, figures in parse.get("files", {}).items():
        add(f"DAG file {name} parses in <= 0.5 s (max of runs)", figures["max_s"], figures["max_s"] <= 0.5)
    return out


def chart(records: list[dict[str, Any]], path: Path, title: str) -> None:
    """Wall time and requests per scenario, mcsf next to each peer (log scales)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    contenders = ["mcsf", "a", "b", "c", "mcsf_extract_tls"]
    colours = {"mcsf": "#1f77b4", "a": "#d62728", "b": "#ff7f0e", "c": "#7f7f7f", "mcsf_extract_tls": "#aec7e8"}
    scenarios = [s for s in SCENARIOS if s != "6" and any(r["scenario"] == s for r in records)]
    fig, axes = plt.subplots(1, 2, figsize=(14, 5.5))
    width = 0.16
    for panel, (key, label) in enumerate((("wall_s", "wall time, s (log)"), ("requests_total", "HTTP requests (log)"))):
        ax = axes[panel]
        for i, contender in enumerate(contenders):
            xs, ys = [], []
            for j, s in enumerate(scenarios):
                r = next((r for r in records if r["scenario"] == s and r["contender"] == contender), None)
                if r is None or r.get(key) is None:
                    continue
                value = r.get("extrapolated", {}).get(key, r[key])
                xs.append(j + (i - 2) * width)
                ys.append(max(value, 0.01))
            if xs:
                ax.bar(xs, ys, width, label=CONTENDERS[contender], color=colours[contender])
        if key == "requests_total":
            for j, s in enumerate(scenarios):
                r = next((r for r in records if r["scenario"] == s and "requests_lower_bound" in r), None)
                if r:
                    ax.hlines(r["requests_lower_bound"]["total"], j - 0.45, j + 0.45, colors="black",
                              linestyles="dashed", label="lower bound" if j == 0 else None)
        ax.set_yscale("log")
        ax.set_xticks(range(len(scenarios)), [f"{s}. {SCENARIOS[s]}" for s in scenarios], rotation=15, fontsize=8)
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def stamp() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
