"""The DAG files' parse-time settings: defaults, accepted spellings, and errors naming the variable."""

from __future__ import annotations

import mcsf_settings
import pytest


@pytest.mark.parametrize(("raw", "expected"), [(None, False), ("", False), ("false", False), ("0", False),
                                               ("true", True), (" True ", True), ("1", True), ("yes", True)])
def test_catchup_reads_true_or_false(monkeypatch, raw, expected):
    if raw is None:
        monkeypatch.delenv("MCSF_CATCHUP", raising=False)
    else:
        monkeypatch.setenv("MCSF_CATCHUP", raw)
    assert mcsf_settings.catchup() is expected


def test_catchup_refuses_anything_else_naming_the_variable(monkeypatch):
    monkeypatch.setenv("MCSF_CATCHUP", "sometimes")
    with pytest.raises(ValueError, match=r"MCSF_CATCHUP='sometimes': set true or false"):
        mcsf_settings.catchup()


@pytest.mark.parametrize(("raw", "expected"), [(None, None), ("", None), ("1", 1), (" 3 ", 3)])
def test_audiences_at_once_defaults_to_all(monkeypatch, raw, expected):
    if raw is None:
        monkeypatch.delenv("MCSF_AUDIENCES_AT_ONCE", raising=False)
    else:
        monkeypatch.setenv("MCSF_AUDIENCES_AT_ONCE", raw)
    assert mcsf_settings.audiences_at_once() == expected


@pytest.mark.parametrize("raw", ["0", "-1", "two", "1.5"])
def test_audiences_at_once_refuses_what_is_not_a_count(monkeypatch, raw):
    monkeypatch.setenv("MCSF_AUDIENCES_AT_ONCE", raw)
    with pytest.raises(ValueError, match=rf"MCSF_AUDIENCES_AT_ONCE='{raw}': set a whole number of at least 1"):
        mcsf_settings.audiences_at_once()
