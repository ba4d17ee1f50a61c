"""The sandboxes a benchmark runs against: one seeded template per size, one copy per contender.

Seeding a million members takes minutes, so the seeded state is kept in ``bench/.state/`` and
reused while its parameters match. Every contender (mcsf and each peer) then gets its own copy,
so each starts from byte-identical data and none sees another's writes. :class:`Sandbox` wraps a
running copy: the env vars that point mcsf at it, the private endpoints, request counters.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

from bench.sizes import ANCHOR, SEED, Size
from devtools.airflow_env import connection_env
from devtools.sandbox_proc import SandboxProcess, start_sandbox

if TYPE_CHECKING:
    from collections.abc import Iterable

REPO = Path(__file__).resolve().parents[1]
STATE = REPO / "bench" / ".state"
MARKER = "bench-template.json"


def _seed_args(size: Size) -> list[str]:
    return ["--seed", str(SEED), "--audiences", str(size.audiences), "--members", str(size.members_per_audience),
            "--campaigns", "0", "--activity-events", "0", "--anchor", ANCHOR.isoformat()]


def template(size: Size, log: Path) -> Path:
    """The seeded state for ``size``, seeded now unless a matching one exists."""
    path = STATE / f"template-{size.name}"
    params = {"args": _seed_args(size), "salesforce_metadata": _metadata_stamp()}
    marker = path / MARKER
    if marker.exists() and json.loads(marker.read_text()) == params:
        return path
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    started = time.monotonic()
    with open(log, "ab") as out:
        subprocess.run([sys.executable, "-m", "sandbox", "seed", "--state-dir", str(path), *_seed_args(size)],
                       cwd=REPO, check=True, stdout=out, stderr=out, env={**os.environ, "PYTHONPATH": str(REPO)})
    marker.write_text(json.dumps(params))
    print(f"  seeded the {size.name} template in {time.monotonic() - started:.0f} s", flush=True)
    return path


def _metadata_stamp() -> str:
    """A hash of the Salesforce metadata: a changed data model needs a new template."""
    import hashlib

    digest = hashlib.sha256()
    root = REPO / "include" / "salesforce"
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def clone(source: Path, name: str) -> Path:
    """A fresh copy of ``source`` (a stopped sandbox's state) under ``bench/.state/runs/<template>/name``."""
    dest = STATE / "runs" / source.name / name
    shutil.rmtree(dest, ignore_errors=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, dest / "sandbox", ignore=shutil.ignore_patterns("*.log", MARKER))
    return dest


@dataclass
class Sandbox:
    """One running sandbox copy plus the folders mcsf uses with it (mappings, staging, queries)."""

    root: Path
    proc: SandboxProcess
    info: dict[str, Any]
    lists: list[str] = field(default_factory=list)
    _token: str | None = None

    @classmethod
    def start(cls, root: Path, latency_ms: int, size: Size | None = None) -> Sandbox:
        """Serve the state under ``root/sandbox``; with ``size``, seed it first (else it must be seeded)."""
        seeding = _seed_args(size) if size else ["--no-seed", "--seed", str(SEED)]
        proc = start_sandbox(root / "sandbox", *seeding, "--latency-ms", str(latency_ms),
                             log_file=root / "sandbox.log")
        box = cls(root, proc, proc.info)
        box.lists = sorted(lst["id"] for lst in box.mc("GET", "/lists", params={"count": 100})["lists"])
        for folder in ("mappings", "staging", "queries", "airflow-home"):
            (root / folder).mkdir(parents=True, exist_ok=True)
        return box

    def stop(self) -> None:
        self.proc.stop()

    # -- environment for mcsf and the peers ---------------------------------------------------
    def env(self) -> dict[str, str]:
        return {
            **connection_env(self.info),
            "MCSF_MAPPINGS_DIR": str(self.root / "mappings"),
            "MCSF_QUERIES_DIR": str(self.root / "queries"),
            "MCSF_STAGING_URL": f"file://{self.root / 'staging'}",
            "AIRFLOW_HOME": str(self.root / "airflow-home"),
        }

    # -- Mailchimp --------------------------------------------------------------------------------
    @property
    def mc_base(self) -> str:
        return self.info["mailchimp_url"].removesuffix("/3.0")

    def mc(self, method: str, path: str, *, body: Any = None, params: dict[str, Any] | None = None,
           private: bool = False) -> Any:
        url = f"{self.mc_base}/_sandbox{path}" if private else f"{self.info['mailchimp_url']}{path}"
        r = requests.request(method, url, json=body, params=params, timeout=600,
                             auth=("bench", self.info["mailchimp_api_key"]))
        r.raise_for_status()
        return r.json()

    # -- Salesforce -------------------------------------------------------------------------------
    def sf(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        if self._token is None:
            form = {"grant_type": "client_credentials", "client_id": self.info["salesforce_client_id"],
                    "client_secret": self.info["salesforce_client_secret"]}
            r = requests.post(f"{self.info['salesforce_url']}/services/oauth2/token", data=form,
                              verify=self.info["ca_bundle"], timeout=60)
            r.raise_for_status()
            self._token = r.json()["access_token"]
        headers = {"Authorization": f"Bearer {self._token}", **kwargs.pop("headers", {})}
        r = requests.request(method, f"{self.info['salesforce_url']}{path}", headers=headers,
                             verify=self.info["ca_bundle"], timeout=600, **kwargs)
        r.raise_for_status()
        return r

    def sf_count(self, obj: str) -> int:
        return int(self.sf("GET", f"/_sandbox/objects/{obj}/count").json()["count"])

    def sf_bulk_insert(self, obj: str, header: list[str], rows: Iterable[list[str]]) -> dict[str, Any]:
        """Set-up data through Bulk 2.0 (call before the counters are reset)."""
        import csv
        import io

        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
        v = "/services/data/v59.0/jobs/ingest"
        job = self.sf("POST", v, json={"object": obj, "operation": "insert", "contentType": "CSV",
                                       "lineEnding": "LF"}).json()
        self.sf("PUT", f"{v}/{job['id']}/batches", data=text.getvalue().encode(),
                headers={"Content-Type": "text/csv"})
        self.sf("PATCH", f"{v}/{job['id']}", json={"state": "UploadComplete"})
        while (info := self.sf("GET", f"{v}/{job['id']}").json())["state"] not in ("JobComplete", "Failed"):
            time.sleep(0.5)
        return info

    # -- counters and controls --------------------------------------------------------------------
    def cpu_seconds(self) -> float:
        """CPU time the sandbox process has used: how much of a run's wall time the emulators took."""
        import psutil

        times = psutil.Process(int(self.info["pid"])).cpu_times()
        return times.user + times.system

    def counts(self) -> dict[str, Any]:
        return {"mailchimp": self.mc("GET", "/requests", private=True),
                "salesforce": self.sf("GET", "/_sandbox/requests").json()}

    def reset_counts(self) -> None:
        self.mc("POST", "/requests/reset", private=True)
        self.sf("POST", "/_sandbox/requests/reset")

    def set_latency(self, ms: int) -> None:
        self.mc("POST", "/controls", body={"latency_ms": ms}, private=True)
        self.sf("POST", "/_sandbox/controls", json={"latency_ms": ms})
