"""A TLS front for the sandbox under the real API host names: ``python -m bench.tls_front``.

Clients that cannot be pointed at another base URL (Airbyte's Mailchimp source builds
``https://{dc}.api.mailchimp.com``; simple-salesforce logs in at ``https://{domain}.salesforce.com``)
reach the sandbox through this process: it terminates TLS with a certificate for
``*.api.mailchimp.com`` and ``*.my.salesforce.com`` from its own CA and relays the bytes to the
sandbox (plain HTTP for Mailchimp, TLS again for Salesforce). ``bench/resolve/sitecustomize.py``
sends the host names here. Prints one JSON line ``{"ports": {name: port}, "ca": path}``.

    python -m bench.tls_front --dir DIR --route mailchimp=http://127.0.0.1:8081 \\
        --route salesforce=https://127.0.0.1:8443 --upstream-ca sandbox/tls/ca.pem
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import ssl
import sys
from pathlib import Path
from urllib.parse import urlsplit

NAMES = ("*.api.mailchimp.com", "*.my.salesforce.com")


def certificates(folder: Path) -> tuple[Path, Path]:
    """``(ca.pem, chain+key.pem)``: made once per folder."""
    import trustme

    ca_path, leaf_path = folder / "front-ca.pem", folder / "front-leaf.pem"
    if not (ca_path.exists() and leaf_path.exists()):
        folder.mkdir(parents=True, exist_ok=True)
        ca = trustme.CA(organization_name="mcsf bench TLS front")
        leaf = ca.issue_cert(*NAMES)
        leaf.private_key_and_cert_chain_pem.write_to_path(str(leaf_path))
        ca.cert_pem.write_to_path(str(ca_path))
    return ca_path, leaf_path


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(1 << 16):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


def _relay(upstream: str, upstream_ssl: ssl.SSLContext | None):
    parts = urlsplit(upstream)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(
                parts.hostname, parts.port, ssl=upstream_ssl if parts.scheme == "https" else None)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))
    return handle


async def serve(routes: dict[str, str], folder: Path, upstream_ca: str | None) -> None:
    ca, leaf = certificates(folder)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(leaf))
    upstream_ssl = ssl.create_default_context(cafile=upstream_ca) if upstream_ca else None
    servers, ports = [], {}
    for name, upstream in routes.items():
        server = await asyncio.start_server(_relay(upstream, upstream_ssl), "127.0.0.1", 0, ssl=context, backlog=512)
        servers.append(server)
        ports[name] = server.sockets[0].getsockname()[1]
    sys.stdout.write(json.dumps({"ports": ports, "ca": str(ca)}) + "\n")
    sys.stdout.flush()
    await asyncio.gather(*(s.serve_forever() for s in servers))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, required=True, help="where the front's CA and certificate live")
    parser.add_argument("--route", action="append", default=[], help="NAME=UPSTREAM_URL, repeatable")
    parser.add_argument("--upstream-ca", help="CA file that signs the HTTPS upstreams' certificates")
    args = parser.parse_args()
    routes = dict(r.split("=", 1) for r in args.route)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(routes, args.dir, args.upstream_ca))


if __name__ == "__main__":
    main()
