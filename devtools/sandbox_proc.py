"""Start ``python -m sandbox serve`` as a child process and read the JSON line it prints."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


@dataclass
class SandboxProcess:
    process: subprocess.Popen
    info: dict[str, Any]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> SandboxProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def mailchimp_private(info: dict[str, Any], method: str, path: str, body: Any = None) -> Any:
    """Call the Mailchimp emulator's private ``/_sandbox`` API (explicit timestamps, clock, controls).

    :param info: the JSON line the sandbox printed on start
    """
    import requests

    base = info["mailchimp_url"].removesuffix("/3.0")
    response = requests.request(method, f"{base}/_sandbox{path}", json=body, timeout=60,
                                auth=("test", info["mailchimp_api_key"]))
    response.raise_for_status()
    return response.json()


def start_sandbox(state_dir: Path, *args: str, timeout: float = 600.0, log_file: Path | None = None) -> SandboxProcess:
    """Start the sandbox on free ports; return once it prints its JSON line.

    :param args: further ``serve`` flags (``--seed``, ``--members``, ``--latency-ms`` ...)
    :param timeout: seconds to wait for start-up (seeding a large org takes a while)
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    stderr = open(log_file or state_dir / "sandbox.log", "ab")  # noqa: SIM115 - lives as long as the child
    cmd = [sys.executable, "-m", "sandbox", "serve", "--state-dir", str(state_dir),
           "--mailchimp-port", "0", "--salesforce-port", "0", *args]
    process = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=stderr,
                               env={**os.environ, "PYTHONPATH": str(REPO)})
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    line = b""
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sandbox exited with {process.returncode}; see {stderr.name}")
        if selector.select(timeout=0.5):
            line = process.stdout.readline()
            if line.strip().startswith(b"{"):
                return SandboxProcess(process, json.loads(line))
    process.kill()
    raise TimeoutError(f"sandbox did not start within {timeout:.0f} s; see {stderr.name}")
