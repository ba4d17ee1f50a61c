"""``python -m bench --size full|small``: mcsf's benchmarks on the sandbox, next to the peers.

Scenarios (docs/benchmarks.md): 1 first full sync, 2 an hourly run with 1% changed, 3 an hourly
run with nothing changed, 4 a nightly activity run, 5 a Query Builder push, 6 the map + validate
core alone. mcsf runs its DAG steps in process (``devtools.runner``); peers (a) Bulk 1.0 operator,
(b) per-record REST and (c) Airbyte's Mailchimp source run on copies of the same seeded sandbox.
Each timed run is a process of its own (peak RSS), the sandbox's counters give the requests.
Results: ``bench/results/`` (``bench/results/small/`` for the small size), a table, a chart.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import lower_bound, report, setup_data
from bench.env import REPO, Sandbox, clone, template
from bench.sizes import SIZES, Size

if TYPE_CHECKING:
    from collections.abc import Iterator

PEER_DOMAIN = "mcsf-bench.my"  # the peers' connection: client credentials on a My Domain host


class Bench:
    def __init__(self, size: Size, latency_ms: int, results: Path, side_by_side: bool = True) -> None:
        self.size, self.latency_ms, self.results = size, latency_ms, results
        self.side_by_side = side_by_side
        self.logs = results / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        (self.logs / "records.jsonl").unlink(missing_ok=True)
        self.records: list[dict[str, Any]] = []
        self.common = {"machine": report.machine(), "date": report.stamp(), "size": size.name,
                       "latency_ms": latency_ms,
                       "mapped_tasks": "side by side" if side_by_side else "one at a time"}

    # -- processes -----------------------------------------------------------------------------------
    def worker(self, scenario: str, contender: str, spec: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
        name = f"{scenario}-{contender}"
        out = self.logs / f"{name}.result.json"
        spec_path = self.logs / f"{name}.spec.json"
        spec_path.write_text(json.dumps({**spec, "scenario": scenario, "contender": contender, "out": str(out),
                                         "side_by_side": self.side_by_side}))
        env = dict(env)
        paths = [str(REPO / "plugins"), str(REPO), *env.pop("EXTRA_PYTHONPATH", "").split(os.pathsep)]
        full_env = {**os.environ, "AIRFLOW__CORE__LOAD_EXAMPLES": "False", **env,
                    "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
        print(f"  {name}: running", flush=True)
        with open(self.logs / f"{name}.log", "wb") as log:
            done = subprocess.run([sys.executable, "-m", "bench.worker", str(spec_path)], cwd=REPO, env=full_env,
                                  stdout=log, stderr=log, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{name} failed (exit {done.returncode}); see {self.logs / f'{name}.log'}")
        result = json.loads(out.read_text())
        print(f"  {name}: {result['wall_s']} s, {result.get('rows', 0):,} rows", flush=True)
        return result

    def front(self, box: Sandbox) -> dict[str, Any]:
        """The TLS front for the real host names; its CA and the sandbox's in one bundle."""
        mc = box.info["mailchimp_url"].removesuffix("/3.0")
        proc = subprocess.Popen([sys.executable, "-m", "bench.tls_front", "--dir", str(box.root / "front"),
                                 "--route", f"mailchimp={mc}", "--route", f"salesforce={box.info['salesforce_url']}",
                                 "--upstream-ca", box.info["ca_bundle"]], cwd=REPO, stdout=subprocess.PIPE,
                                stderr=open(self.logs / "tls_front.log", "ab"),  # noqa: SIM115 - lives with the child
                                env={**os.environ, "PYTHONPATH": str(REPO)})
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        bundle = box.root / "ca-bundle.pem"
        bundle.write_text(Path(info["ca"]).read_text() + Path(box.info["ca_bundle"]).read_text())
        return {"proc": proc, "ports": info["ports"], "bundle": str(bundle)}

    def peer_env(self, box: Sandbox, front: dict[str, Any]) -> dict[str, str]:
        conn = {"conn_type": "salesforce", "extra": {"consumer_key": box.info["salesforce_client_id"],
                                                     "consumer_secret": box.info["salesforce_client_secret"],
                                                     "domain": PEER_DOMAIN}}
        return {**box.env(), "AIRFLOW_CONN_SALESFORCE_PEER": json.dumps(conn), "REQUESTS_CA_BUNDLE": front["bundle"],
                "EXTRA_PYTHONPATH": str(REPO / "bench" / "resolve"),
                "BENCH_RESOLVE": json.dumps({"*.my.salesforce.com": front["ports"]["salesforce"],
                                             "*.api.mailchimp.com": front["ports"]["mailchimp"]})}

    def timed(self, box: Sandbox, scenario: str, contender: str, spec: dict[str, Any], env: dict[str, str],
              bound_of: Any, extrapolate_to: int | None = None) -> dict[str, Any]:
        """Reset the counters, run, read the counters; the record with its lower bound."""
        jobs_before = bulk_jobs(box)
        box.reset_counts()
        server_cpu = box.cpu_seconds()
        result = self.worker(scenario, contender, spec, env)
        refused = (result.get("outcome") or {}).get("load_failed", 0)
        if refused:  # a run Salesforce mostly refused is fast and meaningless: say so next to its figures
            print(f"  {scenario}-{contender}: WARNING Salesforce refused {refused:,} rows; see the log", flush=True)
        result["sandbox_cpu_s"] = round(box.cpu_seconds() - server_cpu, 1)
        counts = box.counts()
        bytes_per_row = row_bytes(box, jobs_before)
        bound = bound_of(result, bytes_per_row) if bound_of else None
        rec = report.record(scenario, contender, result, counts, bound, self.common, extrapolate_to)
        if bytes_per_row:
            rec["bulk_csv_bytes_per_row"] = bytes_per_row
        self.records.append(rec)
        with open(self.logs / "records.jsonl", "a") as fh:  # a run cut short keeps what it measured
            fh.write(json.dumps(rec, default=str) + "\n")
        return rec

    # -- contenders ----------------------------------------------------------------------------------
    def mcsf(self, base: Path, scenarios: list[str], peers: set[str]) -> None:
        size = self.size
        box = Sandbox.start(clone(base, "mcsf"), self.latency_ms)
        front = None
        try:
            setup_data.write_mappings(box)
            audiences = setup_data.audience_sizes(box)
            self.facts = {"audiences": audiences}
            win = windows_iso()
            env = box.env()
            members = {k: v["members"] for k, v in audiences.items()}

            def sync_bound(changed: dict[str, int], full: bool) -> Any:
                return lambda result, rb: lower_bound.audience_sync(
                    audiences, changed, full=full, by_object=result.get("outcome", {}).get("by_object", {}),
                    row_bytes=rb)

            if "1" in scenarios:
                self.timed(box, "1", "mcsf", {"window": win["1"]}, env, sync_bound(members, True))
                if "c" in peers or "mcsf_extract_tls" in peers:
                    front = self.front(box)
                    self.extraction(box, front, audiences)
            elif set(scenarios) & {"2", "3", "4"}:  # they build on the first sync: run it, untimed
                print("  (scenario 1 as setup, not recorded: scenarios 2-4 start from a synced org)", flush=True)
                self.worker("1", "mcsf", {"window": win["1"]}, env)
            if "2" in scenarios:
                changed = setup_data.change_members(box, size)
                self.facts["changed"] = changed
                self.timed(box, "2", "mcsf", {"window": win["2"]}, env, sync_bound(changed, False))
            if "3" in scenarios:
                self.timed(box, "3", "mcsf", {"window": win["3"]}, env, sync_bound({}, False))
            if "4" in scenarios:
                activity = setup_data.add_activity(box, size)
                self.facts["activity"] = activity

                def activity_bound(result: dict[str, Any], rb: dict[str, float]) -> dict[str, Any]:
                    written = result["outcome"]["by_object"].get("MC_Activity__c", {})
                    return lower_bound.activity(activity["campaigns"], len(box.lists),
                                                events_written=sum(written.values()),
                                                failed=bool(written.get("failed")), row_bytes=rb)
                self.timed(box, "4", "mcsf", {"window": win["4"]}, env, activity_bound)
            if "5" in scenarios:
                push = setup_data.add_push_contacts(box, size)
                self.facts["push"] = push
                self.timed(box, "5", "mcsf", {"window": win["2"]}, env,
                           lambda result, rb: lower_bound.push(push["contacts"]))
        finally:
            if front:
                front["proc"].terminate()
            box.stop()

    def extraction(self, box: Sandbox, front: dict[str, Any], audiences: dict[str, Any]) -> None:
        """Scenario 1's read of every member: Airbyte's connector and mcsf's hook through the same TLS front."""
        from bench import airbyte

        members = sum(a["members"] for a in audiences.values())
        tls_env = {**self.peer_env(box, front), "AIRFLOW_CONN_MAILCHIMP_DEFAULT": json.dumps(
            {"conn_type": "mailchimp", "host": "https://us1.api.mailchimp.com/3.0",
             "password": box.info["mailchimp_api_key"]})}
        bound = {"mailchimp": sum(lower_bound.pages(m, 1000) for m in (a["members"] for a in audiences.values())),
                 "salesforce": 0}
        bound["total"] = bound["mailchimp"]
        self.timed(box, "1", "mcsf_extract_tls", {"lists": box.lists}, tls_env, lambda *_: bound)
        try:
            entry = airbyte.ensure_venv(self.logs / "airbyte-install.log")
        except (subprocess.CalledProcessError, OSError) as err:
            print(f"  peer (c) skipped: the Airbyte venv could not be made ({err})", flush=True)
            return
        start, sample = setup_data.recent_members(box, self.size.airbyte_records)
        spec = {"root": str(box.root), "entry": str(entry), "mailchimp_api_key": box.info["mailchimp_api_key"],
                "ca_bundle": front["bundle"], "front_port": front["ports"]["mailchimp"], "since": start,
                "lists": list(box.lists)}
        sample_bound = {"mailchimp": len(audiences) + 1, "salesforce": 0}  # /lists, then one members page each
        rec = self.timed(box, "1", "c", {**spec, "expected": sample}, {},
                         lambda *_: {**sample_bound, "total": sample_bound["mailchimp"]}, extrapolate_to=members)
        rec["sample"] = {"start_date": start, "members_changed_since": sample,
                         "why": "the connector handles ~10 records/s here; a full read would take a day"}

    @contextlib.contextmanager
    def peer_sandbox(self, base: Path, name: str) -> Iterator[tuple[Sandbox, dict[str, str], dict[str, Any]]]:
        """A peer's own sandbox copy behind the TLS front: ``(box, env, spec)``, stopped afterwards."""
        box = Sandbox.start(clone(base, name), self.latency_ms)
        front = self.front(box)
        try:
            spec = {"mailchimp_url": box.info["mailchimp_url"], "mailchimp_api_key": box.info["mailchimp_api_key"]}
            yield box, self.peer_env(box, front), spec
        finally:
            front["proc"].terminate()
            box.stop()

    def same_bound(self, scenario: str) -> Any:
        """mcsf's lower bound for ``scenario`` (the peers move the same data), if mcsf ran it."""
        mine = {r["scenario"]: r for r in self.records if r["contender"] == "mcsf"}
        return (lambda *_: mine[scenario]["requests_lower_bound"]) if scenario in mine else None

    def peer_a(self, base: Path, scenarios: list[str]) -> None:
        size, same_bound = self.size, self.same_bound
        with self.peer_sandbox(base, "peer_a") as (box, env, spec):
            win = windows_iso()
            if "1" in scenarios:
                self.timed(box, "1", "a", {**spec, "window": win["1"], "full": True}, env, same_bound("1"))
            if "2" in scenarios:
                setup_data.change_members(box, size)
                self.timed(box, "2", "a", {**spec, "window": win["2"]}, env, same_bound("2"))
            if "3" in scenarios:
                self.timed(box, "3", "a", {**spec, "window": win["3"]}, env, same_bound("3"))
            if "4" in scenarios:
                setup_data.add_activity(box, size)
                self.timed(box, "4", "a", {**spec, "window": win["4"], "cap": size.peer_a_activity_cap}, env,
                           same_bound("4"), extrapolate_to=size.activity_events)

    def peer_b(self, base: Path, scenarios: list[str]) -> None:
        size = self.size
        with self.peer_sandbox(base, "peer_b") as (box, env, spec):
            spec = {**spec, "records": size.peer_b_records}
            if "1" in scenarios:
                self.timed(box, "1", "b", spec, env, self.same_bound("1"), extrapolate_to=size.members)
            if "5" in scenarios:
                push = setup_data.add_push_contacts(box, size)
                query = {"department": setup_data.PUSH_DEPARTMENT, "list_id": push["list_id"]}
                self.timed(box, "5", "b", {**spec, **query}, env, lambda *_: lower_bound.push(push["contacts"]),
                           extrapolate_to=push["contacts"])

    def core(self) -> None:
        result = self.worker("6", "mcsf", {"rows": self.size.core_rows}, {})
        self.records.append(report.record("6", "mcsf", result, None, None, self.common))


def windows_iso() -> dict[str, list[str]]:
    """The scenarios' windows as ISO text, as the workers' specs carry them."""
    return {k: [v[0].isoformat(), v[1].isoformat()] for k, v in setup_data.windows().items()}


def bulk_jobs(box: Sandbox) -> set[str]:
    return set(_jobs(box))


def _jobs(box: Sandbox) -> dict[str, dict[str, Any]]:
    path = box.root / "sandbox" / "salesforce.sqlite3"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=60) as db:
        return {job_id: json.loads(info) for job_id, kind, info in db.execute("SELECT id, kind, info FROM _sf_jobs")
                if kind == "ingest"}


def row_bytes(box: Sandbox, before: set[str]) -> dict[str, float]:
    """Measured CSV bytes per row by object, over the Bulk 2.0 uploads since ``before``."""
    sizes: dict[str, list[int]] = {}
    for job_id, info in _jobs(box).items():
        if job_id in before or not info.get("processed"):
            continue
        folder = box.root / "sandbox" / "bulk" / job_id
        total = sum(p.stat().st_size for p in folder.glob("upload-*.csv"))
        acc = sizes.setdefault(info["object"], [0, 0])
        acc[0] += total
        acc[1] += info["processed"]
    return {obj: round(b / n, 1) for obj, (b, n) in sizes.items() if n}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--latency-ms", type=int, default=50, help="added to every API request (default 50)")
    parser.add_argument("--scenarios", default="1,2,3,4,5,6", help="comma-separated subset (default all)")
    parser.add_argument("--peers", default="a,b,c", help="comma-separated subset of a,b,c, or 'none'")
    parser.add_argument("--results", type=Path, help="where results go (default bench/results[/SIZE])")
    parser.add_argument("--mapped", choices=("side-by-side", "one-at-a-time"), default="side-by-side",
                        help="mcsf's per-audience tasks after extract: side by side as Airflow runs them "
                             "(default), or one at a time")
    args = parser.parse_args(argv)
    size = SIZES[args.size]
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    peers = set() if args.peers == "none" else {p.strip() for p in args.peers.split(",")}
    results = args.results or REPO / "bench" / "results" / ("" if size.name == "full" else size.name)
    bench = Bench(size, args.latency_ms, results, side_by_side=args.mapped == "side-by-side")
    started = time.monotonic()
    print(f"mcsf bench, size {size.name}, latency {args.latency_ms} ms; logs in {bench.logs}", flush=True)
    base = template(size, bench.logs / "seed.log")
    if set(scenarios) - {"6"}:
        bench.mcsf(base, scenarios, peers)
    if "6" in scenarios:
        bench.core()
    if "a" in peers and set(scenarios) & {"1", "2", "3", "4"}:
        bench.peer_a(base, scenarios)
    if "b" in peers and set(scenarios) & {"1", "5"}:
        bench.peer_b(base, scenarios)
    parse = __import__("bench.dagparse", fromlist=["measure"]).measure()
    checked = report.targets(bench.records, parse, size.audiences)
    report.write(results, bench.records, {"dag_parse": parse, "targets": {"size": size.name, "targets": checked,
                                                                          **bench.common},
                                          "facts": getattr(bench, "facts", {})})
    (results / "summary.md").write_text(report.markdown(bench.records, checked, bench.common))
    print()
    print(report.table(bench.records))
    print()
    for t in checked:
        print(f"  [{'INFO' if t['pass'] is None else 'PASS' if t['pass'] else 'FAIL'}] {t['target']}: {t['value']}")
    report.chart(bench.records, results / "chart.png",
                 f"mcsf vs peers — size {size.name}, {args.latency_ms} ms latency, {bench.common['date']}, "
                 f"{bench.common['machine']['cpus']} CPUs (shared, timings noisy)")
    print(f"\nresults in {results} ({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
