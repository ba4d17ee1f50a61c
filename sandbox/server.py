"""The sandbox process: seed the state dir if needed, then serve both emulators in one loop.

Two ``uvicorn.Server`` instances share one asyncio loop: Mailchimp over plain HTTP and
Salesforce over HTTPS with the certificates its package makes. Sockets are bound before the
apps are built, so a port of 0 becomes a real port that the apps can put in their URLs. When
both listen, one JSON line with the URLs and credentials goes to stdout; logs go to stderr.
SIGTERM and SIGINT stop both servers gracefully.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sandbox.controls import Controls, parse_faults

if TYPE_CHECKING:
    from collections.abc import Iterator
    from types import ModuleType

log = logging.getLogger("sandbox")
MARKER = ".sandbox-state"
#: Idle keep-alive connections stay open this long (uvicorn's default is 5 s). Salesforce keeps them
#: far longer; clients that poll every 5 s (simple-salesforce's Bulk 1.0 batches) would otherwise race
#: the close and get "Remote end closed connection without response".
KEEP_ALIVE_S = 120


@dataclass(frozen=True)
class Options:
    state_dir: Path
    seed: int
    anchor: datetime
    audiences: int
    members: int
    campaigns: int
    activity_events: int
    reseed: bool = False
    no_seed: bool = False


def salesforce_package() -> ModuleType | None:
    """The Salesforce emulator when it is installed; Mailchimp alone runs without it."""
    try:
        import sandbox.salesforce as sf
    except ModuleNotFoundError:
        return None
    return sf if hasattr(sf, "create_app") else None


def prepare_state(opts: Options) -> None:
    """Create, wipe (``--reseed``) and seed the state dir as the options say.

    A non-empty directory without our marker file is never wiped: ``--state-dir ~`` must not
    delete a home directory.
    """
    state = opts.state_dir
    state.mkdir(parents=True, exist_ok=True)
    marker = state / MARKER
    if opts.reseed and any(state.iterdir()):
        if not marker.exists() and not (state / "mailchimp.sqlite3").exists():
            raise SystemExit(f"refusing to wipe {state}: it was not created by the sandbox (no {MARKER} file)")
        for entry in state.iterdir():
            if entry.suffix == ".log":  # a caller may be writing its log of this very process there
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    marker.touch()
    from sandbox.mailchimp.account import ensure_account
    from sandbox.mailchimp.seed import SeedSizes, seed_mailchimp
    from sandbox.mailchimp.store import Store
    from sandbox.mailchimp.timeutil import fmt

    store = Store(state)
    if store.is_seeded():
        return
    if opts.no_seed:
        ensure_account(store, opts.seed, fmt(opts.anchor))
        return
    sizes = SeedSizes(opts.audiences, opts.members, opts.campaigns, opts.activity_events)
    log.info("seeding %s: %s audiences x %s members, %s campaigns, %s activity events (seed %s)",
             state, sizes.audiences, sizes.members, sizes.campaigns, sizes.activity_events, opts.seed)
    org_people = seed_mailchimp(store, opts.seed, opts.anchor, sizes)
    sf = salesforce_package()
    if sf is not None:
        sf.seed_org(state, org_people, opts.seed)
        log.info("seeded the Salesforce org with %s people", len(org_people))


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class _Server:
    """``uvicorn.Server`` without its own signal handling: this process stops all servers at once."""

    def __new__(cls, config: Any) -> Any:
        import uvicorn

        class Quiet(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                yield

        return Quiet(config)


async def _serve(opts: Options, host: str, mc_port: int, sf_port: int | None, latency_ms: int,
                 faults: str | None) -> None:
    import uvicorn

    from sandbox.mailchimp import create_app as mailchimp_app
    from sandbox.mailchimp.store import Store

    fault_spec = parse_faults(faults)
    servers, info = [], {}
    mc_sock = bind(host, mc_port)
    mc_url = f"http://{_url_host(host)}:{mc_sock.getsockname()[1]}/3.0"
    mc_controls = Controls(latency_ms=latency_ms, faults=dict(fault_spec), seed=opts.seed, max_in_flight=10)
    app = mailchimp_app(opts.state_dir, mc_controls, mc_url)
    servers.append((_Server(uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False,
                                              timeout_graceful_shutdown=2, timeout_keep_alive=KEEP_ALIVE_S)), mc_sock))
    info.update({"mailchimp_url": mc_url, "mailchimp_api_key": Store(opts.state_dir).meta("api_key"),
                 "mailchimp_server": "us1"})
    sf = salesforce_package() if sf_port is not None else None
    if sf is not None and sf_port is not None:
        ca, cert, key = sf.ensure_certs(opts.state_dir)
        sf_sock = bind(host, sf_port)
        sf_url = f"https://{_url_host(host)}:{sf_sock.getsockname()[1]}"
        sf_controls = Controls(latency_ms=latency_ms, faults=dict(fault_spec), seed=opts.seed + 1)
        sf_app = sf.create_app(opts.state_dir, sf_controls, sf_url)
        # Idle keep-alive clients must not hold a stop up: 2 s of grace, then close.
        config = uvicorn.Config(sf_app, log_level="warning", lifespan="off", access_log=False,
                                ssl_certfile=str(cert), ssl_keyfile=str(key), timeout_graceful_shutdown=2,
                                timeout_keep_alive=KEEP_ALIVE_S)
        servers.append((_Server(config), sf_sock))
        creds = sf.credentials(opts.state_dir)
        info.update({"salesforce_url": sf_url, "salesforce_client_id": creds["client_id"],
                     "salesforce_client_secret": creds["client_secret"], "ca_bundle": str(ca)})
    info.update({"state_dir": str(opts.state_dir.resolve()), "pid": os.getpid()})

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: [setattr(s, "should_exit", True) for s, _ in servers])
    tasks = [asyncio.create_task(server.serve(sockets=[sock])) for server, sock in servers]
    while not all(server.started for server, _ in servers):
        if any(t.done() for t in tasks):
            await asyncio.gather(*tasks)
            raise SystemExit("a server failed to start")
        await asyncio.sleep(0.01)
    sys.stdout.write(json.dumps(info) + "\n")
    sys.stdout.flush()
    log.info("serving Mailchimp at %s%s", mc_url, f" and Salesforce at {info['salesforce_url']}" if sf else "")
    await asyncio.gather(*tasks)


def serve(opts: Options, host: str, mc_port: int, sf_port: int | None, latency_ms: int, faults: str | None) -> None:
    """Serve until SIGTERM/SIGINT; ``sf_port`` None serves Mailchimp alone."""
    prepare_state(opts)
    asyncio.run(_serve(opts, host, mc_port, sf_port, latency_ms, faults))
