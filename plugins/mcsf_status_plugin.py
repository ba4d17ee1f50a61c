"""mcsf's sync-status page as an Airflow 3 plugin: a FastAPI app under ``/mcsf`` and a nav entry.

Every Airflow component imports this file, so it imports nothing but ``AirflowPlugin``: the app
(FastAPI, SQLAlchemy, Jinja, :mod:`mcsf.status`) is built the first time the api-server asks for
``fastapi_apps``. Routes only wire: who may see which DAG (Airflow's auth manager), one DB session,
the staging summaries — the numbers and drawing live in :mod:`mcsf.status`.

- ``/mcsf/status``       the page (HTML); the UI shows it in an iframe at ``/plugin/mcsf-status``
- ``/mcsf/status.json``  the same data for scripts (a bearer token from ``POST /auth/token`` works)
- ``/mcsf/icon.svg``     the nav icon (public)
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, ClassVar

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/mcsf"
ICON = """<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" fill="none" stroke="#1f8a70" stroke-width="2"
stroke-linecap="round" stroke-linejoin="round"><path d="M3 12a9 9 0 0 1 15.5-6.2L21 8"/><path d="M21 3v5h-5"/>
<path d="M21 12a9 9 0 0 1-15.5 6.2L3 16"/><path d="M3 21v-5h5"/></svg>"""
NO_ACCESS = """<!doctype html><meta charset="utf-8"><title>mcsf · sync status</title>
<p style="font:15px system-ui,sans-serif;margin:24px">You may not read the runs of the mcsf DAGs.
Ask an Airflow admin for read access to <code>mcsf_audience_sync</code> or
<code>mcsf_campaign_activity_sync</code>.</p>"""
# No scripts on the page, and only Airflow's own origin may frame it.
HEADERS = {"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self'",
           "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}


def readable_dags(user: Any) -> list[str]:
    """The mcsf DAGs whose runs ``user`` may read (viewer and up; FAB: per-DAG ``access_control``)."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
    from airflow.models.dag import DagModel

    from mcsf.status import DAGS

    manager = get_auth_manager()
    return [dag_id for dag_id in DAGS if manager.is_authorized_dag(
        method="GET", access_entity=DagAccessEntity.RUN,
        details=DagDetails(id=dag_id, team_name=DagModel.get_team_name(dag_id)), user=user)]


def collect(user: Any, days: int) -> dict[str, Any]:
    """The status document for what ``user`` may see, over the last ``days``."""
    from datetime import UTC, datetime, timedelta

    from airflow.utils.session import create_session
    from fastapi import HTTPException

    from mcsf import status
    from mcsf.config import collect_mappings

    dag_ids = readable_dags(user)
    if not dag_ids:
        raise HTTPException(403, "You may not read the runs of the mcsf DAGs.")
    now = datetime.now(UTC)
    since = now - timedelta(days=days)
    with create_session(scoped=False) as session:
        runs, dags = status.read_airflow(session, dag_ids, since)
    mappings, problems = collect_mappings()
    return status.build_status(status.read_summaries(dag_ids, since), runs, dags, mappings, dag_ids=dag_ids,
                               now=now, days=days, problems=[str(p) for p in problems])


def build_app() -> Any:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi import Depends, FastAPI, HTTPException, Query, Request
    from fastapi.exception_handlers import http_exception_handler
    from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

    from mcsf import status

    app = FastAPI(title="mcsf sync status", docs_url=None, redoc_url=None, openapi_url=None)
    days_param = Query(7, ge=1, le=90, description="how many days of runs to show")

    @app.exception_handler(HTTPException)
    async def for_people(request: Request, exc: HTTPException) -> Response:
        """On the page, a browser without a session goes to Airflow's login and comes back, and a
        refusal reads as a sentence; ``status.json`` answers 401/403 like the REST API."""
        if request.url.path.endswith("/status"):
            if exc.status_code == 401:
                return RedirectResponse(get_auth_manager().get_url_login(next_url=str(request.url)), status_code=303)
            if exc.status_code == 403:
                return HTMLResponse(NO_ACCESS, status_code=403, headers=HEADERS)
        return await http_exception_handler(request, exc)

    @app.get("/", include_in_schema=False)
    def index() -> RedirectResponse:
        return RedirectResponse(f"{URL_PREFIX}/status")

    @app.get("/status", response_class=HTMLResponse)
    def page(user=Depends(get_user), days: int = days_param) -> HTMLResponse:  # noqa: B008 - FastAPI's idiom
        return HTMLResponse(status.render_html(collect(user, days)), headers=HEADERS)

    @app.get("/status.json")
    def as_json(user=Depends(get_user), days: int = days_param) -> JSONResponse:  # noqa: B008
        return JSONResponse(collect(user, days), headers={"Cache-Control": "no-store"})

    @app.get("/icon.svg", include_in_schema=False)
    def icon() -> Response:
        return Response(ICON, media_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"})

    return app


class McsfStatusPlugin(AirflowPlugin):
    name = "mcsf_status"
    external_views: ClassVar[list[dict[str, Any]]] = [{
        "name": "Sync status",
        "href": f"{URL_PREFIX}/status",
        "url_route": "mcsf-status",
        "destination": "nav",
        "nav_top_level": True,
        "icon": f"{URL_PREFIX}/icon.svg",
    }]

    @cached_property
    def fastapi_apps(self) -> list[dict[str, Any]]:  # type: ignore[override] - built on first use, in the api-server
        return [{"name": "mcsf_status", "app": build_app(), "url_prefix": URL_PREFIX}]
