"""Benchmark the Salesforce sandbox: a big Bulk API 2.0 upsert and REST query pages.

Targets (2-core machine): 1,000,000 rows x 10 columns upserted in <= 60 s of server time;
one 2,000-record query page in <= 100 ms. Run ``python -m bench.bench_sandbox_salesforce --rows N``;
``run(rows)`` returns the figures for the bench runner.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

V = "/services/data/v59.0"
COLUMNS = ["MC_Email_Key__c", "Email", "FirstName", "LastName", "Company", "Phone", "Title", "City", "Country",
           "LeadSource"]
SOURCES = ["Web", "Mailchimp", "Other", "Partner Referral"]


def write_csv(path: Path, rows: int, variant: str) -> int:
    """Ten columns of plausible Lead data; ``variant`` changes the non-key values between passes."""
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(",".join(COLUMNS) + "\n")
        lines = []
        for i in range(rows):
            email = f"user{i}@example{i % 97}.com"
            lines.append(f'{email},{email},First{i},"Last, {variant}{i}",Company {i % 5000},+1 555 {i % 10_000:04d},'
                         f"Title {variant},City {i % 800},Country {i % 60},{SOURCES[i % 4]}\n")
            if len(lines) == 50_000:
                fh.write("".join(lines))
                lines.clear()
        fh.write("".join(lines))
    return path.stat().st_size


def upsert(http: Any, base: str, data: Path) -> dict[str, Any]:
    jobs = f"{base}{V}/jobs/ingest"
    job = http.post(jobs, json={"object": "Lead", "operation": "upsert", "externalIdFieldName": "MC_Email_Key__c",
                                "contentType": "CSV", "lineEnding": "LF"}).json()
    t0, cpu0 = time.perf_counter(), _cpu()
    with open(data, "rb") as fh:
        r = http.put(f"{jobs}/{job['id']}/batches", data=fh, headers={"Content-Type": "text/csv"})
    upload_s = time.perf_counter() - t0
    assert r.status_code == 201, r.text
    http.patch(f"{jobs}/{job['id']}", json={"state": "UploadComplete"}).raise_for_status()
    while (info := http.get(f"{jobs}/{job['id']}").json())["state"] not in ("JobComplete", "Failed", "Aborted"):
        time.sleep(0.25)
    wall_s, cpu_s = time.perf_counter() - t0, _cpu() - cpu0
    assert info["state"] == "JobComplete", info
    server_s = upload_s + info["totalProcessingTime"] / 1000
    return {"upload_s": round(upload_s, 2), "processing_s": round(info["totalProcessingTime"] / 1000, 2),
            "server_s": round(server_s, 2), "rows_per_s": round(info["numberRecordsProcessed"] / server_s),
            "wall_s": round(wall_s, 2), "process_cpu_s": round(cpu_s, 2),
            "processed": info["numberRecordsProcessed"], "failed": info["numberRecordsFailed"]}


def _cpu() -> float:
    """CPU seconds of this process (server threads + the idle polling client): fair on a busy machine."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def query_pages(http: Any, base: str, repeats: int = 15) -> dict[str, float]:
    q = "SELECT Id, Email, FirstName, LastName, Company, Phone, Title, City, Country, LeadSource FROM Lead"
    first, deep = [], []
    url = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        body = http.get(f"{base}{V}/query", params={"q": q}).json()
        first.append(time.perf_counter() - t0)
        assert len(body["records"]) == 2000
        url = body["nextRecordsUrl"]
    pos = 2000
    for _ in range(repeats):  # walk forward: keyset paging keeps later pages as cheap as the first
        t0 = time.perf_counter()
        body = http.get(base + url).json()
        deep.append(time.perf_counter() - t0)
        pos += len(body["records"])
        url = body.get("nextRecordsUrl") or url
    filtered = []
    for i in range(repeats):
        t0 = time.perf_counter()
        http.get(f"{base}{V}/query", params={"q": f"{q} WHERE Email = 'user{i * 7}@example{i * 7 % 97}.com'"})
        filtered.append(time.perf_counter() - t0)
    return {"first_page_ms": round(statistics.median(first) * 1000, 1),
            "next_page_ms": round(statistics.median(deep) * 1000, 1),
            "indexed_lookup_ms": round(statistics.median(filtered) * 1000, 1)}


def run(rows: int = 1_000_000, passes: int = 2, state_dir: Path | None = None) -> dict[str, Any]:
    from sandbox.salesforce.testing import serve

    with tempfile.TemporaryDirectory() as tmp:
        state = state_dir or Path(tmp) / "state"
        results: dict[str, Any] = {"rows": rows, "columns": len(COLUMNS), "cpus": os.cpu_count(),
                                   "load_avg_1m_at_start": round(os.getloadavg()[0], 2)}
        with serve(state) as sb:
            http = sb.session()
            http.headers["Authorization"] = f"Bearer {sb.token()}"
            for n in range(passes):
                data = Path(tmp) / f"pass{n}.csv"
                results[f"csv_mb_pass{n + 1}"] = round(write_csv(data, rows, f"v{n}") / 1e6, 1)
                results[f"upsert_pass{n + 1}"] = upsert(http, sb.base_url, data)
                data.unlink()
            results["query"] = query_pages(http, sb.base_url)
        return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--passes", type=int, default=2, help="1 = inserts only; 2 = then update every row")
    args = ap.parse_args()
    res = run(args.rows, args.passes)
    print(json.dumps(res, indent=2))
    print(f"\n{'measure':<34}{'value':>12}{'target':>12}")
    for n in range(args.passes):
        up = res[f"upsert_pass{n + 1}"]
        label = "inserts" if n == 0 else "updates"
        print(f"{f'bulk upsert server s ({label})':<34}{up['server_s']:>12}{'<= 60':>12}")
        print(f"{f'  of which CPU s ({label})':<34}{up['process_cpu_s']:>12}{'':>12}")
        print(f"{f'  rows/s ({label})':<34}{up['rows_per_s']:>12}{'':>12}")
    print(f"{'query first page ms (2000 rows)':<34}{res['query']['first_page_ms']:>12}{'<= 100':>12}")
    print(f"{'query next page ms (2000 rows)':<34}{res['query']['next_page_ms']:>12}{'<= 100':>12}")


if __name__ == "__main__":
    main()
