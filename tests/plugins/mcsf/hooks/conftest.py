# TEMPORARY (development only; removed before hand-over)
import json, os
import pytest

if os.environ.get("MCSF_HOOKS_DEV_SANDBOX"):
    @pytest.fixture(scope="session")
    def sandbox():
        info = json.load(open(os.environ["MCSF_HOOKS_DEV_SANDBOX"]))
        info["anchor"] = "2026-11-27T19:00:00+00:00"
        return info
