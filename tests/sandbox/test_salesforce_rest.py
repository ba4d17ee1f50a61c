"""The Salesforce sandbox through real clients over TLS: OAuth, limits, describe, CRUD, upsert, SOQL paging."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceExpiredSession, SalesforceMalformedRequest

from sandbox.salesforce.testing import Running, serve

if TYPE_CHECKING:
    pass

V = "/services/data/v59.0"


def test_oauth_client_credentials_in_form_and_basic(sb: Running) -> None:
    s = sb.session()
    body = s.post(f"{sb.base_url}/services/oauth2/token", data={
        "grant_type": "client_credentials", "client_id": sb.creds["client_id"],
        "client_secret": sb.creds["client_secret"]}).json()
    assert body["instance_url"] == sb.base_url and body["token_type"] == "Bearer"
    assert re.fullmatch(rf"{re.escape(sb.base_url)}/id/00D\w{{15}}/005\w{{15}}", body["id"])
    assert body["issued_at"].isdigit() and len(body["issued_at"]) == 13 and body["signature"]
    basic = s.post(f"{sb.base_url}/services/oauth2/token", data={"grant_type": "client_credentials"},
                   auth=(sb.creds["client_id"], sb.creds["client_secret"]))
    assert basic.status_code == 200 and basic.json()["access_token"] != body["access_token"]


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"grant_type": "client_credentials", "client_id": "nope", "client_secret": "x"}, "invalid_client"),
        ({"grant_type": "password", "username": "integration@mcsf.sandbox", "password": "wrong"}, "invalid_grant"),
        ({"grant_type": "authorization_code"}, "unsupported_grant_type"),
    ],
)
def test_oauth_errors(sb: Running, form: dict[str, str], error: str) -> None:
    if form["grant_type"] == "password":
        form = {**form, "client_id": sb.creds["client_id"], "client_secret": sb.creds["client_secret"]}
    r = sb.session().post(f"{sb.base_url}/services/oauth2/token", data=form)
    assert r.status_code == 400
    assert r.json()["error"] == error and r.json()["error_description"]


def test_password_grant(sb: Running) -> None:
    r = sb.session().post(f"{sb.base_url}/services/oauth2/token", data={
        "grant_type": "password", "client_id": sb.creds["client_id"], "client_secret": sb.creds["client_secret"],
        "username": sb.creds["username"], "password": sb.creds["password"]})
    assert r.status_code == 200 and r.json()["access_token"].startswith("00D")


def test_bad_token_is_401_in_list_form(sb: Running) -> None:
    r = sb.session().get(f"{sb.base_url}{V}/sobjects", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401
    assert r.json() == [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
    with pytest.raises(SalesforceExpiredSession):
        Salesforce(instance_url=sb.base_url, session_id="nope", session=sb.session()).query("SELECT Id FROM Lead")


def test_token_expiry_and_revocation(sb: Running, http: requests.Session) -> None:
    short, revoked = sb.token(), sb.token()
    assert http.post(f"{sb.base_url}/_sandbox/oauth/ttl", json={"seconds": 0, "token": short}).status_code == 200
    r = sb.session().get(f"{sb.base_url}{V}/limits", headers={"Authorization": f"Bearer {short}"})
    assert r.status_code == 401 and r.json()[0]["errorCode"] == "INVALID_SESSION_ID"
    assert http.post(f"{sb.base_url}/_sandbox/oauth/revoke", json={"token": revoked}).json() == {"revoked": True}
    r = sb.session().get(f"{sb.base_url}{V}/limits", headers={"Authorization": f"Bearer {revoked}"})
    assert r.status_code == 401
    assert http.get(f"{sb.base_url}{V}/limits").status_code == 200  # the others still work


def test_limits_count_down_and_header(sb: Running, http: requests.Session) -> None:
    first = http.get(f"{sb.base_url}{V}/limits")
    second = http.get(f"{sb.base_url}{V}/limits")
    used1, most = map(int, first.headers["Sforce-Limit-Info"].removeprefix("api-usage=").split("/"))
    used2, _ = map(int, second.headers["Sforce-Limit-Info"].removeprefix("api-usage=").split("/"))
    assert used2 == used1 + 1
    daily = second.json()["DailyApiRequests"]
    assert daily["Max"] == most and daily["Remaining"] == most - used2
    assert {"DailyBulkV2QueryJobs", "DailyBulkApiBatches"} <= set(second.json())


def test_request_limit_exceeded(sb: Running, http: requests.Session) -> None:
    base = f"{sb.base_url}/_sandbox/limits"
    try:
        http.post(base, json={"DailyApiRequests": {"Remaining": 0}}).raise_for_status()
        r = http.get(f"{sb.base_url}{V}/limits")
        assert r.status_code == 403 and r.json()[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
    finally:
        http.post(base, json={"DailyApiRequests": {"Remaining": 100_000}})


def test_versions_and_unknown_version(sb: Running, http: requests.Session) -> None:
    versions = sb.session().get(f"{sb.base_url}/services/data/").json()
    assert {"label": "Winter '24", "url": "/services/data/v59.0", "version": "59.0"} in versions
    assert {v["version"] for v in versions} >= {"50.0", "62.0"}
    r = http.get(f"{sb.base_url}/services/data/v49.0/sobjects")
    assert r.status_code == 404 and r.json()[0]["errorCode"] == "NOT_FOUND"


def test_describe_through_the_airflow_hook(sb: Running, token: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.providers.salesforce.hooks.salesforce import SalesforceHook

    conn = {"conn_type": "salesforce", "extra": {"instance_url": sb.base_url}}
    monkeypatch.setenv("AIRFLOW_CONN_SALESFORCE_SANDBOX", json.dumps(conn))
    hook = SalesforceHook(salesforce_conn_id="salesforce_sandbox", session_id=token, session=sb.session())
    lead = hook.describe_object("Lead")
    assert (lead["name"], lead["keyPrefix"], lead["custom"]) == ("Lead", "00Q", False)
    fields = {f["name"]: f for f in lead["fields"]}
    status = fields["Status"]
    assert status["type"] == "picklist" and status["defaultedOnCreate"] and not status["nillable"]
    assert [p["value"] for p in status["picklistValues"] if p["defaultValue"]] == ["Open - Not Contacted"]
    assert "Mailchimp" in [p["value"] for p in fields["LeadSource"]["picklistValues"]]  # from standardValueSets
    key = fields["MC_Email_Key__c"]
    assert (key["externalId"], key["unique"], key["custom"], key["type"], key["length"]) == (True, True, True,
                                                                                           "string", 255)
    assert (fields["LastName"]["nillable"], fields["Company"]["nillable"]) == (False, False)
    sub = hook.describe_object("MC_Subscriber__c")
    sub_fields = {f["name"]: f for f in sub["fields"]}
    assert sub["keyPrefix"].startswith("a0") and sub["custom"]
    assert (sub_fields["Audience__c"]["referenceTo"], sub_fields["Audience__c"]["relationshipName"]) == (
        ["MC_Audience__c"], "Audience__r")
    assert sub_fields["Status__c"]["restrictedPicklist"] is True
    assert sub_fields["Tags__c"]["type"] == "textarea" and sub_fields["Tags__c"]["length"] == 32768
    assert sub_fields["Member_Rating__c"]["type"] == "double"
    assert "MC_Subscriber_Key__c" in hook.get_available_fields("MC_Subscriber__c")
    children = {c["relationshipName"] for c in hook.describe_object("Lead")["childRelationships"]}
    assert "MC_Subscribers__r" in children
    assert hook.make_query("SELECT Id FROM User")["totalSize"] == 1
    assert hook.test_connection()[0] is True


def test_crud_roundtrip_and_audit_fields(sf: Salesforce, sb: Running) -> None:
    created = sf.Lead.create({"FirstName": "Ada", "LastName": "Lovelace", "Company": "Analytical", "Email": "ada@x.io"})
    rid = created["id"]
    assert created["success"] and len(rid) == 18 and rid.startswith("00Q")
    rec = sf.Lead.get(rid)
    assert (rec["Name"], rec["Status"], rec["HasOptedOutOfEmail"]) == ("Ada Lovelace", "Open - Not Contacted", False)
    assert rec["CreatedDate"].endswith("+0000") and rec["CreatedDate"] == rec["LastModifiedDate"]
    assert sf.Lead.get(rid[:15])["Id"] == rid  # 15-char ids are accepted
    assert sf.Lead.update(rid, {"Title": "Countess"}) == 204
    again = sf.Lead.update(rid, {"Title": "Countess"})  # same value: still bumps the audit stamps
    after = sf.Lead.get(rid)
    assert again == 204 and after["LastModifiedDate"] > rec["LastModifiedDate"] and after["Title"] == "Countess"
    assert after["SystemModstamp"] == after["LastModifiedDate"]
    assert sf.Lead.delete(rid) == 204
    assert sf.query(f"SELECT Id FROM Lead WHERE Id = '{rid}'")["totalSize"] == 0
    start, end = datetime.now(UTC) - timedelta(minutes=5), datetime.now(UTC) + timedelta(minutes=5)
    assert rid in [d["id"] for d in sf.Lead.deleted(start, end)["deletedRecords"]]
    assert rid not in sf.Lead.updated(start, end)["ids"]
    gone = sf.query_all(f"SELECT Id, IsDeleted FROM Lead WHERE Id = '{rid}'", include_deleted=True)
    assert gone["records"][0]["IsDeleted"] is True


def _post(http: requests.Session, sb: Running, obj: str, body: dict[str, Any]) -> requests.Response:
    return http.post(f"{sb.base_url}{V}/sobjects/{obj}/", json=body)


@pytest.mark.parametrize(
    ("obj", "body", "code", "message"),
    [
        ("Lead", {"LastName": "X"}, "REQUIRED_FIELD_MISSING", "Required fields are missing: [Company]"),
        ("Lead", {"Company": "C"}, "REQUIRED_FIELD_MISSING", "Required fields are missing: [LastName]"),
        ("Lead", {"LastName": "X" * 81, "Company": "C"}, "STRING_TOO_LONG",
         "Last Name: data value too large: " + "X" * 81 + " (max length=80)"),
        ("Lead", {"LastName": "X", "Company": "C", "Email": "not-an-email"}, "INVALID_EMAIL_ADDRESS",
         "Email: invalid email address: not-an-email"),
        ("Lead", {"LastName": "X", "Company": "C", "Foo__c": 1}, "INVALID_FIELD",
         "No such column 'Foo__c' on sobject of type Lead"),
        ("Lead", {"LastName": "X", "Company": "C", "Name": "N"}, "INVALID_FIELD_FOR_INSERT_UPDATE",
         "Unable to create/update fields: Name."),
        ("Lead", {"LastName": "X", "Company": "C", "HasOptedOutOfEmail": "maybe"}, "JSON_PARSER_ERROR",
         "Cannot deserialize instance of boolean"),
        ("MC_Subscriber__c", {"Status__c": "happy"}, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
         "Status: bad value for restricted picklist field: happy"),
        ("MC_Subscriber__c", {"Member_Rating__c": "high"}, "JSON_PARSER_ERROR",
         "Cannot deserialize instance of double"),
        ("MC_Subscriber__c", {"Member_Rating__c": 12}, "NUMBER_OUTSIDE_VALID_RANGE",
         "value outside of valid range on numeric field: 12"),
        ("MC_Subscriber__c", {"Last_Changed__c": "yesterday"}, "JSON_PARSER_ERROR",
         "Cannot deserialize instance of dateTime"),
        ("MC_Subscriber__c", {"Audience__c": "garbage"}, "MALFORMED_ID", "id value of incorrect type: garbage"),
        ("MC_Subscriber__c", {"Audience__c": "00Q8d0000000001EAA"}, "FIELD_INTEGRITY_EXCEPTION",
         "id value of incorrect type"),
        ("MC_Subscriber__c", {"Audience__c": "a0B8d000000zzzzAAA"[:15]}, "INVALID_CROSS_REFERENCE_KEY",
         "invalid cross reference id"),
    ],
)
def test_validation_errors(sb: Running, http: requests.Session, obj: str, body: dict[str, Any], code: str,
                           message: str) -> None:
    if obj == "MC_Subscriber__c" and body.get("Audience__c", "").startswith("a0B"):
        prefix = http.get(f"{sb.base_url}{V}/sobjects/MC_Audience__c/describe").json()["keyPrefix"]
        body = {"Audience__c": prefix + body["Audience__c"][3:]}
    r = _post(http, sb, obj, body)
    assert r.status_code == 400, r.text
    err = r.json()[0]
    assert err["errorCode"] == code and message in err["message"], err


def test_upsert_by_external_id(sf: Salesforce, sb: Running, http: requests.Session) -> None:
    url = f"{sb.base_url}{V}/sobjects/MC_Audience__c/MC_Audience_Id__c/aud1"
    first = http.patch(url, json={"Name": "Audience 1", "Member_Count__c": 5})
    assert first.status_code == 201 and first.json()["created"] is True and first.json()["errors"] == []
    second = http.patch(url, json={"Name": "Audience 1b"})
    assert second.status_code == 200 and second.json() == {**first.json(), "created": False}
    other_case = http.patch(url.replace("aud1", "AUD1"), json={"Name": "case-sensitive key"})
    assert other_case.status_code == 201  # MC_Audience_Id__c is case-sensitive
    rec = sf.MC_Audience__c.get_by_custom_id("MC_Audience_Id__c", "aud1")
    assert (rec["Name"], rec["Member_Count__c"]) == ("Audience 1b", 5.0)
    lead_key = f"{sb.base_url}{V}/sobjects/Lead/MC_Email_Key__c/"
    made = http.patch(lead_key + "mixed@x.io", json={"LastName": "M", "Company": "C"})
    again = http.patch(lead_key + "MIXED@x.io", json={"Title": "t"})  # MC_Email_Key__c is case-insensitive
    assert made.status_code == 201 and again.status_code == 200 and again.json()["id"] == made.json()["id"]
    bad = http.patch(f"{sb.base_url}{V}/sobjects/Lead/Email/a@b.c", json={"LastName": "x"})
    assert bad.status_code == 404 and "Provided external ID field does not exist" in bad.json()[0]["message"]
    missing = http.get(f"{sb.base_url}{V}/sobjects/MC_Audience__c/MC_Audience_Id__c/none")
    assert missing.status_code == 404 and missing.json()[0]["errorCode"] == "NOT_FOUND"
    assert http.delete(url).status_code == 204
    assert http.get(url).status_code == 404


def test_unique_field_duplicate_value(sb: Running, http: requests.Session) -> None:
    one = _post(http, sb, "MC_Audience__c", {"Name": "x", "MC_Audience_Id__c": "dup-1"})
    two = _post(http, sb, "MC_Audience__c", {"Name": "y", "MC_Audience_Id__c": "dup-1"})
    assert one.status_code == 201 and two.status_code == 400
    assert two.json()[0] == {"message": "duplicate value found: MC_Audience_Id__c duplicates value on record with id: "
                             f"{one.json()['id']}", "errorCode": "DUPLICATE_VALUE", "fields": ["MC_Audience_Id__c"]}


def test_relationship_reference_and_parent_fields(sf: Salesforce, sb: Running, http: requests.Session) -> None:
    http.patch(f"{sb.base_url}{V}/sobjects/MC_Audience__c/MC_Audience_Id__c/rel1", json={"Name": "Rel"})
    r = http.patch(f"{sb.base_url}{V}/sobjects/MC_Subscriber__c/MC_Subscriber_Key__c/rel1:a",
                   json={"Audience__r": {"MC_Audience_Id__c": "rel1"}, "Email__c": "a@x.io"})
    assert r.status_code == 201
    bad = http.patch(f"{sb.base_url}{V}/sobjects/MC_Subscriber__c/MC_Subscriber_Key__c/rel1:b",
                     json={"Audience__r": {"MC_Audience_Id__c": "nope"}})
    assert bad.status_code == 400
    assert bad.json()[0]["message"] == ("Foreign key external ID: nope not found for field MC_Audience_Id__c in "
                                        "entity MC_Audience__c")
    rows = sf.query("SELECT MC_Subscriber_Key__c, Audience__r.MC_Audience_Id__c, Audience__r.Name FROM "
                    "MC_Subscriber__c WHERE Audience__r.MC_Audience_Id__c = 'rel1'")["records"]
    assert len(rows) == 1 and rows[0]["Audience__r"]["Name"] == "Rel"
    assert rows[0]["Audience__r"]["attributes"]["type"] == "MC_Audience__c"
    semi = sf.query("SELECT Name FROM MC_Audience__c WHERE Id IN (SELECT Audience__c FROM MC_Subscriber__c "
                    "WHERE Email__c = 'A@X.IO')")
    assert [x["Name"] for x in semi["records"]] == ["Rel"]


def test_query_paging_with_next_records_url(sf: Salesforce, sb: Running, http: requests.Session) -> None:
    records = [{"attributes": {"type": "MC_Segment__c"}, "MC_Segment_Key__c": f"page:{i}", "Name": f"s{i}"}
               for i in range(200)]
    for start in range(0, 2600, 200):
        batch = [{**r, "MC_Segment_Key__c": f"page:{start + i}"} for i, r in enumerate(records)]
        res = sf.restful("composite/sobjects", method="POST", json={"allOrNone": True, "records": batch})
        assert all(x["success"] for x in res)
    q = "SELECT MC_Segment_Key__c FROM MC_Segment__c WHERE MC_Segment_Key__c LIKE 'page:%'"
    first = http.get(f"{sb.base_url}{V}/query", params={"q": q}).json()
    assert (first["totalSize"], first["done"], len(first["records"])) == (2600, False, 2000)
    assert re.fullmatch(r"/services/data/v59\.0/query/01g\w{15}-2000", first["nextRecordsUrl"])
    rest = http.get(sb.base_url + first["nextRecordsUrl"]).json()
    assert rest["done"] is True and len(rest["records"]) == 600 and "nextRecordsUrl" not in rest
    small = http.get(f"{sb.base_url}{V}/query", params={"q": q},
                     headers={"Sforce-Query-Options": "batchSize=500"}).json()
    assert len(small["records"]) == 500 and small["nextRecordsUrl"].endswith("-500")
    everything = sf.query_all(q)
    keys = [r["MC_Segment_Key__c"] for r in everything["records"]]
    assert len(keys) == len(set(keys)) == 2600
    assert sf.query("SELECT COUNT() FROM MC_Segment__c WHERE MC_Segment_Key__c LIKE 'page:1%'")["totalSize"] == 1111


def test_soql_errors_over_http(sb: Running, http: requests.Session, sf: Salesforce) -> None:
    r = http.get(f"{sb.base_url}{V}/query", params={"q": "SELECT Foo FROM Lead"})
    assert r.status_code == 400
    assert r.json()[0]["errorCode"] == "INVALID_FIELD"
    caret = "\nSELECT Foo FROM Lead\n       ^\nERROR at Row:1:Column:8\nNo such column"
    assert r.json()[0]["message"].startswith(caret)
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.query("SELECT Id FROM Lead WHERE")
    assert info.value.content[0]["errorCode"] == "MALFORMED_QUERY"


def test_composite_collections(sf: Salesforce, sb: Running, http: requests.Session) -> None:
    mixed = sf.restful("composite/sobjects", method="POST", json={"allOrNone": False, "records": [
        {"attributes": {"type": "Account"}, "Name": "Coll Inc"},
        {"attributes": {"type": "Lead"}, "LastName": "NoCompany"},
        {"attributes": {"type": "Contact"}, "LastName": "Cee", "Email": "cee@x.io"},
    ]})
    assert [x["success"] for x in mixed] == [True, False, True]
    assert mixed[1]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING" and mixed[1]["id"] is None
    rolled = sf.restful("composite/sobjects", method="POST", json={"allOrNone": True, "records": [
        {"attributes": {"type": "Account"}, "Name": "Never Inc"},
        {"attributes": {"type": "Lead"}, "LastName": "NoCompany"},
    ]})
    assert rolled[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert sf.query("SELECT Id FROM Account WHERE Name = 'Never Inc'")["totalSize"] == 0
    too_many = http.post(f"{sb.base_url}{V}/composite/sobjects", json={
        "records": [{"attributes": {"type": "Account"}, "Name": str(i)} for i in range(201)]})
    assert too_many.status_code == 400 and too_many.json()[0]["errorCode"] == "EXCEEDED_ID_LIMIT"
    updated = sf.restful("composite/sobjects", method="PATCH", json={"records": [
        {"attributes": {"type": "Account"}, "Id": mixed[0]["id"], "Industry": "Retail"},
        {"attributes": {"type": "Contact"}, "Id": mixed[2]["id"], "Title": "Boss"}]})
    assert all(x["success"] for x in updated)
    body = {"allOrNone": False, "records": [
        {"attributes": {"type": "MC_Interest__c"}, "MC_Interest_Key__c": "i:1", "Name": "One"},
        {"attributes": {"type": "MC_Interest__c"}, "MC_Interest_Key__c": "i:2", "Name": "Two"}]}
    up1 = sf.restful("composite/sobjects/MC_Interest__c/MC_Interest_Key__c", method="PATCH", json=body)
    up2 = sf.restful("composite/sobjects/MC_Interest__c/MC_Interest_Key__c", method="PATCH", json=body)
    assert [x["created"] for x in up1] == [True, True] and [x["created"] for x in up2] == [False, False]
    assert [x["id"] for x in up1] == [x["id"] for x in up2]
    dup = sf.restful("composite/sobjects/MC_Interest__c/MC_Interest_Key__c", method="PATCH", json={
        "records": [body["records"][0], body["records"][0]]})
    assert [x["errors"][0]["statusCode"] for x in dup] == ["DUPLICATE_VALUE", "DUPLICATE_VALUE"]
    got = sf.restful("composite/sobjects/MC_Interest__c", params={"ids": up1[0]["id"], "fields": "Name"})
    assert got[0]["Name"] == "One"
    ids = ",".join(x["id"] for x in up1)
    deleted = http.delete(f"{sb.base_url}{V}/composite/sobjects", params={"ids": ids, "allOrNone": "false"}).json()
    assert [x["success"] for x in deleted] == [True, True]


def test_private_counts_rows_and_injected_faults(sb: Running, http: requests.Session) -> None:
    count = http.get(f"{sb.base_url}/_sandbox/objects/User/count").json()
    assert count == {"object": "User", "count": 1}
    dump = http.get(f"{sb.base_url}/_sandbox/objects/User/rows").json()["records"]
    assert dump[0]["Username"] == sb.creds["username"]
    assert sb.session().get(f"{sb.base_url}/_sandbox/objects/User/count").status_code == 401
    try:
        http.post(f"{sb.base_url}/_sandbox/controls", json={"faults": "503:1"}).raise_for_status()
        r = http.get(f"{sb.base_url}{V}/limits")
        assert r.status_code == 503 and r.headers["Retry-After"] == "1"
        assert r.json()[0]["errorCode"] == "SERVER_UNAVAILABLE"
    finally:
        http.post(f"{sb.base_url}/_sandbox/controls", json={"faults": ""})
    counts = http.get(f"{sb.base_url}/_sandbox/requests").json()
    # the refused request is counted as the fault it met (before its answer), not as the endpoint
    assert counts["by_endpoint"]["GET (injected 503)"] >= 1 and counts["faults_injected"]["503"] >= 1


def test_seeded_org_is_messy(tmp_path_factory: pytest.TempPathFactory) -> None:
    from faker import Faker

    from sandbox.salesforce import seed_org

    fake = Faker()
    Faker.seed(7)
    people = [{"email": fake.unique.email(), "first_name": fake.first_name(), "last_name": fake.last_name(),
               "company": fake.company() if i % 7 else "Acme Corp", "phone": fake.phone_number(),
               "kind": "Contact" if i % 3 == 0 else "Lead"} for i in range(600)]
    state = tmp_path_factory.mktemp("sf-seed")
    seed_org(state, people, seed=7)
    seed_org(state, people, seed=7)  # idempotent per seed
    with serve(state) as run:
        s = run.session()
        s.headers["Authorization"] = f"Bearer {run.token()}"
        sf = Salesforce(instance_url=run.base_url, session_id=run.token(), session=run.session())
        contacts = sf.query_all("SELECT Email, AccountId, Account.Name FROM Contact")["records"]
        leads = sf.query_all("SELECT Email, LastModifiedDate FROM Lead ORDER BY LastModifiedDate")["records"]
    assert len(contacts) == 200 and all(c["AccountId"] and c["Account"]["Name"] for c in contacts)
    accounts = {c["Account"]["Name"] for c in contacts}
    assert len(accounts) == len({p["company"] for p in people if p["kind"] == "Contact"})
    by_email: dict[str, list[str]] = {}
    for lead in leads:
        if lead["Email"]:
            by_email.setdefault(lead["Email"].lower(), []).append(lead["LastModifiedDate"])
    dups = [v for v in by_email.values() if len(v) > 1]
    assert dups and all(len(set(v)) == len(v) for v in dups)
    assert any(lead["Email"] and lead["Email"] != lead["Email"].lower() for lead in leads)
    contact_emails = {c["Email"].lower() for c in contacts if c["Email"]}
    assert contact_emails & set(by_email)


def test_served_by_the_sandbox_process(sandbox: dict[str, Any]) -> None:
    """The same app as started by ``python -m sandbox serve`` (the session fixture), seeded org included."""
    s = requests.Session()
    s.trust_env, s.verify = False, sandbox["ca_bundle"]
    token = s.post(f"{sandbox['salesforce_url']}/services/oauth2/token", data={
        "grant_type": "client_credentials", "client_id": sandbox["salesforce_client_id"],
        "client_secret": sandbox["salesforce_client_secret"]}).json()["access_token"]
    sf = Salesforce(instance_url=sandbox["salesforce_url"], session_id=token, session=s)
    assert sf.query("SELECT COUNT() FROM Lead")["totalSize"] > 0
    assert sf.query("SELECT COUNT() FROM Contact WHERE AccountId != null")["totalSize"] > 0
