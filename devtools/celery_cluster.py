"""Airflow 3 with the CeleryExecutor on this machine: the distributed deployment, minus containers.

:func:`start_cluster` creates a fresh PostgreSQL database (``mcsf_ci_<random>``), migrates it,
and starts ``airflow api-server``, ``airflow scheduler``, ``airflow dag-processor`` and N
``airflow celery worker`` processes, each in its own process group with its log in
``<home>/procs/``. The broker is Redis on a dedicated db number, with a queue of the cluster's own
so two clusters sharing a Redis never take each other's tasks. Workers have different Celery
and Airflow hostnames (``worker-1`` ...) and share one staging path, as workers on different
machines would share an object store. :meth:`Cluster.stop` kills the process groups, drops the
database and deletes the queue's keys.

Environment (defaults suit this machine and CI): ``MCSF_CI_POSTGRES`` (a libpq URL of a role that
may create databases), ``MCSF_CI_REDIS`` (``redis://host:port``), ``MCSF_CI_REDIS_DB`` (db number).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from devtools.airflow_env import airflow_env

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

POSTGRES_URL = os.environ.get("MCSF_CI_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("MCSF_CI_REDIS", "redis://127.0.0.1:6379")
REDIS_DB = int(os.environ.get("MCSF_CI_REDIS_DB", "9"))
AIRFLOW = str(Path(sys.executable).with_name("airflow"))


def worker_hostname() -> str:
    """``[core] hostname_callable`` of the cluster: the name a worker records on its task instances.

    Workers on one machine would all report the machine's FQDN; each gets its own name instead.
    """
    return os.environ.get("MCSF_WORKER_HOSTNAME") or socket.getfqdn()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _database_url(name: str, driver: str = "postgresql") -> str:
    parts = urlsplit(POSTGRES_URL)
    return urlunsplit((driver, parts.netloc, f"/{name}", parts.query, ""))


def _admin_sql(statement: str) -> None:
    import psycopg2

    connection = psycopg2.connect(POSTGRES_URL)
    connection.autocommit = True  # CREATE/DROP DATABASE cannot run in a transaction
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement)
    finally:
        connection.close()


def _redis():
    import redis

    return redis.Redis.from_url(f"{REDIS_URL.rstrip('/')}/{REDIS_DB}")


@dataclass
class Cluster:
    """A running cluster; ``api_url`` is the API server's base URL, ``env`` the ``airflow`` CLI's environment."""

    home: Path
    env: dict[str, str] = field(repr=False)  # holds the connections' credentials
    database: str
    queue: str
    api_url: str
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    started_in: float = 0.0  # seconds from nothing to a warm API server
    _token: str | None = field(default=None, repr=False)

    @property
    def logs(self) -> Path:
        return self.home / "procs"

    def start(self, name: str, *args: str, extra_env: dict[str, str] | None = None) -> subprocess.Popen:
        """Start ``airflow ARGS`` as process ``name`` in a new process group, output to ``procs/NAME.log``."""
        self.logs.mkdir(parents=True, exist_ok=True)
        with (self.logs / f"{name}.log").open("ab") as log:
            process = subprocess.Popen([AIRFLOW, *args], env={**self.env, **(extra_env or {})}, cwd=self.home,
                                       stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        self.processes[name] = process
        return process

    def check_alive(self) -> None:
        """Raise, naming the log, when a process of the cluster has exited."""
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}; tail of {self.logs / name}.log:\n"
                                   + self.tail(name))

    def tail(self, name: str, lines: int = 40) -> str:
        path = self.logs / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def wait_for(self, what: str, probe: Callable[[], Any], timeout: float, interval: float = 1.0) -> Any:
        """Poll ``probe`` until it returns something truthy; fail early if a process died."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            with contextlib.suppress(OSError, ValueError):
                if result := probe():
                    return result
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: not within {timeout:.0f} s; logs in {self.logs}")
            time.sleep(interval)

    # -- REST API -------------------------------------------------------------------------------

    def admin_password(self) -> str:
        """The simple auth manager's generated password of ``admin`` (the API server writes it at start)."""
        return json.loads(Path(self.env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]).read_text())["admin"]

    def token(self) -> str:
        """A bearer token from ``POST /auth/token``."""
        import requests

        if self._token is None:
            response = requests.post(f"{self.api_url}/auth/token", timeout=30,
                                     json={"username": "admin", "password": self.admin_password()})
            response.raise_for_status()
            self._token = response.json()["access_token"]
        return self._token

    def api(self, method: str, path: str, *, ok: Iterable[int] = (200, 201), **kwargs: Any) -> Any:
        """Call ``/api/v2{path}``; the JSON body, or ValueError on a status outside ``ok``."""
        import requests

        response = requests.request(method, f"{self.api_url}/api/v2{path}", timeout=60,
                                    headers={"Authorization": f"Bearer {self.token()}"}, **kwargs)
        if response.status_code not in tuple(ok):
            raise ValueError(f"{method} {path}: {response.status_code} {response.text[:500]}")
        return response.json() if response.content else None

    def pages(self, path: str, key: str, **params: Any) -> list[dict[str, Any]]:
        """Every item of a paged collection (``limit``/``offset``)."""
        items: list[dict[str, Any]] = []
        while True:
            page = self.api("GET", path, params={**params, "limit": 100, "offset": len(items)})
            items += page[key]
            if not page[key] or len(items) >= page["total_entries"]:
                return items

    # -- teardown -------------------------------------------------------------------------------

    def stop(self, timeout: float = 30.0) -> None:
        """Stop every process group (TERM, then KILL), drop the database, delete the queue's Redis keys."""
        # The scheduler first, so nothing new is queued while the others shut down together.
        if scheduler := self.processes.pop("scheduler", None):
            _terminate_groups([scheduler], timeout)
        _terminate_groups(list(self.processes.values()), timeout)
        self.processes.clear()
        with contextlib.suppress(Exception):
            _admin_sql(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        with contextlib.suppress(Exception):
            client = _redis()
            keys = list(client.scan_iter(match=f"*{self.queue}*"))
            if keys:
                client.delete(*keys)

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _terminate_groups(processes: list[subprocess.Popen], timeout: float) -> None:
    """SIGTERM each process group, SIGKILL what is left after ``timeout`` seconds.

    The groups are killed in the end either way: a leader that exited may leave children behind
    (task processes, uvicorn workers).
    """
    for process in processes:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(deadline - time.monotonic(), 0.1))
    for process in processes:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def cluster_env(home: Path, info: dict[str, Any], *, database: str, queue: str, api_port: int,
                mappings: Path | None = None, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment shared by every process of the cluster (and the ``airflow`` CLI)."""
    return airflow_env(home, info, mappings=mappings, extra={
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": _database_url(database, "postgresql+psycopg2"),
        "AIRFLOW__CELERY__BROKER_URL": f"{REDIS_URL.rstrip('/')}/{REDIS_DB}",
        "AIRFLOW__CELERY__RESULT_BACKEND": _database_url(database, "db+postgresql"),
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": queue,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "devtools.celery_cluster.worker_hostname",
        # One secret for every process: the scheduler signs task tokens the API server checks.
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "simple_auth_manager_passwords.json"),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        # The DAG files do not change during a test; re-parsing them every 30 s only costs CPU.
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        **(extra or {}),
    })


def start_cluster(home: Path, info: dict[str, Any], *, workers: int = 2, concurrency: int = 2,
                  mappings: Path | None = None, extra: dict[str, str] | None = None,
                  timeout: float = 180.0) -> Cluster:
    """Create the database, migrate it and start the processes; return once the API answers.

    :param info: the sandbox's JSON line (connections point at it)
    :param workers: Celery workers, named ``worker-1`` ... (hostname of their task instances)
    :param extra: further environment for every process (e.g. ``MCSF_STAGING_URL``)
    """
    started = time.monotonic()
    home.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(4)
    database, queue, api_port = f"mcsf_ci_{token}", f"mcsf_ci_{token}", free_port()
    env = cluster_env(home, info, database=database, queue=queue, api_port=api_port, mappings=mappings,
                      extra=extra)
    _admin_sql(f'CREATE DATABASE "{database}"')
    cluster = Cluster(home, env, database, queue, f"http://127.0.0.1:{api_port}")
    try:
        migrate = subprocess.run([AIRFLOW, "db", "migrate"], env=env, cwd=home, capture_output=True, text=True,
                                 check=False, timeout=timeout)
        if migrate.returncode:
            raise RuntimeError(f"airflow db migrate failed:\n{migrate.stdout[-2000:]}{migrate.stderr[-2000:]}")
        # All at once: nothing is queued before a DAG is unpaused, and start-up is most of the wait.
        cluster.start("api-server", "api-server", "--host", "127.0.0.1", "--port", str(api_port), "--workers", "1")
        cluster.start("scheduler", "scheduler")
        cluster.start("dag-processor", "dag-processor")
        for n in range(1, workers + 1):
            name = f"worker-{n}"
            cluster.start(name, "celery", "worker", "--celery-hostname", f"{name}@%h", "--concurrency",
                          str(concurrency), "--queues", queue, "--skip-serve-logs", "--without-gossip",
                          "--without-mingle", extra_env={"MCSF_WORKER_HOSTNAME": name})
        cluster.wait_for("the API server", lambda: _get_ok(f"{cluster.api_url}/api/v2/monitor/health"), timeout)
        # The execution API builds its versioned routes on its first request, blocking the server's
        # event loop for tens of seconds on a busy machine: long enough for the first tasks' calls
        # to time out and fail. Pay that here, before any task runs.
        cluster.wait_for("the execution API", lambda: _get_ok(f"{cluster.api_url}/execution/health", timeout),
                         timeout)
    except BaseException:
        cluster.stop()
        raise
    cluster.started_in = time.monotonic() - started
    return cluster


def _get_ok(url: str, timeout: float = 5.0) -> bool:
    import requests

    try:
        return requests.get(url, timeout=timeout).ok
    except requests.RequestException:
        return False
