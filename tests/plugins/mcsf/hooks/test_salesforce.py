"""McsfSalesforceHook against the Salesforce sandbox over HTTPS, through simple-salesforce."""

from __future__ import annotations

import io
import json
import uuid
from typing import TYPE_CHECKING, Any

import pandas as pd
import pytest
import requests

from mcsf.hooks.salesforce import CLEAR, McsfSalesforceHook

if TYPE_CHECKING:
    from collections.abc import Iterator

SUBSCRIBER, KEY = "MC_Subscriber__c", "MC_Subscriber_Key__c"
AUDIENCE_REF = "Audience__r.MC_Audience_Id__c"
BULK_KEYS = {"POST /jobs/ingest", "PUT /jobs/ingest/{id}/batches", "PATCH /jobs/ingest/{id}"}
COMPOSITE_UPSERT = "PATCH /composite/sobjects/{obj}/{field}"


def _connection(sandbox: dict[str, Any], **extra: Any) -> str:
    extras = {
        "instance_url": sandbox["salesforce_url"],
        "consumer_key": sandbox["salesforce_client_id"],
        "consumer_secret": sandbox["salesforce_client_secret"],
        "ca_bundle": sandbox["ca_bundle"],
    }
    return json.dumps({"conn_type": "salesforce", "extra": {**extras, **extra}})


@pytest.fixture
def hook(sandbox: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[McsfSalesforceHook]:
    monkeypatch.setenv("AIRFLOW_CONN_SALESFORCE_DEFAULT", _connection(sandbox))
    hook = McsfSalesforceHook()
    yield hook
    # An idle keep-alive TLS connection holds up the sandbox's graceful stop by ~30 s.
    hook.session.close()


class Controls:
    """The sandbox's private knobs, with a token of their own (tests revoke the hook's)."""

    def __init__(self, sandbox: dict[str, Any]) -> None:
        self.base, self.verify = sandbox["salesforce_url"], sandbox["ca_bundle"]
        form = {
            "grant_type": "client_credentials",
            "client_id": sandbox["salesforce_client_id"],
            "client_secret": sandbox["salesforce_client_secret"],
        }
        token = requests.post(f"{self.base}/services/oauth2/token", data=form, verify=self.verify, timeout=10)
        self.headers = {"Authorization": f"Bearer {token.json()['access_token']}"}

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.base}/_sandbox/{path}"
        response = requests.post(url, json=body, headers=self.headers, verify=self.verify, timeout=10)
        response.raise_for_status()
        return response.json()


@pytest.fixture
def controls(sandbox: dict[str, Any]) -> Iterator[Controls]:
    knobs = Controls(sandbox)
    yield knobs
    knobs.post("controls", {"faults": "", "latency_ms": 0})


def _subscribers(audience: str, prefix: str, n: int) -> pd.DataFrame:
    """n subscriber rows; every 40th has a bad status and every 50th a bad email (Salesforce refuses both)."""
    return pd.DataFrame(
        {
            KEY: [f"{audience}:{prefix}:{i}" for i in range(n)],
            "Name": [f"person{i}@example.com" for i in range(n)],
            "Email__c": [f"person{i}@example.com" if i % 50 else "not-an-email" for i in range(n)],
            "Status__c": ["subscribed" if i % 40 else "no-such-status" for i in range(n)],
            "Member_Rating__c": [i % 5 for i in range(n)],
            "First_Name__c": [f"First{i}" if i % 3 else None for i in range(n)],
            "VIP__c": [i % 7 == 0 for i in range(n)],
            AUDIENCE_REF: [audience] * n,
        }
    )


@pytest.fixture(scope="module")
def loaded(sandbox: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """An audience of our own with 3000 subscribers written through the automatic (Bulk 2.0) path."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_CONN_SALESFORCE_DEFAULT", _connection(sandbox))
        hook = McsfSalesforceHook()
        audience = f"hk{uuid.uuid4().hex[:8]}"
        parent = hook.upsert(
            "MC_Audience__c",
            "MC_Audience_Id__c",
            pd.DataFrame({"MC_Audience_Id__c": [audience], "Name": ["hook tests"]}),
        )
        frame = _subscribers(audience, "b", 3000)
        result = hook.upsert(SUBSCRIBER, KEY, frame)
        yield {
            "audience": audience,
            "audience_sf_id": parent.successes["sf__Id"].iloc[0],
            "frame": frame,
            "result": result,
            "requests": dict(hook.requests_used),
        }
        # Leave the org as seeded for other tests: drop what this module wrote.
        mine = hook.bulk_query_frame(f"SELECT Id FROM {SUBSCRIBER} WHERE {AUDIENCE_REF} = '{audience}'")
        hook.delete(SUBSCRIBER, list(mine["Id"]))
        hook.delete("MC_Audience__c", [parent.successes["sf__Id"].iloc[0]])
        hook.session.close()


def test_client_credentials_login_describe_and_field_map(
    hook: McsfSalesforceHook, sandbox: dict[str, Any]
) -> None:
    described = hook.describe(SUBSCRIBER)
    assert described["name"] == SUBSCRIBER
    fields = hook.field_map(SUBSCRIBER)
    assert fields[KEY]["externalId"] is True
    assert fields["Audience__c"]["referenceTo"] == ["MC_Audience__c"]
    assert hook.requests_used["POST /services/oauth2/token"] == 1
    assert hook.requests_used["GET /sobjects/{obj}/describe"] == 1  # cached per hook
    assert hook.session.verify == sandbox["ca_bundle"]
    assert hook.conn.base_url.startswith(f"{sandbox['salesforce_url']}/services/data/v")


def test_test_connection_and_bad_secret(
    hook: McsfSalesforceHook, sandbox: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    ok, message = hook.test_connection()
    assert ok, message
    assert "Account" in message

    secret = "WRONG" + sandbox["salesforce_client_secret"][5:]
    monkeypatch.setenv("AIRFLOW_CONN_SF_WRONG", _connection(sandbox, consumer_secret=secret))
    wrong = McsfSalesforceHook("sf_wrong")
    ok, message = wrong.test_connection()
    wrong.session.close()
    assert not ok
    assert "invalid_client" in message and secret not in message


def test_tls_is_verified_against_the_configured_bundle(
    sandbox: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import certifi

    # The environment trusts the sandbox, the connection's bundle does not: the bundle must win.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", sandbox["ca_bundle"])
    monkeypatch.setenv("AIRFLOW_CONN_SF_OTHERCA", _connection(sandbox, ca_bundle=certifi.where()))
    hook = McsfSalesforceHook("sf_otherca")
    ok, message = hook.test_connection()
    hook.session.close()
    assert not ok and "SSL" in message
    assert not hook.retries  # a certificate problem is not retried


def test_bulk_upsert_splits_successes_and_failures(loaded: dict[str, Any]) -> None:
    result, frame = loaded["result"], loaded["frame"]
    assert set(loaded["requests"]) >= BULK_KEYS
    assert loaded["requests"][COMPOSITE_UPSERT] == 1  # the parent audience; 3000 rows went through Bulk 2.0
    bad = {i for i in range(3000) if i % 40 == 0 or i % 50 == 0}
    assert set(result.failures.index) == bad
    assert set(result.successes.index) == set(range(3000)) - bad
    assert result.successes["sf__Created"].all()
    assert result.successes["sf__Id"].str.len().eq(18).all()
    assert list(result.successes.columns[:2]) == ["sf__Id", "sf__Created"]
    assert (result.successes[KEY] == frame.loc[result.successes.index, KEY]).all()
    errors = result.failures["sf__Error"]
    assert (
        errors[frame.loc[errors.index, "Status__c"] == "no-such-status"]
        .str.contains("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST")
        .all()
    )
    assert errors.loc[50].startswith("INVALID_EMAIL_ADDRESS:")
    assert result.requests <= 8


def test_query_iter_streams_every_page(hook: McsfSalesforceHook, loaded: dict[str, Any]) -> None:
    mine = f"{AUDIENCE_REF} = '{loaded['audience']}'"
    soql = f"SELECT Id, {KEY}, Audience__r.MC_Audience_Id__c FROM {SUBSCRIBER} WHERE {mine}"
    records = list(hook.query_iter(soql))
    assert len(records) == len(loaded["result"].successes) > 2000
    assert len({r["Id"] for r in records}) == len(records)
    assert "attributes" not in records[0] and "attributes" not in records[0]["Audience__r"]
    assert records[0]["Audience__r"]["MC_Audience_Id__c"] == loaded["audience"]
    assert hook.requests_used["GET /query/{locator}"] >= 1

    frame = hook.query_frame(soql)
    assert list(frame.columns) == ["Id", KEY, AUDIENCE_REF]
    assert len(frame) == len(records)
    empty = hook.query_frame(f"SELECT Id, Name FROM {SUBSCRIBER} WHERE {KEY} = 'no such key'")
    assert empty.empty and list(empty.columns) == ["Id", "Name"]


def test_bulk_query_frame_matches_rest(hook: McsfSalesforceHook, loaded: dict[str, Any]) -> None:
    mine = f"{AUDIENCE_REF} = '{loaded['audience']}'"
    soql = f"SELECT Id, {KEY}, Member_Rating__c, VIP__c FROM {SUBSCRIBER} WHERE {mine}"
    bulk = hook.bulk_query_frame(soql)
    rest = hook.query_frame(soql)
    assert all(str(t) == "string" for t in bulk.dtypes)
    assert len(bulk) == len(rest) == len(loaded["result"].successes)
    assert set(bulk["Id"]) == set(rest["Id"])
    assert {"POST /jobs/query", "GET /jobs/query/{id}/results"} <= set(hook.requests_used)


def test_composite_and_bulk_reach_the_same_end_state(
    hook: McsfSalesforceHook, loaded: dict[str, Any]
) -> None:
    audience = loaded["audience"]
    small = _subscribers(audience, "c", 300)
    result = hook.upsert(SUBSCRIBER, KEY, small)
    assert hook.requests_used[COMPOSITE_UPSERT] == 2 and not BULK_KEYS & set(hook.requests_used)
    assert result.requests == 3  # the login, then two collections (200 + 100 rows)

    bulk_failures = loaded["result"].failures
    assert set(result.failures.index) == {i for i in bulk_failures.index if i < 300}
    codes = result.failures["sf__Error"].str.split(":").str[0]
    assert (codes == bulk_failures.loc[result.failures.index, "sf__Error"].str.split(":").str[0]).all()

    fields = "Email__c, Status__c, Member_Rating__c, First_Name__c, VIP__c, Audience__c"
    stored = hook.query_frame(
        f"SELECT {KEY}, {fields} FROM {SUBSCRIBER} WHERE {AUDIENCE_REF} = '{audience}'"
    ).set_index(KEY)
    via_composite = stored[stored.index.str.contains(":c:")].rename(lambda k: int(k.rsplit(":", 1)[1]))
    via_bulk = stored[stored.index.str.contains(":b:")].rename(lambda k: int(k.rsplit(":", 1)[1]))
    assert len(via_composite) == 300 - len(result.failures)
    pd.testing.assert_frame_equal(via_composite.sort_index(), via_bulk.loc[via_composite.index].sort_index())
    assert (via_composite["Audience__c"] == loaded["audience_sf_id"]).all()

    again = hook.upsert(SUBSCRIBER, KEY, small)  # idempotent: the same records, now updated
    assert not again.successes["sf__Created"].any()
    assert (again.successes["sf__Id"] == result.successes["sf__Id"]).all()


@pytest.mark.parametrize("via", ["composite", "bulk"])
def test_relationship_columns_none_and_clear(
    hook: McsfSalesforceHook, loaded: dict[str, Any], via: str
) -> None:
    key = f"{loaded['audience']}:clear-{via}"
    first = pd.DataFrame(
        {
            KEY: [key],
            "First_Name__c": ["Ada"],
            "Last_Name__c": ["Lovelace"],
            "Language__c": ["en"],
            AUDIENCE_REF: [loaded["audience"]],
        }
    )
    created = hook.upsert(SUBSCRIBER, KEY, first, via=via)  # type: ignore[arg-type]
    assert len(created.successes) == 1, created.failures
    second = pd.DataFrame(
        {KEY: [key], "First_Name__c": [CLEAR], "Last_Name__c": [None], "Language__c": [float("nan")]}
    )
    updated = hook.upsert(SUBSCRIBER, KEY, second, via=via)  # type: ignore[arg-type]
    assert len(updated.successes) == 1 and not updated.successes["sf__Created"].iloc[0]

    fields = "First_Name__c, Last_Name__c, Language__c, Audience__c"
    row = hook.query_frame(f"SELECT {fields} FROM {SUBSCRIBER} WHERE {KEY} = '{key}'").iloc[0]
    assert pd.isna(row["First_Name__c"])  # CLEAR set it to null
    assert row["Last_Name__c"] == "Lovelace" and row["Language__c"] == "en"  # None/NaN left it alone
    assert row["Audience__c"] == loaded["audience_sf_id"]


def test_transient_row_errors_are_resubmitted(
    hook: McsfSalesforceHook, loaded: dict[str, Any], controls: Controls
) -> None:
    frame = _subscribers(loaded["audience"], "lock", 100).assign(
        Status__c="subscribed", Email__c="a@example.com"
    )
    controls.post("controls", {"faults": "lock:0.2"})
    hook.row_retry_backoff_seconds = 0.05  # keep the test fast; the rounds are what is tested

    without = hook.upsert(SUBSCRIBER, KEY, frame, via="bulk", row_retries=0)
    assert len(without.failures) > 0  # so the retry below has something to do
    assert without.failures["sf__Error"].str.startswith("UNABLE_TO_LOCK_ROW:").all()

    jobs_before = hook.requests_used["POST /jobs/ingest"]
    retried = hook.upsert(SUBSCRIBER, KEY, frame, via="bulk", row_retries=6)
    assert retried.failures.empty
    assert sorted(retried.successes.index) == list(range(100))
    assert hook.requests_used["POST /jobs/ingest"] - jobs_before > 1


def test_reauthenticates_once_when_the_token_expires(hook: McsfSalesforceHook, controls: Controls) -> None:
    hook.describe("Lead")
    first_token = hook.conn.session_id
    controls.post("oauth/revoke", {"token": first_token})

    frame = hook.query_frame("SELECT Id FROM Lead LIMIT 5")
    assert len(frame) == 5
    assert hook.conn.session_id != first_token
    assert hook.requests_used["POST /services/oauth2/token"] == 2


def test_transient_http_failures_are_retried(
    hook: McsfSalesforceHook, loaded: dict[str, Any], controls: Controls
) -> None:
    hook.describe("Lead")  # log in before the faults start
    controls.post("controls", {"faults": "503:0.15,drop:0.1"})
    soql = f"SELECT Id FROM MC_Audience__c WHERE MC_Audience_Id__c = '{loaded['audience']}'"
    queries = 0
    while not hook.retries and queries < 20:
        assert list(hook.query_frame(soql)["Id"]) == [loaded["audience_sf_id"]]
        queries += 1
    assert hook.retries
    assert all(reason == "503" or reason.startswith("connection: ") for reason in hook.retries)
    assert hook.requests_used["GET /query"] == queries + sum(hook.retries.values())


def test_insert_update_and_delete(hook: McsfSalesforceHook, loaded: dict[str, Any]) -> None:
    frame = pd.DataFrame({"LastName": [f"Hook{i}" for i in range(5)], "Company": ["mcsf"] * 4 + [None]})
    inserted = hook.insert("Lead", frame)
    assert len(inserted.successes) == 4 and inserted.successes["sf__Created"].all()
    assert inserted.failures["sf__Error"].iloc[0].startswith("REQUIRED_FIELD_MISSING:")
    ids = list(inserted.successes["sf__Id"])

    updated = hook.update("Lead", pd.DataFrame({"Id": ids, "Title": ["Tester"] * 4}))
    assert len(updated.successes) == 4 and not updated.successes["sf__Created"].any()

    missing = ids[0][:3] + "0" * 12
    deleted = hook.delete("Lead", [*ids, missing])
    assert list(deleted.successes["sf__Id"]) == ids
    assert len(deleted.failures) == 1
    id_list = ", ".join(f"'{i}'" for i in ids)
    assert hook.query_frame(f"SELECT Id FROM Lead WHERE Id IN ({id_list})").empty
    assert hook.requests_used["DELETE /composite/sobjects"] == 1


def test_bulk_results_find_their_rows_by_key_or_whole_line(hook: McsfSalesforceHook, loaded: dict[str, Any]) -> None:
    """Results come back by the job's unique key (upsert's external id, update's and delete's Id),
    or by the whole line when there is none (insert) or it repeats: every row sent gets its own
    outcome either way."""
    frame = pd.DataFrame({"LastName": [f"Bulk{i}" for i in range(6)], "Company": ["mcsf"] * 5 + [None]})
    inserted = hook.insert("Lead", frame, via="bulk")  # no key: whole lines
    assert sorted(inserted.successes.index) == [0, 1, 2, 3, 4] and inserted.successes["sf__Created"].all()
    assert inserted.failures.index.tolist() == [5]
    assert inserted.failures["sf__Error"].iloc[0].startswith("REQUIRED_FIELD_MISSING:")
    ids = inserted.successes["sf__Id"].sort_index().tolist()
    found = hook.query_frame("SELECT Id, LastName FROM Lead WHERE LastName LIKE 'Bulk%'")
    assert dict(zip(found["Id"], found["LastName"], strict=True)) == {i: f"Bulk{n}" for n, i in enumerate(ids)}

    titles = pd.DataFrame({"Id": [ids[0], ids[1], ids[0]], "Title": ["First", "Second", "First"]})  # a repeated Id
    updated = hook.update("Lead", titles, via="bulk")
    outcomes = pd.concat([updated.successes["sf__Id"], updated.failures["sf__Id"]]).sort_index()
    assert outcomes.index.tolist() == [0, 1, 2] and outcomes.tolist() == titles["Id"].tolist()
    assert not updated.failures["sf__Error"].str.startswith("UNPROCESSED").any()
    deleted = hook.delete("Lead", ids, via="bulk")
    assert deleted.successes["sf__Id"].tolist() == ids and deleted.failures.empty


def test_lookup_of_thousands_of_values_reads_only_the_matching_rows(
    hook: McsfSalesforceHook, loaded: dict[str, Any]
) -> None:
    """mcsf.lookup past the REST limit: Bulk 2.0 query jobs of IN lists as long as SOQL allows, not a
    read of the whole object; quotes in values are escaped."""
    from mcsf import lookup

    written = loaded["result"].successes[KEY].tolist()
    wanted = [*written[:2400], "no'such:key", "also\\absent"]
    found = lookup.fetch_by_values(hook, SUBSCRIBER, ["Email__c"], KEY, wanted)
    assert sorted(found[KEY]) == sorted(written[:2400])
    jobs = hook.requests_used.get("POST /jobs/query", 0)
    assert 1 <= jobs <= 2, dict(hook.requests_used)
    listed = hook._request("GET", "jobs/query").json()["records"]
    latest = [hook._request("GET", f"jobs/query/{j['id']}").json() for j in listed[-jobs:]]
    assert sum(int(j["numberRecordsProcessed"]) for j in latest) == 2400  # the matches, not the whole object
    assert not [k for k in hook.requests_used if k.startswith("GET /query")], dict(hook.requests_used)


def test_a_whole_object_read_is_shared_by_the_audiences_of_a_run(
    hook: McsfSalesforceHook, loaded: dict[str, Any], tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past SELECTIVE_LIMIT values every row is read by one Bulk job; with the run's shared stage, the
    next audience asking the same gets it from there (no request) and keeps only its own values."""
    from mcsf import lookup
    from mcsf.staging import Stage

    monkeypatch.setattr(lookup, "SELECTIVE_LIMIT", 100)
    shared = Stage(f"file://{tmp_path}/run/_run")
    written = loaded["result"].successes[KEY].tolist()
    first = lookup.fetch_by_values(hook, SUBSCRIBER, ["Email__c"], KEY, written[:500], shared=shared)
    before = sum(hook.requests_used.values())
    second = lookup.fetch_by_values(hook, SUBSCRIBER, ["Email__c"], KEY, [*written[400:900], "no'such"], shared=shared)
    assert sum(hook.requests_used.values()) == before
    assert sorted(first[KEY]) == sorted(written[:500]) and sorted(second[KEY]) == sorted(written[400:900])
    assert second.dtypes.eq("string").all()  # as a Bulk read gives them
    shared.write_json("sf_describes", {})
    lookup.forget_shared_reads(shared)  # the run's loads begin: what they write must be seen
    assert shared.read_json("sf_describes", None) == {}  # only the reads go
    lookup.fetch_by_values(hook, SUBSCRIBER, ["Email__c"], KEY, written[:200], shared=shared)
    after_loads = sum(hook.requests_used.values())
    assert after_loads > before
    shared.clear()
    lookup.fetch_by_values(hook, SUBSCRIBER, ["Email__c"], KEY, written[:200], shared=shared)
    assert sum(hook.requests_used.values()) > after_loads  # a new run reads Salesforce again


def test_bulk_result_files_are_read_as_text_cells() -> None:
    """Quotes, commas, newlines and empty cells come back as sent (rows are matched by their CSV line)."""
    from mcsf.hooks.salesforce import _csv_lines, _result_table

    got = _result_table(b'"sf__Id","sf__Created","A","B"\n"001","true","x, ""q""","one\ntwo"\n"002","false","",""\n')
    assert got.column_names == ["sf__Id", "sf__Created", "A", "B"]
    assert got.to_pylist()[1] == {"sf__Id": "002", "sf__Created": "false", "A": "", "B": ""}
    assert _csv_lines([got.column("A"), got.column("B")]).to_pylist() == ['"x, ""q""","one\ntwo"\n', ',\n']
    assert _result_table(b"").num_rows == 0 and _result_table(b'"sf__Id","sf__Error","A"\n').num_rows == 0


def test_bulk_csv_quotes_only_the_cells_that_need_it() -> None:
    """Commas, quotes and line breaks (CR too) are quoted; spaces, ``=``, backslashes and ``#N/A`` go
    as they are (Salesforce trims nothing). Python's csv reader, as the sandbox parses uploads,
    gets every cell back."""
    import csv

    import pyarrow as pa

    from mcsf.hooks.salesforce import _csv_lines

    cells = ["plain", "a,b", 'say "hi"', "one\ntwo", "cr\rhere", " spaced ", "=1+1", "back\\slash", "#N/A", "",
             "Zoë 日本"]
    lines = _csv_lines([pa.array(cells, type=pa.string()), pa.array(["x"] * len(cells), type=pa.string())]).to_pylist()

    assert lines[:5] == ["plain,x\n", '"a,b",x\n', '"say ""hi""",x\n', '"one\ntwo",x\n', '"cr\rhere",x\n']
    assert lines[5:] == [" spaced ,x\n", "=1+1,x\n", "back\\slash,x\n", "#N/A,x\n", ",x\n", "Zoë 日本,x\n"]
    assert [row[0] for row in csv.reader(io.StringIO("".join(lines), newline=""))] == cells


def test_result_lines_find_their_rows_once_each_and_in_order() -> None:
    """Identical rows sent twice take two results in order; a third copy in the results, or a line
    never sent, matches nothing (-1); a row missing from the results is left unmatched."""
    import pyarrow as pa

    from mcsf.hooks.salesforce import _data, _match_lines

    sent = pa.array(["a\n", "b\n", "a\n", "c\n", "d\n"]).slice(0, 4)  # d is beyond the slice
    ok, failed = _match_lines(sent, [pa.array(["c\n", "a\n", "z\n"]), pa.array(["a\n", "a\n", "d\n"])])

    assert ok.tolist() == [3, 0, -1] and failed.tolist() == [2, -1, -1]  # b (1) came back in neither
    assert bytes(_data(sent.slice(1, 2))) == b"b\na\n" and bytes(_data(sent.slice(0, 0))) == b""
    assert _match_lines(sent, []) == []


def test_in_lists_respect_both_limits() -> None:
    from mcsf.lookup import in_lists

    values = [f"v{i:04d}'x" for i in range(1000)]
    by_count = list(in_lists(values, max_items=250, max_chars=10**6))
    by_size = list(in_lists(values, max_items=10**6, max_chars=2000))
    assert len(by_count) == 4 and all(c.count(", ") == 249 for c in by_count)
    assert all(len(c) <= 2000 for c in by_size)
    for chunks in (by_count, by_size):
        assert ", ".join(chunks).split(", ") == [f"'v{i:04d}\\'x'" for i in range(1000)]


def test_the_first_status_poll_follows_the_speed_the_org_showed() -> None:
    from mcsf.hooks.salesforce import next_job_rate

    # done at the first poll: it may have waited for the poll, so poll a little earlier next time
    assert next_job_rate(20_000, 15_000, True) == pytest.approx(22_000)
    assert next_job_rate(20_000, 30_000, True) == pytest.approx(33_000)
    # needed more polls: the org is as slow as it showed
    assert next_job_rate(20_000, 6_000, False) == 6_000
    # a slow org settles at one or two polls a job instead of polling every 5 s
    rate, true_speed = 20_000.0, 5_000.0
    for _ in range(20):
        first_poll_at = 250_000 / rate
        done_first = first_poll_at >= 250_000 / true_speed
        rate = next_job_rate(rate, true_speed if not done_first else 250_000 / first_poll_at, done_first)
    assert 0.8 * true_speed <= rate <= 1.25 * true_speed


class _VirtualTime:
    """A clock for threads: it jumps to the next wake-up once every live thread sleeps."""

    def __init__(self) -> None:
        import threading

        self.now, self.live = 0.0, 0
        self._cv = threading.Condition()
        self._wakes: dict[int, float] = {}

    def monotonic(self) -> float:
        return self.now

    def _advance(self) -> None:
        if self._wakes and len(self._wakes) == self.live:
            self.now = max(self.now, min(self._wakes.values()))
            self._cv.notify_all()

    def sleep(self, seconds: float) -> None:
        import threading

        me = threading.get_ident()
        with self._cv:
            self._wakes[me] = self.now + seconds
            self._advance()
            while self.now < self._wakes[me]:
                self._cv.wait()
            del self._wakes[me]

    def run(self, *workers: Any) -> None:
        import threading

        def run_one(work: Any) -> None:
            try:
                work()
            finally:
                with self._cv:
                    self.live -= 1
                    self._advance()

        self.live = len(workers)
        threads = [threading.Thread(target=run_one, args=(w,)) for w in workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


class _Org:
    """An org that runs up to ``slots`` ingest jobs at once, sharing ``speed`` rows/s between them
    (the others wait in UploadComplete), and reports ``numberRecordsProcessed`` in steps of 10,000
    rows as Salesforce does; and a hook polling it on a virtual clock."""

    def __init__(self, speed: float, slots: int, monkeypatch: pytest.MonkeyPatch) -> None:
        import mcsf.hooks.salesforce as module

        self.clock = _VirtualTime()
        monkeypatch.setattr(module, "time", self.clock)
        self.speed, self.slots, self.polls, self.busy = speed, slots, 0, 0.0
        self.at = 0.0  # how far the org's work has been played
        self.jobs: dict[str, dict[str, Any]] = {}  # in the order closed
        self.hook = McsfSalesforceHook.__new__(McsfSalesforceHook)  # no connection: only the polls
        self.hook._job_rates = {"ingest": float(module.BULK_ROWS_PER_SECOND), "query": 1.0}
        self.hook.job_timeout_seconds = 10**9
        monkeypatch.setattr(self.hook, "_request", self.request, raising=False)

    def _running(self) -> list[dict[str, Any]]:
        waiting = [j for j in self.jobs.values() if j["state"] != "done"]
        for job in waiting[: self.slots]:
            job["state"] = "running"
        return waiting[: self.slots]

    def _play(self) -> None:
        while self.at < self.clock.now and (running := self._running()):
            share = self.speed / len(running)
            step = min(self.clock.now - self.at, *((j["rows"] - j["done"]) / share for j in running))
            for job in running:
                job["done"] += step * share
                if job["done"] >= job["rows"] - 1e-6:
                    job["state"], job["ended"] = "done", self.at + step
            self.at += step
            self.busy += step
        self.at = self.clock.now

    def submit(self, job_id: str, rows: int) -> None:
        self._play()
        self.jobs[job_id] = {"rows": rows, "done": 0.0, "state": "queued"}

    def request(self, method: str, url: str, **_: Any) -> Any:
        self.polls += 1
        self._play()
        job = self.jobs[url.rsplit("/", 1)[1]]
        state = {"queued": "UploadComplete", "running": "InProgress", "done": "JobComplete"}[job["state"]]
        info = {"state": state, "numberRecordsProcessed": int(job["done"]) // 10_000 * 10_000}
        return type("Response", (), {"json": lambda _self: info})()


@pytest.mark.parametrize(("speed", "slots"), [(2_000.0, 1), (7_500.0, 1), (15_000.0, 1), (7_500.0, 4), (15_000.0, 4)])
def test_a_stream_of_big_jobs_costs_about_two_polls_each_and_keeps_the_org_busy(speed, slots, monkeypatch) -> None:
    """The nightly's load: 21 jobs of 250,000 rows, two in flight (each prepared in 4 s while the
    org runs the other), on an org that runs jobs one at a time or several at once. Polls go by the
    jobs' progress, not by the time since upload, which includes a wait behind the other job."""
    org, todo = _Org(speed, slots, monkeypatch), list(range(21))

    def write_jobs() -> None:
        while todo:
            n = todo.pop(0)
            org.clock.sleep(4.0)  # the CSV is made and uploaded
            org.submit(f"750{n}", 250_000)
            org.hook._wait_for_job("ingest", f"750{n}", rows=250_000)

    org.clock.run(write_jobs, write_jobs)
    work = 21 * 250_000 / speed
    assert org.polls <= 2.7 * 21, org.polls
    if slots == 1:  # one job at a time: the org waits only for the first upload and the last poll
        assert org.clock.now - work <= 4.0 + 0.15 * 250_000 / speed, f"the org waited {org.clock.now - work:.1f} s"
        assert 0.85 * speed <= org.hook._job_rates["ingest"] <= 1.2 * speed
    else:  # jobs side by side end close together, then both wait for their next upload
        assert org.clock.now <= 1.25 * work, f"{org.clock.now:.0f} s for {work:.0f} s of work"


@pytest.mark.parametrize("speed", [2_000.0, 7_500.0, 60_000.0])
def test_big_jobs_behind_other_clients_work_are_polled_by_their_progress(speed, monkeypatch) -> None:
    """Each 250,000-row job waits behind 0 to 250,000 rows of other clients' jobs (other tasks of
    the run): its wait neither costs a poll every few seconds nor makes the org look slow."""
    org, duration, late = _Org(speed, 1, monkeypatch), 250_000 / speed, []

    def write_jobs() -> None:
        for n in range(21):
            org.submit(f"other{n}", (n * 97_001) % 250_000 or 1)
            org.submit(f"750{n}", 250_000)
            org.hook._wait_for_job("ingest", f"750{n}", rows=250_000)
            late.append(org.clock.now - org.jobs[f"750{n}"]["ended"])

    org.clock.run(write_jobs)
    assert org.polls <= 3 * 21, org.polls
    assert 0.85 * speed <= org.hook._job_rates["ingest"] <= 1.3 * speed
    if duration > 30:  # found complete soon after it was, once the org's speed is known
        assert max(late[3:]) <= 0.25 * duration + 0.5, late


@pytest.mark.parametrize(("speed", "rows"), [(2_500.0, 80_000), (5_000.0, 80_000), (2_500.0, 135_000)])
def test_a_first_job_on_an_org_slower_than_guessed_costs_a_few_polls(speed, rows, monkeypatch) -> None:
    """The hook's first job (speed guessed at 20,000 rows/s) on an org giving it a few thousand: two
    polls 10,000 rows apart cannot measure the speed, but they cap it, so the next poll waits for
    the rows left at that cap instead of coming back every few seconds (10 polls before)."""
    org = _Org(speed, 1, monkeypatch)

    def write_job() -> None:
        org.submit("7501", rows)
        org.hook._wait_for_job("ingest", "7501", rows=rows)

    org.clock.run(write_job)
    assert org.polls <= 4, org.polls
    assert org.clock.now - org.jobs["7501"]["ended"] <= 0.2 * rows / speed


def test_a_hook_starts_from_the_speeds_an_earlier_hook_learnt() -> None:
    hook = McsfSalesforceHook.__new__(McsfSalesforceHook)  # no connection needed
    hook._job_rates = {"ingest": 20_000.0, "query": 50_000.0}
    hook.remember_job_rates({"ingest": 7_312.5, "query": "fast", "bulk1": 9.0, "other": -1})
    assert hook.job_rates == {"ingest": 7_312.5, "query": 50_000.0}
    hook.remember_job_rates({"query": 0})
    assert hook.job_rates["query"] == 50_000.0
