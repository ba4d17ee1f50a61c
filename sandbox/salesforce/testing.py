"""Run the Salesforce emulator in-process over TLS for tests and benchmarks.

``with serve(state_dir) as sb: ...`` starts uvicorn on a free port in a thread and yields a
:class:`Running` with the base URL, CA path, credentials and a token; the serving process of the
sandbox (``python -m sandbox serve``) does the same thing for real.
"""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    import requests


@dataclass
class Running:
    base_url: str
    ca: Path
    creds: dict[str, str]
    controls: Any
    state_dir: Path

    def session(self) -> requests.Session:
        import requests

        s = requests.Session()
        # requests lets REQUESTS_CA_BUNDLE (set on many machines) override session.verify unless
        # trust_env is off; localhost needs no proxy settings from the environment either
        s.trust_env = False
        s.verify = str(self.ca)
        return s

    def token(self) -> str:
        form = {"grant_type": "client_credentials", "client_id": self.creds["client_id"],
                "client_secret": self.creds["client_secret"]}
        r = self.session().post(f"{self.base_url}/services/oauth2/token", data=form, timeout=30)
        r.raise_for_status()
        return r.json()["access_token"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(state_dir: Path, controls: Any = None, port: int | None = None) -> Iterator[Running]:
    import uvicorn

    from sandbox.controls import Controls
    from sandbox.salesforce import create_app, credentials, ensure_certs

    controls = controls or Controls()
    ca, cert, key = ensure_certs(state_dir)
    port = port or free_port()
    base = f"https://127.0.0.1:{port}"
    app = create_app(state_dir, controls, base)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, ssl_certfile=str(cert), ssl_keyfile=str(key),
                            log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True, name="sf-sandbox")
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the Salesforce sandbox did not start")
        time.sleep(0.02)
    try:
        yield Running(base, ca, credentials(state_dir), controls, state_dir)
    finally:
        server.should_exit = True
        server.force_exit = True  # don't wait for clients' idle keep-alive TLS connections
        thread.join(timeout=10)
