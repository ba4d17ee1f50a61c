"""Shared fixtures: one sandbox process per test session, and clients pointed at it.

The sandbox runs as a real subprocess (``python -m sandbox serve``) on free ports with a
fresh state dir, exactly as a developer or CI starts it, so tests talk real HTTP to it.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

    import requests

REPO = Path(__file__).resolve().parents[1]
SANDBOX_SEED = 7
SANDBOX_ANCHOR = "2026-11-20T10:00:00+00:00"
START_TIMEOUT_S = 120


def _read_line(proc: subprocess.Popen[bytes], timeout: float) -> bytes:
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    if not sel.select(timeout):
        proc.kill()
        raise RuntimeError(f"the sandbox printed nothing within {timeout} s")
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"the sandbox exited early with code {proc.wait()}")
    return line


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Start ``python -m sandbox serve`` (seed 7, fixed anchor) and yield its JSON line as a dict."""
    state = tmp_path_factory.mktemp("sandbox-state")
    log = (state.parent / "sandbox.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "serve", "--state-dir", str(state), "--mailchimp-port", "0",
         "--salesforce-port", "0", "--seed", str(SANDBOX_SEED), "--anchor", SANDBOX_ANCHOR],
        cwd=REPO, stdout=subprocess.PIPE, stderr=log, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        info = json.loads(_read_line(proc, START_TIMEOUT_S))
        info["anchor"] = SANDBOX_ANCHOR
        info["seed"] = SANDBOX_SEED
        yield info
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="session")
def mailchimp_client(sandbox: dict[str, Any]) -> Any:
    """The official ``mailchimp_marketing.Client`` pointed at the sandbox."""
    import mailchimp_marketing

    client = mailchimp_marketing.Client()
    client.set_config({"api_key": sandbox["mailchimp_api_key"], "server": "us1"})
    client.api_client.host = sandbox["mailchimp_url"]
    return client


@pytest.fixture(scope="session")
def mailchimp_http(sandbox: dict[str, Any]) -> requests.Session:
    """A ``requests`` session with the sandbox API key (Basic auth, any username)."""
    import requests

    session = requests.Session()
    session.auth = ("anystring", sandbox["mailchimp_api_key"])
    return session
