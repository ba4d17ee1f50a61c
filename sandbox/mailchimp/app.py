"""Assemble the Mailchimp emulator: routes, error handling, gateway, controls."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request

from sandbox.controls import ControlsMiddleware, add_control_routes
from sandbox.mailchimp import (
    account,
    batches,
    campaigns,
    errors,
    interests,
    lists,
    member_routes,
    mergefields,
    private,
    reports,
    segments,
)
from sandbox.mailchimp.gateway import DATACENTER, GatewayMiddleware, check_key
from sandbox.mailchimp.routing import AppState
from sandbox.mailchimp.store import Store

if TYPE_CHECKING:
    from pathlib import Path

    from sandbox.controls import Controls

PUBLIC = (account.api, lists.api, member_routes.api, mergefields.api, interests.api, segments.api, campaigns.api,
          reports.api, batches.api)


def create_app(state_dir: Path, controls: Controls, base_url: str) -> Any:
    """The emulator as an ASGI app, wrapped in auth and the shared ControlsMiddleware.

    :param state_dir: where ``mailchimp.sqlite3`` lives (seeded or not)
    :param base_url: the public ``.../3.0`` URL, used in ``_links``
    """
    store = Store(state_dir)
    if store.meta("api_key") is None:
        raise RuntimeError(f"{state_dir} holds no Mailchimp account; seed it first (python -m sandbox seed)")
    app = FastAPI(title="Mailchimp Marketing API 3.0 (mcsf sandbox)", docs_url=None, redoc_url=None,
                  openapi_url=None)
    errors.install(app)
    state = AppState(store, base_url.rstrip("/"), controls)
    for router in (*PUBLIC, private.api):
        router.install(app, state)
    batches.install(app, state, list(PUBLIC))

    def auth(request: Request) -> None:
        check_key(store.meta("api_key"), request.headers.get("authorization"))

    add_control_routes(app, controls, auth)
    gateway = GatewayMiddleware(app, store)

    @app.post("/_sandbox/api-key/rotate", include_in_schema=False)
    def rotate_api_key(request: Request) -> dict[str, str]:
        """Revoke the API key (as an account owner does in Mailchimp) and issue a new one; from now
        on the old key gets 401 "API Key Invalid" everywhere, this endpoint included."""
        auth(request)
        new_key = secrets.token_hex(16) + "-" + DATACENTER
        store.set_meta("api_key", new_key)
        gateway.api_key = new_key
        return {"api_key": new_key}

    return ControlsMiddleware(gateway, controls, errors.error_body)
