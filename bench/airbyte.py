"""Peer (c): Airbyte's Mailchimp source reading ``list_members`` from the sandbox, unmodified.

The connector lives in a venv of its own (``bench/.venv-airbyte``, made on first use; its
dependencies clash with Airflow's). It builds ``https://{dc}.api.mailchimp.com/3.0/`` from the
API key's suffix and cannot be given another base URL, so it runs with
``bench/resolve/sitecustomize.py`` on its path (the host name resolves to the bench's TLS front)
and ``REQUESTS_CA_BUNDLE`` naming the front's CA (and ``BENCH_CA_BUNDLE``: the CDK sends with
``Session.send``, which ignores ``REQUESTS_CA_BUNDLE``, so the sitecustomize points certifi there).
Records go to stdout as Airbyte messages; the bench counts them as they stream (as a destination
would read them) and keeps none.

The connector runs every record through a Jinja-evaluated ``RemoveFields`` (``**``) transformation,
about 10 records per second on this machine, so it reads the members changed most recently only
(``start_date``) and the orchestrator scales its time to the whole audience.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
VENV = REPO / "bench" / ".venv-airbyte"
#: The connector's last PyPI release, and the newest CDK it runs on: from CDK 4 the protocol messages are
#: dataclasses without ``.json()``, which the connector's config migration calls at every start.
PACKAGES = ("airbyte-source-mailchimp==2.0.37", "airbyte-cdk==3.9.6")
START_DATE = "2000-01-01T00:00:00.000Z"
_STREAM = re.compile(rb'"stream": ?"([^"]+)"')  # counting needs no full JSON parse per record


def ensure_venv(log: Path) -> Path:
    """The connector's entry point, installing it on first use (a minute or two, PyPI needed)."""
    entry = VENV / "bin" / "source-mailchimp"
    stamp = VENV / ".installed"
    if entry.exists() and stamp.exists() and stamp.read_text() == "\n".join(PACKAGES):
        return entry
    with open(log, "ab") as out:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True, stdout=out, stderr=out)
        subprocess.run([str(VENV / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        *PACKAGES], check=True, stdout=out, stderr=out)
    stamp.write_text("\n".join(PACKAGES))
    return entry


def catalog() -> dict[str, Any]:
    stream = {"name": "list_members", "json_schema": {}, "supported_sync_modes": ["full_refresh", "incremental"],
              "source_defined_cursor": True, "default_cursor_field": ["last_changed"],
              "source_defined_primary_key": [["id"], ["list_id"]]}
    return {"streams": [{"stream": stream, "sync_mode": "incremental", "cursor_field": ["last_changed"],
                         "destination_sync_mode": "append"}]}


def resume_state(list_ids: list[str], since: str) -> list[dict[str, Any]]:
    """A saved ``list_members`` state: every audience's members read up to ``since`` (ISO 8601)."""
    cursor = since[:19] + "+00:00"
    return [{"type": "STREAM", "stream": {"stream_descriptor": {"name": "list_members"}, "stream_state": {
        "states": [{"partition": {"id": i, "parent_slice": {}}, "cursor": {"last_changed": cursor}}
                   for i in list_ids]}}}]


def run_airbyte(spec: dict[str, Any]) -> dict[str, Any]:
    """A first sync of ``list_members`` (every audience's members), records counted per stream."""
    folder = Path(spec["root"]) / "airbyte"
    folder.mkdir(parents=True, exist_ok=True)
    config, configured = folder / "config.json", folder / "catalog.json"
    # start_date also filters the parent stream (lists by date_created), so it stays early; the sample
    # of recent members comes from a saved state instead: an incremental sync resuming per audience.
    config.write_text(json.dumps({"credentials": {"auth_type": "apikey", "apikey": spec["mailchimp_api_key"]},
                                  "start_date": START_DATE}))
    configured.write_text(json.dumps(catalog()))
    state = folder / "state.json"
    state.write_text(json.dumps(resume_state(spec["lists"], spec["since"]) if spec.get("since") else []))
    env = {**os.environ, "PYTHONPATH": str(REPO / "bench" / "resolve"), "REQUESTS_CA_BUNDLE": spec["ca_bundle"],
           "BENCH_CA_BUNDLE": spec["ca_bundle"],
           "BENCH_RESOLVE": json.dumps({"*.api.mailchimp.com": spec["front_port"]})}
    records: Counter[str] = Counter()
    messages: Counter[str] = Counter()
    errors: list[str] = []
    with open(folder / "airbyte.log", "wb") as log, open(folder / "messages.jsonl", "wb") as kept:
        proc = subprocess.Popen([spec["entry"], "read", "--config", str(config), "--catalog", str(configured),
                                 "--state", str(state)],
                                stdout=subprocess.PIPE, stderr=log, env=env, cwd=folder)
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith((b'{"type":"RECORD"', b'{"type": "RECORD"')):
                found = _STREAM.search(line)
                records[found.group(1).decode() if found else "?"] += 1
                continue
            kept.write(line)  # every message but the records, for reading what the connector did
            try:
                message = json.loads(line)
            except ValueError:
                continue
            messages[message.get("type", "?")] += 1
            if message.get("type") == "TRACE" and message.get("trace", {}).get("type") == "ERROR":
                errors.append(str(message["trace"]["error"].get("message"))[:300])
            elif message.get("type") == "LOG" and message["log"].get("level") in ("ERROR", "FATAL"):
                errors.append(str(message["log"].get("message"))[:300])
        returncode = proc.wait()
    return {"rows": records["list_members"], "records": dict(records), "messages": dict(messages),
            "errors": errors[:5], "returncode": returncode}
