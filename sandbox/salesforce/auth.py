"""OAuth 2.0 token endpoint (client-credentials and password grants) and bearer-token checks.

Tokens live in the store, so they survive a restart; their lifetime is read at check time, so a
test can shorten it (``POST /_sandbox/oauth/ttl``) to make existing tokens expire.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from sandbox.salesforce import ids
from sandbox.salesforce.errors import ApiError

if TYPE_CHECKING:
    from pathlib import Path

    from sandbox.salesforce.store import Store

DEFAULT_TTL = 7200  # seconds; Salesforce's default session timeout is two hours
CREDENTIALS_FILE = "salesforce-credentials.json"
INVALID_SESSION = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]


def credentials(state_dir: Path) -> dict[str, str]:
    """The connected app and integration user the sandbox accepts; the same for every state dir."""
    path = state_dir / CREDENTIALS_FILE
    if path.exists():
        return json.loads(path.read_text())

    def derive(name: str, n: int) -> str:
        return hashlib.sha256(f"mcsf-sandbox-salesforce:{name}".encode()).hexdigest()[:n]

    creds = {
        "client_id": "3MVG9mcsfSandbox." + derive("client_id", 40),
        "client_secret": derive("client_secret", 64).upper(),
        "username": "integration@mcsf.sandbox",
        "password": "Sandbox-" + derive("password", 16),
    }
    state_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(creds, indent=2))
    return creds


class Tokens:
    def __init__(self, store: Store, state_dir: Path, base_url: str) -> None:
        self.store = store
        self.creds = credentials(state_dir)
        self.base_url = base_url.rstrip("/")
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, float | None]] = {}  # token -> (issued, own ttl)
        self.ttl = float(store.kv_get("token_ttl") or DEFAULT_TTL)

    def set_ttl(self, seconds: float, token: str | None = None) -> bool:
        """Lifetime of every token (default), or of one token when ``token`` is given."""
        if token is None:
            self.ttl = seconds
            self.store.kv_set("token_ttl", str(seconds))
            return True
        with self.store.transaction() as c:
            changed = c.execute("UPDATE _sf_tokens SET ttl = ? WHERE token = ?", (seconds, token)).rowcount
        with self._lock:
            self._cache.pop(token, None)
        return bool(changed)

    def issue(self, form: dict[str, str], basic: tuple[str, str] | None) -> dict[str, Any]:
        """Grant a token or raise ApiError(400) with an OAuth error body."""
        grant = form.get("grant_type", "")
        client_id, secret = basic or (form.get("client_id", ""), form.get("client_secret", ""))
        if grant not in ("client_credentials", "password"):
            raise ApiError(400, {"error": "unsupported_grant_type", "error_description": "grant type not supported"})
        good_client = hmac.compare_digest(client_id, self.creds["client_id"])
        if not good_client or not hmac.compare_digest(secret, self.creds["client_secret"]):
            raise ApiError(400, {"error": "invalid_client", "error_description": "invalid client credentials"})
        if grant == "password" and not (
            form.get("username") == self.creds["username"]
            and hmac.compare_digest(form.get("password", ""), self.creds["password"])
        ):
            raise ApiError(400, {"error": "invalid_grant", "error_description": "authentication failure"})
        token = f"{ids.org_id()[:15]}!{secrets.token_urlsafe(72)}"
        issued = time.time()
        with self.store.transaction() as c:
            c.execute("INSERT INTO _sf_tokens VALUES (?, ?, 0, NULL)", (token, issued))
        with self._lock:
            self._cache[token] = (issued, None)
        issued_at = str(int(issued * 1000))
        identity = f"{self.base_url}/id/{ids.org_id()}/{self.store.user_id}"
        signature = hmac.new(self.creds["client_secret"].encode(), (identity + issued_at).encode(), "sha256")
        return {
            "access_token": token, "instance_url": self.base_url, "id": identity, "token_type": "Bearer",
            "issued_at": issued_at, "signature": base64.b64encode(signature.digest()).decode(), "scope": "api",
        }

    def revoke(self, token: str) -> bool:
        with self.store.transaction() as c:
            changed = c.execute("UPDATE _sf_tokens SET revoked = 1 WHERE token = ?", (token,)).rowcount
        with self._lock:
            self._cache.pop(token, None)
        return bool(changed)

    def valid(self, token: str) -> bool:
        with self._lock:
            entry = self._cache.get(token)
        if entry is None:
            row = self.store.conn().execute(
                "SELECT issued, ttl FROM _sf_tokens WHERE token = ? AND revoked = 0", (token,)).fetchone()
            if row is None:
                return False
            entry = (row[0], row[1])
            with self._lock:
                self._cache[token] = entry
        issued, own_ttl = entry
        return time.time() - issued < (self.ttl if own_ttl is None else own_ttl)

    def check(self, authorization: str | None) -> str:
        """The bearer token of a request, or ApiError(401) in Salesforce's list form."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() not in ("bearer", "oauth") or not self.valid(token.strip()):
            raise ApiError(401, INVALID_SESSION)
        return token.strip()


def install(app: Any) -> None:
    """``POST /services/oauth2/token`` and ``/revoke`` (form-encoded, as Salesforce)."""
    async def form_of(request: Request) -> dict[str, str]:
        return dict(parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True))

    def basic_of(request: Request) -> tuple[str, str] | None:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, _, secret = base64.b64decode(value).decode().partition(":")
        except ValueError:
            return None
        return user, secret

    @app.post("/services/oauth2/token", include_in_schema=False)
    async def token(request: Request) -> Response:
        tokens: Tokens = request.app.state.org.tokens
        try:
            return JSONResponse(tokens.issue(await form_of(request), basic_of(request)))
        except ApiError as e:
            return JSONResponse(e.body, e.status)

    @app.post("/services/oauth2/revoke", include_in_schema=False)
    async def revoke(request: Request) -> Response:
        form = await form_of(request)
        request.app.state.org.tokens.revoke(form.get("token", ""))
        return Response(status_code=200)
