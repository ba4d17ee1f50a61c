"""Integration fixtures: a sandbox of our own per module, mappings for its audiences, env wiring.

These tests run the real clients over HTTP(S) against the sandbox — nothing of our own HTTP is
mocked — and assert on what landed in the sandbox's Salesforce org.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from devtools.airflow_env import connection_env
from devtools.sandbox_proc import mailchimp_private, start_sandbox

if TYPE_CHECKING:
    from collections.abc import Iterator

OBJECTS = {
    "MC_Subscriber__c": ("MC_Subscriber_Key__c", ["Email__c", "Status__c", "First_Name__c", "Last_Name__c",
                                                  "Member_Rating__c", "Last_Changed__c", "Tags__c", "Interests__c",
                                                  "Lead__c", "Contact__c"]),
    "Lead": ("MC_Email_Key__c", ["Email", "FirstName", "LastName", "Company", "Phone", "LeadSource",
                                 "HasOptedOutOfEmail"]),
    "Contact": ("Email", ["FirstName", "LastName", "Phone", "HasOptedOutOfEmail"]),
    "MC_Audience__c": ("MC_Audience_Id__c", ["Name", "Member_Count__c", "Unsubscribe_Count__c"]),
    "MC_Segment__c": ("MC_Segment_Key__c", ["Name", "Type__c"]),
    "MC_Segment_Member__c": ("MC_Segment_Member_Key__c", []),
    "MC_Interest__c": ("MC_Interest_Key__c", ["Name", "Category__c"]),
}
SMALL = ("--audiences", "2", "--members", "300", "--campaigns", "4", "--activity-events", "1500")


def mapping_yaml(list_id: str, *, mode: str = "activity", extra_fields: str = "", leads: str = "true",
                 retention: int | None = 30) -> str:
    return f"""audience_id: {list_id}
sync_mode: {mode}
leads:
  create: {leads}
  defaults:
    Company: "[not provided]"
{f"activity_retention_days: {retention}" if retention else ""}
max_reject_share: 0.5
fields:
  - merge_tag: FNAME
    lead_field: FirstName
    contact_field: FirstName
  - merge_tag: LNAME
    lead_field: LastName
    contact_field: LastName
  - merge_tag: PHONE
    lead_field: Phone
    contact_field: Phone
{extra_fields}"""


class Env:
    """A running sandbox plus the environment mcsf reads (connections, mappings, staging)."""

    def __init__(self, root: Path, *args: str) -> None:
        self.root = root
        self.proc = start_sandbox(root / "sandbox", "--seed", "11", *args)
        self.info: dict[str, Any] = self.proc.info
        self.mappings = root / "mappings"
        self.mappings.mkdir(parents=True, exist_ok=True)
        self.queries = root / "queries"  # no Query Builder files unless a test writes some
        self.queries.mkdir(parents=True, exist_ok=True)
        self.vars = {**connection_env(self.info), "MCSF_MAPPINGS_DIR": str(self.mappings),
                     "MCSF_QUERIES_DIR": str(self.queries), "MCSF_STAGING_URL": f"file://{root / 'staging'}"}
        self.lists = sorted(lst["id"] for lst in self.mailchimp().lists.get_all_lists(count=100)["lists"])
        for list_id in self.lists:
            self.write_mapping(list_id, mapping_yaml(list_id))

    def write_mapping(self, list_id: str, text: str) -> None:
        (self.mappings / f"a_{list_id}.yaml").write_text(text)

    def mailchimp(self):
        import mailchimp_marketing

        client = mailchimp_marketing.Client()
        client.set_config({"api_key": self.info["mailchimp_api_key"], "server": self.info["mailchimp_api_key"][-3:]})
        client.api_client.host = self.info["mailchimp_url"]
        return client

    def mc_private(self, method: str, path: str, body: Any = None) -> Any:
        return mailchimp_private(self.info, method, path, body)

    def salesforce(self):
        from mcsf.hooks.salesforce import McsfSalesforceHook

        return McsfSalesforceHook()

    @contextlib.contextmanager
    def active(self) -> Iterator[Env]:
        """Point mcsf (connections, mappings, staging) at this sandbox for the block."""
        saved = {k: os.environ.get(k) for k in self.vars}
        os.environ.update(self.vars)
        try:
            yield self
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def run(self, start, end, **params) -> list[dict[str, Any]]:
        from devtools.runner import run_sync

        with self.active():
            return run_sync(start, end, **params)

    def state(self, objects: dict[str, tuple[str, list[str]]] | None = None) -> dict[str, list[tuple]]:
        with self.active():
            return sf_state(self.salesforce(), objects or OBJECTS)

    def close(self) -> None:
        self.proc.stop()


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    environment = Env(tmp_path_factory.mktemp("mcsf"), *SMALL)
    yield environment
    environment.close()


def sf_state(sf, objects: dict[str, tuple[str, list[str]]]) -> dict[str, list[tuple]]:
    """What Salesforce holds, as sorted tuples by external id (Ids replaced by stable keys)."""
    leads = sf.query_frame("SELECT Id, Email FROM Lead")
    contacts = sf.query_frame("SELECT Id, Email FROM Contact")
    person = {**dict(zip(leads["Id"], "L:" + leads["Email"].fillna("").str.lower(), strict=True)),
              **dict(zip(contacts["Id"], "C:" + contacts["Email"].fillna("").str.lower(), strict=True))}
    state = {}
    for obj, (key, fields) in objects.items():
        frame = sf.query_frame(f"SELECT {', '.join([key, *fields])} FROM {obj}")
        for column in ("Lead__c", "Contact__c"):
            if column in frame:
                frame[column] = frame[column].map(lambda v: person.get(v, v))
        state[obj] = sorted(tuple(str(v) for v in row) for row in frame.itertuples(index=False))
    return state
