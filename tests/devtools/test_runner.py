"""``in_fresh_process``: a step in a process of its own, as Airflow runs a task (the bench's RSS per task);
``each``: the audiences' mapped tasks side by side, each in a process of its own."""

from __future__ import annotations

import os
import resource

import pytest

from devtools.runner import each, in_fresh_process, measured_in_fresh_process

MB = 1024 * 1024


def allocate(megabytes: int) -> dict:
    block = bytearray(megabytes * MB)
    block[::4096] = b"x" * len(block[::4096])  # touch every page: resident, not just reserved
    return {"pid": os.getpid(), "bytes": len(block)}


def refuse(text: str) -> None:
    raise ValueError(text)


class Unpicklable(Exception):
    def __reduce__(self):
        raise TypeError("cannot pickle this")


def refuse_oddly() -> None:
    raise Unpicklable("odd")


def test_the_result_comes_back_and_the_memory_stays_with_the_child():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = in_fresh_process(allocate, 200)
    assert result["bytes"] == 200 * MB and result["pid"] != os.getpid()
    assert resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss >= 200 * 1024  # KiB
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100 * 1024


def test_what_the_child_raises_is_raised_here():
    with pytest.raises(ValueError, match="no such audience"):
        in_fresh_process(refuse, "no such audience")
    with pytest.raises(RuntimeError, match="Unpicklable: odd"):
        in_fresh_process(refuse_oddly)


def test_each_child_is_measured_on_its_own():
    big = measured_in_fresh_process(allocate, 300)[1]
    small = measured_in_fresh_process(allocate, 20)[1]
    assert big >= 300 and small < big - 200  # the second is not the largest child so far


def meet(item: int, barrier_file: str, parties: int, patience: float = 20) -> dict:
    """Wait (in a child process) until ``parties`` children have arrived: only calls running at
    the same time get past."""
    import time
    from pathlib import Path

    with open(barrier_file, "a") as fh:
        fh.write(f"{item}\n")
    deadline = time.monotonic() + patience
    while len(Path(barrier_file).read_text().split()) < parties:
        if time.monotonic() > deadline:
            raise TimeoutError(f"call {item} waited alone")
        time.sleep(0.01)
    if item == 1:
        raise ValueError("the second audience fails")
    return {"item": item, "pid": os.getpid()}


def test_side_by_side_calls_run_at_once_in_their_own_processes_and_keep_their_order(tmp_path):
    barrier = str(tmp_path / "arrived")
    results = each(lambda i: in_fresh_process(meet, i, barrier, 3), [0, 2, 3], side_by_side=True)
    assert [r["item"] for r in results] == [0, 2, 3] and len({r["pid"] for r in results}) == 3

    # one at a time, the first call waits alone: the barrier proves the side-by-side run above
    with pytest.raises(TimeoutError, match="waited alone"):
        each(lambda i: in_fresh_process(meet, i, str(tmp_path / "alone"), 2, 1.0), [5, 6], side_by_side=False)


def test_a_failing_call_fails_the_step_after_its_peers_have_ended(tmp_path):
    barrier, ended = str(tmp_path / "arrived"), []

    def task(i: int) -> dict:
        result = in_fresh_process(meet, i, barrier, 3)
        ended.append(i)
        return result

    with pytest.raises(ValueError, match="second audience fails"):
        each(task, [0, 1, 2], side_by_side=True)
    assert sorted(ended) == [0, 2]
