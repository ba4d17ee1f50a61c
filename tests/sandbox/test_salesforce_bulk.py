"""Bulk API 2.0 through simple-salesforce and raw HTTP: ingest results, CSV dialect, faults, query paging."""

from __future__ import annotations

import csv
import io
import time
from typing import TYPE_CHECKING, Any

import requests
from simple_salesforce import Salesforce

from sandbox.salesforce.testing import Running

if TYPE_CHECKING:
    pass

V = "/services/data/v59.0"


def rows_of(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def run_job(http: requests.Session, sb: Running, body: dict[str, Any], data: bytes) -> dict[str, Any]:
    base = f"{sb.base_url}{V}/jobs/ingest"
    job = http.post(base, json={"contentType": "CSV", **body}).json()
    assert job["state"] == "Open", job
    put = http.put(f"{base}/{job['id']}/batches", data=data, headers={"Content-Type": "text/csv"})
    assert put.status_code == 201
    http.patch(f"{base}/{job['id']}", json={"state": "UploadComplete"}).raise_for_status()
    for _ in range(500):
        info = http.get(f"{base}/{job['id']}").json()
        if info["state"] in ("JobComplete", "Failed", "Aborted"):
            return info
        time.sleep(0.02)
    raise AssertionError("job did not finish")


def results(http: requests.Session, sb: Running, job_id: str, which: str) -> list[dict[str, str]]:
    return rows_of(http.get(f"{sb.base_url}{V}/jobs/ingest/{job_id}/{which}").text)


def test_upsert_with_result_files(sf: Salesforce) -> None:
    records = [{"MC_Email_Key__c": f"bulk{i}@x.io", "LastName": f"L{i}", "Company": "C", "Email": f"bulk{i}@x.io"}
               for i in range(50)]
    records.append({"MC_Email_Key__c": "bad@x.io", "LastName": "NoCompany", "Company": "", "Email": "bad@x.io"})
    first = sf.bulk2.Lead.upsert(records=records, external_id_field="MC_Email_Key__c", wait=0.05)
    assert (first[0]["numberRecordsProcessed"], first[0]["numberRecordsFailed"]) == (51, 1)
    ok = rows_of(sf.bulk2.Lead.get_successful_records(first[0]["job_id"]))
    assert len(ok) == 50 and {r["sf__Created"] for r in ok} == {"true"} and ok[0]["sf__Id"].startswith("00Q")
    bad = rows_of(sf.bulk2.Lead.get_failed_records(first[0]["job_id"]))
    assert bad[0]["sf__Error"] == "REQUIRED_FIELD_MISSING:Required fields are missing: [Company]:Company --"
    assert bad[0]["MC_Email_Key__c"] == "bad@x.io"
    again = sf.bulk2.Lead.upsert(records=records[:50], external_id_field="MC_Email_Key__c", wait=0.05)
    ok2 = rows_of(sf.bulk2.Lead.get_successful_records(again[0]["job_id"]))
    assert {r["sf__Created"] for r in ok2} == {"false"} and {r["sf__Id"] for r in ok2} == {r["sf__Id"] for r in ok}
    assert sf.query("SELECT COUNT() FROM Lead WHERE MC_Email_Key__c LIKE 'bulk%'")["totalSize"] == 50


HOSTILE = [
    'He said "hi"', "a,b,c", "line1\nline2", "crlf\r\nline", "ünïcødé ßø", "emoji 😀🎉", "=SUM(A1:A2)",
    "+cmd|' /C calc'!A0", "  padded  ", "'quoted'", "back\\slash", "tab\there", "semi;colon", '"', ",", "",
    "#N/A",
]


def test_hostile_csv_round_trip_is_byte_exact(sf: Salesforce, sb: Running, http: requests.Session) -> None:
    buf = io.StringIO(newline="")
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["MC_Activity_Key__c", "Full_URL__c", "Action__c"])
    for i, value in enumerate(HOSTILE):
        w.writerow([f"hostile:{i}", value, "open"])
    info = run_job(http, sb, {"object": "MC_Activity__c", "operation": "insert"}, buf.getvalue().encode())
    assert (info["state"], info["numberRecordsFailed"]) == ("JobComplete", 0), info
    q = "SELECT MC_Activity_Key__c, Full_URL__c FROM MC_Activity__c WHERE MC_Activity_Key__c LIKE 'hostile:%'"
    text = "".join(sf.bulk2.MC_Activity__c.query(q, wait=0.05))
    expected = ['"MC_Activity_Key__c","Full_URL__c"\n']
    for i, value in enumerate(HOSTILE):
        stored = "" if value == "#N/A" else value  # #N/A means null; empty means null on insert
        expected.append(f'"hostile:{i}","{stored.replace(chr(34), chr(34) * 2)}"\n')
    assert text == "".join(expected)
    parsed = {r["MC_Activity_Key__c"]: r["Full_URL__c"] for r in rows_of(text)}
    assert parsed["hostile:2"] == "line1\nline2" and parsed["hostile:3"] == "crlf\r\nline"
    rest = sf.query(f"{q} ORDER BY MC_Activity_Key__c")["records"]
    assert {r["MC_Activity_Key__c"]: r["Full_URL__c"] for r in rest}["hostile:5"] == "emoji 😀🎉"


def test_update_empty_keeps_and_na_clears(sb: Running, http: requests.Session, sf: Salesforce) -> None:
    made = sf.Lead.create({"LastName": "Keep", "Company": "C", "Title": "Boss", "Phone": "123"})
    data = f"Id,Title,Phone\n{made['id']},,#N/A\n".encode()
    info = run_job(http, sb, {"object": "Lead", "operation": "update"}, data)
    assert info["numberRecordsProcessed"] == 1 and info["numberRecordsFailed"] == 0
    rec = sf.Lead.get(made["id"])
    assert (rec["Title"], rec["Phone"]) == ("Boss", None)


def test_relationship_header_and_missing_parent(sb: Running, http: requests.Session, sf: Salesforce) -> None:
    sf.MC_Audience__c.upsert("MC_Audience_Id__c/bulkaud", {"Name": "Bulk Audience"})
    data = (b"MC_Subscriber_Key__c,Audience__r.MC_Audience_Id__c,Email__c,VIP__c,Member_Rating__c,Last_Changed__c\n"
            b"bulkaud:1,bulkaud,a@x.io,true,3,2026-11-20T10:00:00.000+0100\n"
            b"bulkaud:2,missing,b@x.io,false,2,2026-11-20T10:00:00Z\n"
            b"bulkaud:3,bulkaud,c@x.io,notabool,1,\n")
    info = run_job(http, sb, {"object": "MC_Subscriber__c", "operation": "upsert",
                              "externalIdFieldName": "MC_Subscriber_Key__c"}, data)
    assert (info["numberRecordsProcessed"], info["numberRecordsFailed"]) == (3, 2)
    errors = {r["MC_Subscriber_Key__c"]: r["sf__Error"] for r in results(http, sb, info["id"], "failedResults")}
    assert errors["bulkaud:2"] == ("INVALID_FIELD:Foreign key external ID: missing not found for field "
                                   "MC_Audience_Id__c in entity MC_Audience__c:Audience__c --")
    assert errors["bulkaud:3"].startswith("INVALID_FIELD:Failed to deserialize field at col 4. Due to, 'notabool'")
    rec = sf.MC_Subscriber__c.get_by_custom_id("MC_Subscriber_Key__c", "bulkaud:1")
    assert rec["VIP__c"] is True and rec["Member_Rating__c"] == 3.0
    assert rec["Last_Changed__c"] == "2026-11-20T09:00:00.000+0000"


def test_lock_faults_fail_rows_without_applying_them(sb: Running, http: requests.Session, sf: Salesforce) -> None:
    data = "MC_Segment_Key__c,Name\n" + "".join(f"lock:{i},n{i}\n" for i in range(400))
    try:
        http.post(f"{sb.base_url}/_sandbox/controls", json={"faults": "lock:0.25"}).raise_for_status()
        info = run_job(http, sb, {"object": "MC_Segment__c", "operation": "upsert",
                                  "externalIdFieldName": "MC_Segment_Key__c"}, data.encode())
    finally:
        http.post(f"{sb.base_url}/_sandbox/controls", json={"faults": ""})
    failed = results(http, sb, info["id"], "failedResults")
    assert 50 < info["numberRecordsFailed"] == len(failed) < 150
    assert {r["sf__Error"] for r in failed} == {
        "UNABLE_TO_LOCK_ROW:unable to obtain exclusive access to this record or 1 records:--"}
    stored = sf.query("SELECT COUNT() FROM MC_Segment__c WHERE MC_Segment_Key__c LIKE 'lock:%'")["totalSize"]
    assert stored == 400 - len(failed)


def test_job_errors_and_lifecycle(sb: Running, http: requests.Session) -> None:
    base = f"{sb.base_url}{V}/jobs/ingest"
    no_ext = http.post(base, json={"object": "Lead", "operation": "upsert"})
    assert no_ext.status_code == 400 and "External ID was blank" in no_ext.json()[0]["message"]
    not_ext = http.post(base, json={"object": "Lead", "operation": "upsert", "externalIdFieldName": "Email"})
    assert not_ext.status_code == 400
    bad_col = run_job(http, sb, {"object": "Lead", "operation": "insert"}, b"LastName,Nope__c\nx,y\n")
    assert bad_col["state"] == "Failed" and bad_col["errorMessage"] == "InvalidBatch : Field name not found : Nope__c"
    latin1 = run_job(http, sb, {"object": "Lead", "operation": "insert"}, b"LastName,Company\nM\xfcller,Acme\n")
    assert latin1["state"] == "Failed" and latin1["errorMessage"] == (
        "InvalidBatch : Failed to parse CSV: not UTF-8 (a byte 0xfc)")
    job = http.post(base, json={"object": "Lead", "operation": "insert"}).json()
    assert http.patch(f"{base}/{job['id']}", json={"state": "Aborted"}).json()["state"] == "Aborted"
    assert http.put(f"{base}/{job['id']}/batches", data=b"LastName\nx\n").status_code == 409
    assert job["id"] in {j["id"] for j in http.get(base).json()["records"]}
    assert http.delete(f"{base}/{job['id']}").status_code == 204
    assert http.get(f"{base}/{job['id']}").status_code == 404


def test_delete_and_hard_delete(sb: Running, http: requests.Session, sf: Salesforce) -> None:
    ids = [sf.Account.create({"Name": f"del{i}"})["id"] for i in range(4)]
    soft = run_job(http, sb, {"object": "Account", "operation": "delete"}, ("Id\n" + "\n".join(ids[:2])).encode())
    hard = run_job(http, sb, {"object": "Account", "operation": "hardDelete"},
                   ("Id\n" + "\n".join(ids[2:]) + "\n001000000000000AAA\n").encode())
    assert soft["numberRecordsFailed"] == 0 and hard["numberRecordsFailed"] == 1
    q = "SELECT Id, IsDeleted FROM Account WHERE Name LIKE 'del%'"
    assert sf.query(q)["totalSize"] == 0
    assert {r["Id"] for r in sf.query_all(q, include_deleted=True)["records"]} == set(ids[:2])


def test_query_job_pages_with_locators(sb: Running, http: requests.Session, sf: Salesforce) -> None:
    data = "MC_Campaign_Id__c,Name,Emails_Sent__c\n" + "".join(f"c{i},Campaign {i},{i}\n" for i in range(2500))
    assert run_job(http, sb, {"object": "MC_Campaign__c", "operation": "insert"}, data.encode())["state"] == \
        "JobComplete"
    base = f"{sb.base_url}{V}/jobs/query"
    job = http.post(base, json={"operation": "query", "query": "SELECT MC_Campaign_Id__c, Emails_Sent__c FROM "
                                "MC_Campaign__c ORDER BY Emails_Sent__c"}).json()
    for _ in range(500):
        if http.get(f"{base}/{job['id']}").json()["state"] == "JobComplete":
            break
        time.sleep(0.02)
    seen, locator = [], ""
    while locator != "null":
        r = http.get(f"{base}/{job['id']}/results", params={"maxRecords": 1000, **({"locator": locator} if locator
                                                                                    else {})})
        page = rows_of(r.text)
        assert int(r.headers["Sforce-NumberOfRecords"]) == len(page)
        seen += page
        locator = r.headers["Sforce-Locator"]
    assert len(seen) == 2500 and seen[0] == {"MC_Campaign_Id__c": "c0", "Emails_Sent__c": "0"}
    assert seen[-1]["Emails_Sent__c"] == "2499"
    via_client = list(sf.bulk2.MC_Campaign__c.query("SELECT Id FROM MC_Campaign__c", max_records=1000, wait=0.05))
    assert len(via_client) == 3
    bad = http.post(base, json={"operation": "query", "query": "SELECT Nope FROM MC_Campaign__c"})
    assert bad.status_code == 400 and bad.json()[0]["errorCode"] == "INVALID_FIELD"


def test_pipe_delimiter_crlf_and_bom(sb: Running, http: requests.Session) -> None:
    data = "\ufeffMC_Interest_Key__c|Name|Category__c\r\np:1|Pipe One|a,b\r\np:2|\"Pipe|Two\"|\r\n".encode()
    info = run_job(http, sb, {"object": "MC_Interest__c", "operation": "upsert", "externalIdFieldName":
                              "MC_Interest_Key__c", "columnDelimiter": "PIPE", "lineEnding": "CRLF"}, data)
    assert (info["state"], info["numberRecordsFailed"], info["columnDelimiter"]) == ("JobComplete", 0, "PIPE")
    text = http.get(f"{sb.base_url}{V}/jobs/ingest/{info['id']}/successfulResults").text
    lines = text.split("\r\n")
    assert lines[0] == '"sf__Id"|"sf__Created"|MC_Interest_Key__c|Name|Category__c'
    assert lines[2].endswith('|"true"|"p:2"|"Pipe|Two"|""') and lines[-1] == ""


def test_ragged_rows_blank_lines_and_stray_quotes(sb: Running, http: requests.Session) -> None:
    data = b'MC_Segment_Key__c,Name\nrag:1,a,extra\nrag:2\n\nrag:3,ab"c\n'
    info = run_job(http, sb, {"object": "MC_Segment__c", "operation": "upsert",
                              "externalIdFieldName": "MC_Segment_Key__c"}, data)
    assert (info["state"], info["numberRecordsProcessed"], info["numberRecordsFailed"]) == ("JobComplete", 4, 2)
    failed = http.get(f"{sb.base_url}{V}/jobs/ingest/{info['id']}/failedResults").text.splitlines()
    assert failed[1:] == ['"","INVALID_FIELD:The row has more fields than the header row:--","rag:1","a","extra"',
                          '"","MISSING_ARGUMENT:MC_Segment_Key__c not specified:MC_Segment_Key__c --"']
    ok = rows_of(http.get(f"{sb.base_url}{V}/jobs/ingest/{info['id']}/successfulResults").text)
    assert [(r["MC_Segment_Key__c"], r["Name"]) for r in ok] == [("rag:2", None), ("rag:3", 'ab"c')]  # own cells


def test_concurrent_ingest_jobs_progress_side_by_side(sb: Running, http: requests.Session) -> None:
    """Salesforce processes the batches of concurrent jobs in parallel: three jobs closed together
    are all InProgress, with rows processed, before any of them completes."""
    base = f"{sb.base_url}{V}/jobs/ingest"
    ids = []
    for n in range(3):
        lines = "".join(f"side{n}-{i}@x.io,L{i},C\n" for i in range(40_000))
        job = http.post(base, json={"contentType": "CSV", "object": "Lead", "operation": "upsert",
                                    "externalIdFieldName": "MC_Email_Key__c"}).json()
        http.put(f"{base}/{job['id']}/batches", data=("MC_Email_Key__c,LastName,Company\n" + lines).encode(),
                 headers={"Content-Type": "text/csv"}).raise_for_status()
        ids.append(job["id"])
    for job_id in ids:
        http.patch(f"{base}/{job_id}", json={"state": "UploadComplete"}).raise_for_status()
    most_running = 0
    for _ in range(3000):
        infos = [http.get(f"{base}/{job_id}").json() for job_id in ids]
        if any(i["state"] == "JobComplete" for i in infos):
            break
        most_running = max(most_running, sum(i["state"] == "InProgress" and i["numberRecordsProcessed"] > 0
                                             for i in infos))
        time.sleep(0.01)
    assert most_running == 3
