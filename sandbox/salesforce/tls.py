"""The sandbox's own certificate authority, so clients verify TLS exactly as against Salesforce."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path


def ensure_certs(state_dir: Path) -> tuple[Path, Path, Path]:
    """``(ca.pem, server cert chain pem, server key pem)``, made once per state dir.

    The leaf names ``127.0.0.1``, ``localhost`` and any comma-separated names in
    ``MCSF_SANDBOX_TLS_HOSTNAMES`` (e.g. ``sandbox``, the service name in docker-compose); clients
    trust ``ca.pem`` (``session.verify`` or ``REQUESTS_CA_BUNDLE``), never ``verify=False``.
    """
    folder = state_dir / "tls"
    ca_path, cert_path, key_path = folder / "ca.pem", folder / "server.pem", folder / "server-key.pem"
    if not (ca_path.exists() and cert_path.exists() and key_path.exists()):
        import trustme

        folder.mkdir(parents=True, exist_ok=True)
        ca = trustme.CA(organization_name="mcsf sandbox")
        extra = [n.strip() for n in os.environ.get("MCSF_SANDBOX_TLS_HOSTNAMES", "").split(",") if n.strip()]
        leaf = ca.issue_cert("127.0.0.1", "localhost", *extra)
        # write the key before the files that signal "done", so a crash leaves no half set
        leaf.private_key_pem.write_to_path(str(key_path))
        key_path.chmod(0o600)
        cert_path.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
        ca.cert_pem.write_to_path(str(ca_path))
    return ca_path, cert_path, key_path
