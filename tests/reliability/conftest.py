"""Reliability fixtures: sandboxes copied from one seeded template, a fault-free twin, figures.

Every sandbox here starts from the same seeded state dir (seed 11, fixed anchor), so the same
scenario replayed on any of them must end in the same Salesforce state. Replays run in a child
process (``python -m tests.reliability.scenario``) whose output is the run's log, as a task log
would be: the fault tests read the retries from it, the crash tests kill it, the security test
searches it. The template and the fault-free twin are made once per ``pytest`` invocation and
shared by the xdist workers (a file lock guards them).

``MCSF_SOAK=1`` runs the long variants (≥ 20 fault seeds, ≥ 10 crash trials); every run's figures
are appended to ``$MCSF_RELIABILITY_FIGURES`` (JSON lines) when that is set.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.integration.conftest import Env, sf_state
from tests.reliability import scenario

if TYPE_CHECKING:
    from collections.abc import Iterator

REPO = Path(__file__).resolve().parents[2]
SOAK = os.environ.get("MCSF_SOAK", "").lower() in ("1", "true", "yes")
MISSING = ("None", "nan", "")


class World(Env):
    """An :class:`Env` started from a copy of the template, with fault, count and auth helpers."""

    def __init__(self, root: Path, template: Path, *args: str) -> None:
        shutil.copytree(template, root / "sandbox", ignore=shutil.ignore_patterns("*.log", "*.lock"))
        super().__init__(root, "--anchor", scenario.ANCHOR.isoformat(), *scenario.SIZES, *args)
        try:
            (root / "queries").mkdir(exist_ok=True)  # the scenario's own query, not include/queries' ones
            (root / "queries" / "reliability_push.yaml").write_text(scenario.push_query(self.lists[0]))
            self.vars["MCSF_QUERIES_DIR"] = str(root / "queries")
            self.info_file = root / "sandbox-info.json"
            self.info_file.write_text(json.dumps({**self.info, "lists": self.lists}))
        except BaseException:
            self.close()  # nobody else holds this World yet: do not leave its sandbox running
            raise

    # -- Salesforce private endpoints (bearer token) ---------------------------------------------

    def _sf_session(self) -> Any:
        import requests

        session = requests.Session()
        session.trust_env = False
        session.verify = self.info["ca_bundle"]
        return session

    def sf_token(self) -> str:
        response = self._sf_session().post(f"{self.info['salesforce_url']}/services/oauth2/token", timeout=60, data={
            "grant_type": "client_credentials", "client_id": self.info["salesforce_client_id"],
            "client_secret": self.info["salesforce_client_secret"]})
        response.raise_for_status()
        return response.json()["access_token"]

    def sf_private(self, method: str, path: str, body: Any = None) -> Any:
        """A private call with the test's own token, granted once (so it adds no token requests to
        the counts of the runs measured)."""
        if not getattr(self, "_token", None):
            self._token = self.sf_token()
        response = self._sf_session().request(
            method, f"{self.info['salesforce_url']}/_sandbox{path}", json=body, timeout=60,
            headers={"Authorization": f"Bearer {self._token}"})
        response.raise_for_status()
        return response.json()

    # -- faults and counts -----------------------------------------------------------------------

    def set_faults(self, spec: str, seed: int | None = None) -> None:
        """The same fault spec on both emulators (their draws seeded ``seed`` and ``seed + 1``)."""
        self.mc_private("POST", "/controls", {"faults": spec, **({"seed": seed} if seed is not None else {})})
        self.sf_private("POST", "/controls", {"faults": spec, **({"seed": seed + 1} if seed is not None else {})})

    def reset_counts(self) -> None:
        self.mc_private("POST", "/requests/reset")
        self.sf_private("POST", "/requests/reset")

    def counts(self) -> dict[str, dict[str, Any]]:
        """Both emulators' ``/_sandbox/requests``: totals, per endpoint, faults injected."""
        return {"mailchimp": self.mc_private("GET", "/requests"), "salesforce": self.sf_private("GET", "/requests")}

    def state(self, objects: dict[str, tuple[str, list[str]]] | None = None) -> dict[str, list[tuple]]:
        """What mcsf wrote: the Salesforce objects, and (for the full state) the members the push made."""
        with self.active():
            state = sf_state(self.salesforce(), objects or scenario.STATE_OBJECTS)
            if objects is None:
                state["Mailchimp members pushed"] = scenario.pushed_members(self.lists[0])
            return state

    # -- replays in a child process --------------------------------------------------------------

    def replay(self, plan: Path, log: Path, *, start_at: str | None = None, stop_after: str | None = None,
               retries: int = 0, snapshots: bool = False, kill_in: tuple[str, int, float] | None = None,
               timeout: float = 900) -> Replay:
        """Replay ``plan`` (or the steps from ``start_at`` to ``stop_after``) in a child process
        writing its log to ``log``.

        :param kill_in: ``(step, n, seconds)``: SIGKILL the child ``seconds`` after the ``n``-th
            ``SUMMARY validate`` line of ``step`` (0: after the step began), i.e. mid-load for
            ``n`` = the number of audiences
        """
        out = log.with_suffix(".json")
        cmd = [sys.executable, "-m", "tests.reliability.scenario", "--plan", str(plan), "--info",
               str(self.info_file), "--out", str(out), "--retries", str(retries)]
        if start_at:
            cmd += ["--start-at", start_at]
        if stop_after:
            cmd += ["--stop-after", stop_after]
        if snapshots:
            cmd.append("--snapshots")
        env = {**os.environ, **self.vars, "PYTHONPATH": os.pathsep.join([str(REPO / "plugins"), str(REPO)]),
               "PYTHONUNBUFFERED": "1"}
        with log.open("ab") as sink:
            child = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=sink, stderr=subprocess.STDOUT)
            killed_at = None
            if kill_in is not None:
                step, validated, delay = kill_in
                marker = f"STEP {step}\n"
                while child.poll() is None:
                    text = log.read_text(errors="replace")
                    if marker in text and text.split(marker, 1)[1].count("SUMMARY validate ") >= validated:
                        break
                    time.sleep(0.02)
                try:
                    child.wait(timeout=delay)
                except subprocess.TimeoutExpired:
                    child.send_signal(signal.SIGKILL)
                    killed_at = delay
            code = child.wait(timeout=timeout)
        text = log.read_text(errors="replace")
        steps = [line.removeprefix("STEP ") for line in text.splitlines() if line.startswith("STEP ")]
        result = json.loads(out.read_text()) if out.exists() and code == 0 else {}
        return Replay(code, text, steps, killed_at, result)


@dataclass
class Replay:
    returncode: int
    log: str
    steps: list[str]
    killed_at: float | None
    result: dict[str, Any] = field(default_factory=dict)

    def raise_for_status(self) -> None:
        if self.returncode != 0:
            tail = "\n".join(self.log.splitlines()[-40:])
            raise AssertionError(f"the replay exited with {self.returncode}; its log ends:\n{tail}")


def faults_injected(counts: dict[str, dict[str, Any]]) -> Counter[str]:
    total: Counter[str] = Counter()
    for api in counts.values():
        total.update(api.get("faults_injected", {}))
    return total


def as_state(raw: dict[str, list[list[str]]]) -> dict[str, list[tuple]]:
    """A state read back from JSON (lists) as the tuples :func:`sf_state` returns."""
    return {obj: [tuple(row) for row in rows] for obj, rows in raw.items()}


def diff_states(got: dict[str, list[tuple]], want: dict[str, list[tuple]]) -> dict[str, Any]:
    """Rows checked, lost (in want, not in got), duplicated (an external id more often than in
    want), different (rows in got that want lacks), with a few examples per object."""
    out: dict[str, Any] = {"checked": 0, "lost": 0, "duplicated": 0, "different": 0, "problems": []}
    for obj in sorted(set(got) | set(want)):
        g, w = Counter(got.get(obj, [])), Counter(want.get(obj, []))
        out["checked"] += sum(w.values())
        lost, extra = w - g, g - w
        keys_g, keys_w = Counter(r[0] for r in got.get(obj, [])), Counter(r[0] for r in want.get(obj, []))
        out["lost"] += sum(lost.values())
        out["duplicated"] += sum((keys_g - keys_w).values())
        out["different"] += sum(extra.values())
        if lost or extra:
            out["problems"].append(f"{obj}: {sum(lost.values())} rows missing or different, e.g. "
                                   f"{sorted(lost)[:2]}; {sum(extra.values())} unexpected, e.g. {sorted(extra)[:2]}")
    return out


def person_duplicates(state: dict[str, list[tuple]]) -> dict[str, int]:
    """Leads mcsf made for a person Salesforce already had (another Lead or a Contact with the
    email, any case), and subscribers listed twice for one audience and email."""
    contacts = {row[0].strip().lower() for row in state["Contact"]}
    leads_by_email = Counter(row[1].strip().lower() for row in state["Lead"])
    made = [row[1].strip().lower() for row in state["Lead"] if row[0] not in MISSING]
    subscribers = Counter((row[0].split(":")[0], row[1].strip().lower()) for row in state["MC_Subscriber__c"])
    return {"leads": sum(1 for email in made if leads_by_email[email] > 1 or email in contacts),
            "subscribers": sum(n - 1 for n in subscribers.values() if n > 1)}


def record_figures(kind: str, figures: dict[str, Any]) -> None:
    """Append one run's figures to ``$MCSF_RELIABILITY_FIGURES`` (JSON lines) and print them."""
    line = json.dumps({"kind": kind, **figures}, sort_keys=True, default=str)
    print(f"FIGURES {line}")
    target = os.environ.get("MCSF_RELIABILITY_FIGURES")
    if target:
        with open(target, "a") as handle:
            handle.write(line + "\n")


_STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z ")


def load_phase(twin: dict[str, Any], step: str) -> tuple[int, float]:
    """From the twin's log: how many ``SUMMARY validate`` lines ``step`` logs (one per audience) and
    how long the step ran after the last of them (its load and report, in seconds)."""
    segment = Path(twin["log"]).read_text(errors="replace").split(f"STEP {step}\n", 1)[1].split("\nSTEP ", 1)[0]
    lines = segment.splitlines()
    validated = [i for i, line in enumerate(lines) if "SUMMARY validate " in line]
    stamps = [(i, datetime.fromisoformat(m[1])) for i, line in enumerate(lines) if (m := _STAMP.match(line))]
    start = next(t for i, t in stamps if i >= validated[-1])
    return len(validated), (stamps[-1][1] - start).total_seconds()


def trial_rng(name: str, trial: int) -> random.Random:
    """Seeded per trial, so a failing trial can be replayed alone."""
    return random.Random(f"{name}:{trial}")


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def shared_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory every xdist worker of this invocation sees (``$MCSF_RELIABILITY_CACHE`` keeps the
    template and the twin between invocations while working on these tests; never in CI)."""
    if os.environ.get("MCSF_RELIABILITY_CACHE"):
        cache = Path(os.environ["MCSF_RELIABILITY_CACHE"])
        cache.mkdir(parents=True, exist_ok=True)
        return cache
    base = tmp_path_factory.getbasetemp()
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "reliability-shared"
    root.mkdir(exist_ok=True)
    return root


@pytest.fixture(scope="session")
def template(shared_root: Path) -> Path:
    """A seeded state dir (both emulators), copied by every World."""
    root = shared_root / "template"
    with _locked(shared_root / "template.lock"):
        if not (root / "done").exists():
            shutil.rmtree(root, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "sandbox", "seed", "--state-dir", str(root), "--seed",
                            str(scenario.DATA_SEED), "--anchor", scenario.ANCHOR.isoformat(), *scenario.SIZES],
                           cwd=REPO, check=True, capture_output=True, env={**os.environ, "PYTHONPATH": str(REPO)})
            (root / "done").touch()
    return root


@pytest.fixture(scope="session")
def make_world(tmp_path_factory: pytest.TempPathFactory, template: Path) -> Iterator[Any]:
    """``make_world(*serve_args)`` starts a fresh World; all are stopped at the end of the session."""
    worlds: list[World] = []

    def make(*args: str) -> World:
        world = World(tmp_path_factory.mktemp("world"), template, *args)
        worlds.append(world)
        return world

    yield make
    for world in worlds:
        world.close()


@pytest.fixture(scope="session")
def twin(shared_root: Path, template: Path) -> dict[str, Any]:
    """The scenario replayed without faults, once per invocation: the plan file, the state after
    every sync step, the reports, the request counts, the log, and the world's files."""
    root = shared_root / "twin"
    done = root / "twin.json"
    with _locked(shared_root / "twin.lock"):
        if not done.exists():
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir()
            world = World(root, template)
            try:
                plan = root / "plan.json"
                scenario.save(scenario.plan(world), plan)
                world.reset_counts()
                replay = world.replay(plan, root / "replay.log", snapshots=True)
                replay.raise_for_status()
                done.write_text(json.dumps({**replay.result, "counts": world.counts(), "plan": str(plan),
                                            "log": str(root / "replay.log"), "root": str(root),
                                            "vars": world.vars}, default=str))
            finally:
                world.close()
    twin = json.loads(done.read_text())
    twin["snapshots"] = {name: as_state(raw) for name, raw in twin["snapshots"].items()}
    twin["steps"] = scenario.load(Path(twin["plan"]))
    twin["final"] = twin["snapshots"][twin["steps"][-1].name]
    return twin
