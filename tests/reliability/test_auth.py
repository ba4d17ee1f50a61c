"""Credentials going bad mid-run: an expired Salesforce token is renewed once and the run ends as
if nothing happened; a revoked Mailchimp key stops the run with a message that says what to do,
before anything of any audience is written to Salesforce.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

import pytest
import structlog.testing

from mcsf.hooks.salesforce import McsfSalesforceHook
from tests.reliability.conftest import diff_states
from tests.reliability.scenario import STATE_OBJECTS

REAUTH_LINE = "Salesforce session expired or invalid; logging in again"
TOKEN_ENDPOINT = "POST /services/oauth2/token"
SF_WRITES = ("PATCH", "POST", "PUT", "DELETE")


@pytest.fixture(scope="module")
def world(make_world):
    return make_world()


def window(twin, name: str) -> tuple[datetime, datetime]:
    step = next(s for s in twin["steps"] if s.name == name)
    return tuple(datetime.fromisoformat(v) for v in step.window)


def sf_writes(counts: dict) -> int:
    """Requests that can change Salesforce data (OAuth token grants aside)."""
    return sum(n for endpoint, n in counts["salesforce"]["by_endpoint"].items()
               if endpoint.startswith(SF_WRITES) and endpoint != TOKEN_ENDPOINT and "/jobs/query" not in endpoint)


def test_token_expiring_mid_load_is_renewed_once(world, twin, monkeypatch, capfd):
    """The token of the hook that writes is expired (server side) just before its first write."""
    expired: list[str] = []
    logins = Counter()
    request, login = McsfSalesforceHook._request, McsfSalesforceHook._client_credentials_login
    alive: list[McsfSalesforceHook] = []  # keeps every hook alive: a freed hook's id() is reused by the next one

    def counting_login(self, *args, **kwargs):
        alive.append(self)
        logins[id(self)] += 1
        return login(self, *args, **kwargs)

    def expiring_request(self, method, url, **kwargs):
        if not expired and method == "PATCH" and "composite/sobjects" in url:
            token = self.conn.session_id
            world.sf_private("POST", "/oauth/ttl", {"seconds": 0, "token": token})
            expired.append(token)
        return request(self, method, url, **kwargs)

    monkeypatch.setattr(McsfSalesforceHook, "_client_credentials_login", counting_login)
    monkeypatch.setattr(McsfSalesforceHook, "_request", expiring_request)
    world.reset_counts()
    # The hooks log through structlog, whose output stream depends on what configured it first;
    # capture_logs sees every event whatever that was.
    with structlog.testing.capture_logs() as events:
        world.run(*window(twin, "first load"))
    counts = world.counts()
    log = capfd.readouterr()
    told = [str(e.get("event")) for e in events]

    assert expired, "no write happened: the test did not expire anything"
    assert sum(n - 1 for n in logins.values()) == 1, f"re-logins per hook: {dict(logins)}"
    assert counts["salesforce"]["by_endpoint"][TOKEN_ENDPOINT] == sum(logins.values())
    assert told.count(REAUTH_LINE) == 1, [t for t in told if "Salesforce" in t]
    assert expired[0] not in log.out + log.err + "\n".join(told)
    diff = diff_states(world.state(), twin["snapshots"]["first load"])
    assert not diff["problems"], "\n".join(diff["problems"])


def test_revoked_mailchimp_key_fails_the_run_before_any_write(world, twin):
    """Revoked after preflight (as by an account owner while the run waits for a worker): extract
    fails for the audience, nothing of any audience reaches Salesforce, the message names the fix."""
    from airflow.sdk.exceptions import AirflowFailException

    from devtools.runner import run_sync
    from mcsf import audience
    from mcsf.hooks.mailchimp import MailchimpApiError

    start, end = window(twin, "hour 1")
    for step in twin["steps"]:  # the changes of hour 1, so the run has something to write
        if step.kind == "members" and step.name.startswith("changes 1"):
            world.mc_private("POST", f"/lists/{step.list_id}/members?skip_merge_validation=true",
                             {"members": step.payload})
    before = world.state(STATE_OBJECTS)  # Salesforce only: the revoked key cannot read Mailchimp
    old_key = world.info["mailchimp_api_key"]
    with world.active():
        ready = audience.preflight(start, end)
        world.reset_counts()
        world.info["mailchimp_api_key"] = world.mc_private("POST", "/api-key/rotate")["api_key"]
        with pytest.raises(MailchimpApiError) as failed:
            for step in (audience.extract, audience.map_, audience.validate, audience.load_people):
                ready = [step(item) for item in ready]
        counts = world.counts()
        message = str(failed.value)
        assert failed.value.status == 401
        assert "API Key Invalid" in message and "'mailchimp_default'" in message and "revoked" in message
        assert old_key not in message and old_key.split("-")[0] not in message
        assert sf_writes(counts) == 0, counts["salesforce"]["by_endpoint"]
        assert world.state(STATE_OBJECTS) == before

        # A run that starts with the revoked key stops in preflight, listing the problem.
        with pytest.raises(AirflowFailException) as refused:
            run_sync(start, end)
    text = str(refused.value)
    assert "nothing was written" in text and "mailchimp_default" in text and old_key not in text
    assert world.state(STATE_OBJECTS) == before
