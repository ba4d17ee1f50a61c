"""The peers mcsf is measured against, on the same sandbox data.

(a) *The obvious Airflow approach*: read Mailchimp page by page with the official
``mailchimp-marketing`` client (1000 per page, one request after another) and hand the records to
the Salesforce provider's ``SalesforceBulkOperator`` (Bulk API 1.0, its default batch size of
10,000). The operator builds its own ``SalesforceHook`` from the connection (client credentials on
a My Domain host, so the login goes through the bench's TLS front). It writes only subscribers
(and the audiences and campaigns they point at): no lead matching, no diffing.
(b) *Per-record REST*: the same reads, then one ``upsert`` (or one Mailchimp PUT) per record —
run for as many records as it finishes in reasonable time; the orchestrator extrapolates.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

PEER_CONN = "salesforce_peer"
BATCH_SIZE = 10_000  # SalesforceBulkOperator's default


def _client(spec: dict[str, Any]) -> Any:
    import mailchimp_marketing

    client = mailchimp_marketing.Client()
    client.set_config({"api_key": spec["mailchimp_api_key"], "server": spec["mailchimp_api_key"].split("-")[-1]})
    client.api_client.host = spec["mailchimp_url"]
    return client


def _window(spec: dict[str, Any]) -> tuple[str, str]:
    start, end = (datetime.fromisoformat(v) for v in spec["window"])
    return start.isoformat(timespec="seconds"), end.isoformat(timespec="seconds")


def _pages(fetch: Any, items: str, **params: Any) -> Iterator[list[dict[str, Any]]]:
    """Offset paging, one page after another, as a first DAG would write it."""
    offset = 0
    while True:
        page = fetch(count=1000, offset=offset, **params)
        yield page[items]
        offset += 1000
        if offset >= page["total_items"]:
            return


def _subscriber(list_id: str, m: dict[str, Any]) -> dict[str, Any]:
    merge = m.get("merge_fields") or {}
    email = str(m.get("email_address") or "").strip()
    return {"MC_Subscriber_Key__c": f"{list_id}:{m['id']}", "Name": email[:80], "Email__c": email,
            "Email_Hash__c": m["id"], "Status__c": m.get("status"),
            "First_Name__c": (str(merge.get("FNAME") or "").strip()[:80] or None),
            "Last_Name__c": (str(merge.get("LNAME") or "").strip()[:80] or None),
            "Member_Rating__c": m.get("member_rating"), "Last_Changed__c": m.get("last_changed"),
            "Audience__r": {"MC_Audience_Id__c": list_id}}


def _bulk(object_name: str, payload: list[dict[str, Any]], external_id: str) -> dict[str, int]:
    from airflow.providers.salesforce.operators.bulk import SalesforceBulkOperator

    if not payload:  # the operator refuses an empty payload; a DAG would short-circuit
        return {"sent": 0, "failed": 0}
    operator = SalesforceBulkOperator(task_id=f"upsert_{object_name}", operation="upsert", object_name=object_name,
                                      payload=payload, external_id_field=external_id, batch_size=BATCH_SIZE,
                                      salesforce_conn_id=PEER_CONN)
    results = operator.execute(context={}) or []
    return {"sent": len(payload), "failed": sum(1 for r in results if not r.get("success"))}


def _audiences(client: Any) -> list[dict[str, Any]]:
    lists = client.lists.get_all_lists(count=1000)["lists"]
    return [{"MC_Audience_Id__c": lst["id"], "Name": lst["name"][:80]} for lst in lists]


def run_a_members(spec: dict[str, Any]) -> dict[str, Any]:
    """Scenarios 1-3: members (all, or changed in the window) -> Bulk 1.0 upsert of MC_Subscriber__c."""
    client = _client(spec)
    audiences = _audiences(client)
    window = {} if spec.get("full") else dict(zip(("since_last_changed", "before_last_changed"), _window(spec),
                                                  strict=True))
    payload = [_subscriber(a["MC_Audience_Id__c"], m) for a in audiences
               for page in _pages(client.lists.get_list_members_info, "members", list_id=a["MC_Audience_Id__c"],
                                  **window)
               for m in page]
    written = {"MC_Audience__c": _bulk("MC_Audience__c", audiences, "MC_Audience_Id__c") if payload else {},
               "MC_Subscriber__c": _bulk("MC_Subscriber__c", payload, "MC_Subscriber_Key__c")}
    return {"rows": len(payload), "outcome": written}


def run_a_activity(spec: dict[str, Any]) -> dict[str, Any]:
    """Scenario 4: campaigns and their email activity since the window's start, events cut at its end,
    -> Bulk 1.0 upserts. The payload is held in memory, so it stops at ``spec["cap"]`` events."""
    client = _client(spec)
    start, end = _window(spec)
    cap = int(spec["cap"])
    campaigns, events = [], []
    for a in _audiences(client):
        for page in _pages(client.campaigns.list, "campaigns", list_id=a["MC_Audience_Id__c"], status="sent"):
            campaigns += page
    for campaign in campaigns:
        if len(events) >= cap:
            break
        cid, list_id = campaign["id"], campaign["recipients"]["list_id"]
        for page in _pages(client.reports.get_email_activity_for_campaign, "emails", campaign_id=cid, since=start):
            for member in page:
                for e in member.get("activity") or []:
                    if e["timestamp"] < end:
                        events.append(_event(cid, list_id, member["email_id"], e))
            if len(events) >= cap:
                break
    rows = [{"MC_Campaign_Id__c": c["id"], "Name": c["settings"].get("title", c["id"])[:80], "Type__c": c["type"],
             "Audience__r": {"MC_Audience_Id__c": c["recipients"]["list_id"]}} for c in campaigns]
    written = {"MC_Campaign__c": _bulk("MC_Campaign__c", rows, "MC_Campaign_Id__c"),
               "MC_Activity__c": _bulk("MC_Activity__c", events[:cap], "MC_Activity_Key__c")}
    return {"rows": min(len(events), cap), "capped_at": cap, "outcome": written}


def _event(cid: str, list_id: str, email_id: str, e: dict[str, Any]) -> dict[str, Any]:
    key = hashlib.sha256(f"{cid}|{email_id}|{e['action']}|{e['timestamp']}|{e.get('url') or ''}".encode()).hexdigest()
    return {"MC_Activity_Key__c": key, "Campaign__r": {"MC_Campaign_Id__c": cid},
            "Subscriber__r": {"MC_Subscriber_Key__c": f"{list_id}:{email_id}"},
            "Audience__r": {"MC_Audience_Id__c": list_id}, "Action__c": e["action"],
            "Bounce_Type__c": e.get("type") if e["action"] == "bounce" else None,
            "Occurred_At__c": e["timestamp"], "URL__c": (e.get("url") or "")[:255] or None}


def run_b_members(spec: dict[str, Any]) -> dict[str, Any]:
    """Scenario 1, per record: the first ``spec["records"]`` members, one REST upsert each."""
    from airflow.providers.salesforce.hooks.salesforce import SalesforceHook

    client = _client(spec)
    limit = int(spec["records"])
    records: list[dict[str, Any]] = []
    for a in _audiences(client):
        for page in _pages(client.lists.get_list_members_info, "members", list_id=a["MC_Audience_Id__c"]):
            records += [_subscriber(a["MC_Audience_Id__c"], m) for m in page]
            if len(records) >= limit:
                break
        if len(records) >= limit:
            break
    sf = SalesforceHook(salesforce_conn_id=PEER_CONN).get_conn()
    for a in _audiences(client):
        sf.MC_Audience__c.upsert(f"MC_Audience_Id__c/{a['MC_Audience_Id__c']}", {"Name": a["Name"]})
    failed = 0
    for record in records[:limit]:
        key = record.pop("MC_Subscriber_Key__c")
        try:
            sf.MC_Subscriber__c.upsert(f"MC_Subscriber_Key__c/{key}", record)
        except Exception:  # a refused record is counted, the loop goes on
            failed += 1
    return {"rows": min(len(records), limit), "outcome": {"failed": failed}}


def run_b_push(spec: dict[str, Any]) -> dict[str, Any]:
    """Scenario 5, per record: the provider hook's query (REST pages of 2000), then one Mailchimp
    PUT per Contact for the first ``spec["records"]``."""
    from airflow.providers.salesforce.hooks.salesforce import SalesforceHook

    client = _client(spec)
    found = SalesforceHook(salesforce_conn_id=PEER_CONN).make_query(
        f"SELECT Id, Email, FirstName, LastName FROM Contact WHERE Department = '{spec['department']}'")
    records = found["records"][: int(spec["records"])]
    for r in records:
        client.lists.set_list_member(spec["list_id"], hashlib.md5(r["Email"].lower().encode()).hexdigest(), {
            "email_address": r["Email"], "status_if_new": "subscribed",
            "merge_fields": {"FNAME": r["FirstName"] or "", "LNAME": r["LastName"] or ""}})
    return {"rows": len(records), "matched": found["totalSize"]}
