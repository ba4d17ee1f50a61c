"""Loaded by a benchmark subprocess through PYTHONPATH: resolve real API host names to the TLS front.

``BENCH_RESOLVE='{"*.api.mailchimp.com": 40123, "*.my.salesforce.com": 40124}'`` sends connections
to those hosts on port 443 to ``127.0.0.1:<port>`` instead. TLS still checks the real host name
(the front's certificate carries it, signed by a CA in ``REQUESTS_CA_BUNDLE``), so a client runs
unchanged, unaware that the server is the sandbox.
"""

import fnmatch
import json
import os
import socket

_ROUTES = json.loads(os.environ.get("BENCH_RESOLVE") or "{}")

if _ROUTES:
    _getaddrinfo = socket.getaddrinfo

    def _resolve(host, port, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else str(host or "")
        if str(port) in ("443", "https"):
            for pattern, target in _ROUTES.items():
                if fnmatch.fnmatch(name.lower(), pattern):
                    return _getaddrinfo("127.0.0.1", int(target), *args, **kwargs)
        return _getaddrinfo(host, port, *args, **kwargs)

    socket.getaddrinfo = _resolve

# Clients that call ``Session.send`` directly (Airbyte's CDK) skip REQUESTS_CA_BUNDLE and verify with
# certifi's bundle: ``BENCH_CA_BUNDLE`` makes that the bench's bundle (the front's and the sandbox's CAs).
_CA_BUNDLE = os.environ.get("BENCH_CA_BUNDLE")

if _CA_BUNDLE:
    try:
        import certifi

        certifi.where = lambda: _CA_BUNDLE
    except ImportError:
        pass
