"""Scenario 6: the pure core alone — map (``to_subscribers`` + ``person_values``) and validate
(``validate_rows`` with ``subscriber_rules``) on N member rows, as the DAG's map and validate tasks
run them, without I/O.

The rows have the shape :func:`mcsf.extract.flatten_member` gives and the seed's mess: names from
the sandbox's 13-locale population, blank and whitespace-wrapped names, emails in odd case and a
few Salesforce cannot take, every member status. The Salesforce describes are the sandbox's, built
from ``include/salesforce`` like the org's.
"""

from __future__ import annotations

import io
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.setup_data import mapping_yaml
from bench.sizes import SEED

LIST_ID = "bench0core"
STATUSES = np.array(["subscribed"] * 80 + ["unsubscribed"] * 8 + ["cleaned"] * 3 + ["pending"] * 4
                    + ["transactional"] * 3 + ["archived"] * 2, dtype=object)


def members(rows: int) -> pd.DataFrame:
    """``rows`` members of one audience, deterministic for the bench's seed."""
    import hashlib

    from sandbox.people import build_people

    rng = np.random.default_rng(SEED)
    people = build_people(min(rows, 50_000), SEED)
    pick = rng.integers(0, len(people), rows)
    first = np.array([p["first_name"] for p in people], dtype=object)[pick]
    last = np.array([p["last_name"] for p in people], dtype=object)[pick]
    local = np.array([p["email"].partition("@")[0] for p in people], dtype=object)[pick]
    domain = np.array([p["email"].partition("@")[2] for p in people], dtype=object)[pick]
    emails = [f"{a}.{i}@{b}" for i, (a, b) in enumerate(zip(local, domain, strict=True))]
    roll = rng.random(rows)
    emails = [e.upper() if r < 0.05 else (e.replace("@", " @") if r > 0.995 else e) for e, r in zip(emails, roll,
                                                                                                   strict=True)]
    blank = rng.random(rows)
    first = np.where(blank < 0.05, "", np.where(blank > 0.98, "  " + first + " ", first))
    last = np.where(rng.random(rows) < 0.05, "", last)
    frame = pd.DataFrame({
        "list_id": LIST_ID,
        "email_hash": [hashlib.md5(e.strip().lower().encode()).hexdigest() for e in emails],
        "email_address": emails,
        "status": STATUSES[rng.integers(0, len(STATUSES), rows)],
        "member_rating": rng.integers(1, 6, rows),
        "last_changed": pd.Timestamp("2026-11-20T09:00:00Z") - pd.to_timedelta(rng.integers(0, 10**6, rows), "s"),
        "timestamp_opt": "2024-05-01T08:00:00+00:00",
        "language": np.array(["en", "de", "fr", "", "ja"], dtype=object)[rng.integers(0, 5, rows)],
        "vip": rng.random(rows) < 0.02,
        "tags": np.where(rng.random(rows) < 0.1, "VIP;Beta tester", None),
        "interests": np.where(rng.random(rows) < 0.4, "a1b2c3d4e5;f6e5d4c3b2", None),
        "merge.FNAME": first, "merge.LNAME": last,
        "merge.PHONE": np.where(rng.random(rows) < 0.6, np.array([p["phone"] for p in people], dtype=object)[pick],
                                None),
        "merge.COMPANY": np.array([p["company"] for p in people], dtype=object)[pick],
        "merge.ADDRESS.city": np.array([p["address"].get("city") for p in people], dtype=object)[pick],
        "merge.BIRTHDAY": "04/12",
    })
    frame["last_changed"] = frame["last_changed"].dt.strftime("%Y-%m-%dT%H:%M:%S+00:00")
    return frame.replace({"": None})


def describes() -> dict[str, dict[str, dict[str, Any]]]:
    """Lead, Contact and MC_Subscriber__c as the org describes them, slimmed as preflight stages them."""
    from mcsf.audience import DESCRIBED, _slim_describe
    from sandbox.salesforce.describe import field_describe
    from sandbox.salesforce.schema import load_schema

    schema = load_schema(None, {})
    return {name: _slim_describe({"fields": [field_describe(f, schema.objects[name])
                                             for f in schema.objects[name].fields.values()]})
            for name in DESCRIBED}


def run(rows: int) -> dict[str, Any]:
    from mcsf.config import load_mapping
    from mcsf.mapping import mapped_rows, person_values, to_subscribers
    from mcsf.validate import subscriber_rules, validate_rows

    frame = members(rows)
    buffer = io.BytesIO()  # as the map task reads it: from the extract's Parquet (pyarrow-backed text)
    frame.to_parquet(buffer)
    frame = pd.read_parquet(io.BytesIO(buffer.getvalue()))
    described = describes()
    started = time.perf_counter()
    import great_expectations  # noqa: F401 - once per task process; reported apart, not in the core's time

    gx_import_s = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "core.yaml"
        path.write_text(mapping_yaml(LIST_ID))
        mapping = load_mapping(path)
    steps = {}
    started = time.perf_counter()
    subscribers = to_subscribers(frame, mapping)
    steps["to_subscribers"] = time.perf_counter() - started
    mark = time.perf_counter()
    people = person_values(frame, mapping, described)
    steps["person_values"] = time.perf_counter() - mark
    mark = time.perf_counter()
    mapped = mapped_rows(subscribers, people)
    steps["combine"] = time.perf_counter() - mark
    mark = time.perf_counter()
    verdict = validate_rows(mapped, subscriber_rules(mapping, described))
    steps["validate_rows"] = time.perf_counter() - mark
    core_s = time.perf_counter() - started
    return {"rows": rows, "core_s": round(core_s, 2), "rows_per_s_core": round(rows / core_s),
            "gx_import_s": round(gx_import_s, 2),
            "steps": {k: round(v, 2) for k, v in steps.items()},
            "outcome": {"passed": len(verdict.passed), "rejected": len(verdict.rejected),
                        "top_reasons": verdict.top_reasons(5)}}
