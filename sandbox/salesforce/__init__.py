"""Salesforce REST + Bulk API 2.0 emulator, served over TLS, schema read from include/salesforce.

The serving process calls exactly these four functions; see README.md in this folder.
"""

from __future__ import annotations

from sandbox.salesforce.app import create_app
from sandbox.salesforce.auth import credentials
from sandbox.salesforce.seed import seed_org
from sandbox.salesforce.tls import ensure_certs

__all__ = ["create_app", "credentials", "ensure_certs", "seed_org"]
