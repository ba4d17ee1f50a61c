"""``in_fresh_process``: a step in a process of its own, as Airflow runs a task (the bench's RSS per task)."""

from __future__ import annotations

import os
import resource

import pytest

from devtools.runner import in_fresh_process, measured_in_fresh_process

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
