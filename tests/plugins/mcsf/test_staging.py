"""Staging: column reads, the run's shared stage, JSON that is absent or replaced whole."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from mcsf.staging import Stage, Window

START = datetime(2026, 11, 28, 9, tzinfo=UTC)
WINDOW = Window(START, START + timedelta(hours=1))


@pytest.fixture
def stage(tmp_path, monkeypatch) -> Stage:
    monkeypatch.setenv("MCSF_STAGING_URL", f"file://{tmp_path}")
    return Stage.for_run("dag", WINDOW, "aaa")


def test_reads_only_the_columns_asked_for_that_exist(stage):
    stage.write("valid", pd.DataFrame({"key": ["a", "b"], "email": ["x@y.z", None], "big": ["…", "…"]}))
    assert stage.read("valid", ["key", "email", "missing"]).columns.tolist() == ["key", "email"]
    assert stage.read("valid").columns.tolist() == ["key", "email", "big"]
    assert stage.read("never", ["key"]).columns.tolist() == ["key"] and stage.read("never").empty


def test_the_shared_stage_is_not_an_audience(stage):
    stage.write_json("audience", {})
    Stage.for_run("dag", WINDOW, "bbb").write_json("audience", {})
    shared = Stage.shared("dag", WINDOW)
    shared.write_json("lists", {"aaa": {"name": "A"}})
    assert [s.url.rsplit("/", 1)[1] for s in stage.siblings()] == ["bbb"]
    assert shared.read_json("lists") == {"aaa": {"name": "A"}}


def test_json_absent_reads_as_the_default_and_clearing_twice_is_fine(stage):
    assert stage.read_json("lists", None) is None
    with pytest.raises(FileNotFoundError):
        stage.read_json("lists")
    stage.write_json("lists", {"v": 1})
    stage.write_json("lists", {"v": 2})
    assert stage.read_json("lists", None) == {"v": 2}
    assert not [p for p in stage.path.iterdir() if p.name.startswith(".")]  # no temp file left behind
    stage.clear()
    stage.clear()
    assert stage.read_json("lists", None) is None



def test_removers_side_by_side_remove_each_frame_once(stage):
    """load_people of every audience drops the run's shared reads as it starts; Airflow runs them
    side by side, so two may list the same frames and one find a frame the other removed."""
    from concurrent.futures import ThreadPoolExecutor

    frame = pd.DataFrame({"key": ["a"]})
    for round_ in range(5):
        for n in range(40):
            stage.write(f"every_row_{round_}_{n}", frame)
        stage.write("valid", frame)
        with ThreadPoolExecutor(4) as pool:
            counts = list(pool.map(lambda _: stage.remove("every_row_"), range(4)))
        assert sum(counts) == 40 and stage.exists("valid")
        assert not [p for p in stage.path.iterdir() if p.name.startswith("every_row_")]


def test_writers_side_by_side_of_one_json_each_land_whole(stage):
    """Load tasks side by side each leave the run's Bulk speeds in the same shared JSON file."""
    from concurrent.futures import ThreadPoolExecutor

    def write(n: int) -> None:
        for _ in range(20):
            stage.write_json("sf_job_rates", {"ingest": float(n)})
            stage.write("shared", pd.DataFrame({"n": [n]}))

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(write, range(4)))
    assert stage.read_json("sf_job_rates")["ingest"] in {0.0, 1.0, 2.0, 3.0}
    assert stage.read("shared")["n"].iloc[0] in {0, 1, 2, 3}
    assert not [p for p in stage.path.iterdir() if p.name.startswith(".")]
