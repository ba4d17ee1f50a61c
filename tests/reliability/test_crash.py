"""A sync process SIGKILLed at a random moment, then run again, ends in the fault-free state.

Each trial replays the scenario in a child process on a fresh sandbox and kills it (SIGKILL: no
cleanup, no ``finally``) at a random moment of one sync step: either anywhere in the step, or
while it loads (after the last audience was validated: Leads, Contacts, subscribers or activity
being written). Then, as Airflow would, the interrupted interval runs again from its start, in a
new process. The state after it must equal the twin's state after that step: no Lead, subscriber
or activity lost or duplicated.

Quick variant: 3 trials (the first, largest load: once mid-load, once anywhere; the nightly
activity run mid-load). ``MCSF_SOAK=1``: 12 trials, every sync step, both kinds of moment.
"""

from __future__ import annotations

import pytest

from tests.reliability.conftest import (
    SOAK,
    diff_states,
    load_phase,
    person_duplicates,
    record_figures,
    trial_rng,
)

TRIALS = range(12) if SOAK else range(3)


def landed(log: str, step: str) -> str:
    """Where in ``step`` the kill landed: after which task summary (no emails in these)."""
    tail = log.split(f"STEP {step}\n", 1)[-1]
    lines = [line.split("SUMMARY ", 1)[1] for line in tail.splitlines() if "SUMMARY " in line]
    if not lines:
        return "in preflight"
    words = lines[-1].split(" ")
    done = " ".join(words[:3] if words[0] == "load" else words[:2] if words[0] in ("extract", "map", "validate")
                    else words[:1])
    return f"after {done}"


def choose(twin: dict, trial: int) -> tuple[str, str]:
    """(step, "load" or "anywhere") of a trial."""
    syncs = [s.name for s in twin["steps"] if s.kind in ("hourly", "nightly")]
    if not SOAK:
        return [(syncs[0], "load"), (syncs[0], "anywhere"), (syncs[-1], "load")][trial]
    return syncs[trial % len(syncs)], "load" if trial % 2 == 0 else "anywhere"


@pytest.mark.parametrize("trial", TRIALS)
def test_sigkill_mid_run_then_rerun_ends_in_the_same_state(make_world, twin, trial, tmp_path):
    rng = trial_rng("crash", trial)
    step, moment = choose(twin, trial)
    if moment == "load":
        validated, load_seconds = load_phase(twin, step)
        kill = (step, validated, rng.uniform(0.0, 0.9 * load_seconds))
    else:
        kill = (step, 0, rng.uniform(0.2, 0.95 * twin["seconds"][step]))
    world = make_world()
    killed = world.replay(twin["plan"], tmp_path / "killed.log", stop_after=step, kill_in=kill)
    assert killed.killed_at is not None or killed.returncode == 0, killed.log[-3000:]
    after_kill = diff_states(world.state(), twin["snapshots"][step])

    # What Airflow does next: the killed task's interval runs again (a new process, no memory).
    resumed = world.replay(twin["plan"], tmp_path / "resumed.log", start_at=step, stop_after=step)
    resumed.raise_for_status()
    state = world.state()
    diff = diff_states(state, twin["snapshots"][step])
    duplicates = person_duplicates(state)
    record_figures("crash", {
        "trial": trial, "step": step, "moment": moment, "kill_after_s": round(kill[2], 2),
        "killed": killed.killed_at is not None,
        "landed": landed(killed.log, step) if killed.killed_at else "run ended first",
        "rows_missing_right_after_kill": after_kill["lost"],
        "records_checked": diff["checked"], "lost": diff["lost"], "duplicated": diff["duplicated"],
        "different": diff["different"], "duplicate_leads": duplicates["leads"],
        "duplicate_subscribers": duplicates["subscribers"]})

    assert not diff["problems"], "\n".join(diff["problems"])
    assert duplicates == {"leads": 0, "subscribers": 0}
