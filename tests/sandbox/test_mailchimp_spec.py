"""Every Mailchimp endpoint the sandbox serves answers with the shape the public spec describes.

The OpenAPI 3.0.1 copy of Mailchimp's spec (version 3.0.55, in shared/reference) is loaded,
its known defects patched (see ``_patch``), and made strict: an object may only carry the
properties the spec names (plus a short allow-list of fields newer than 3.0.55). So a
misspelt or invented field fails here, not in production.
"""

from __future__ import annotations

import copy
import functools
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import requests

SPEC = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "mailchimp-marketing-openapi-3.0.55.yaml"
# Fields real responses carry that 3.0.55 does not list (Mailchimp's current SDK types do).
NEWER_MEMBER_FIELDS = {"full_name": {"type": "string"}, "contact_id": {"type": "string"},
                       "web_id": {"type": "integer"}, "source": {"type": "string"}}
LINKS = {"type": "array", "items": {"$ref": "#/components/schemas/Resource_Link"}}
pytestmark = pytest.mark.skipif(not SPEC.exists(), reason=f"spec not found at {SPEC}")


def _item(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": {**properties, "_links": LINKS}}


def _patch(schemas: dict[str, Any]) -> None:
    """Fix the spec's known defects (DESIGN.md; api-notes §B) before validating against it."""
    member = copy.deepcopy(schemas["List_Members"])
    member["properties"].update(NEWER_MEMBER_FIELDS)
    member["properties"]["status"]["enum"] = [*member["properties"]["status"]["enum"], "archived"]
    schemas["Member"] = member
    # List_Members_2 is the collection schema reused for single members; split the two.
    schemas["List_Members_2"]["properties"]["members"]["items"] = {"$ref": "#/components/schemas/Member"}
    for name in ("List_Members", "List_Members_1"):  # batch results and segment members are members too
        schemas[name] = {"$ref": "#/components/schemas/Member"}
    # Merge field values are strings, numbers or address objects, not only objects.
    schemas["Member"]["properties"]["merge_fields"] = {"type": "object"}
    merge_map = {"type": "object"}
    event = {"type": "object", "additionalProperties": False, "required": ["action", "timestamp"],
             "properties": {"action": {"enum": ["open", "click", "bounce"]}, "type": {"enum": ["hard", "soft"]},
                            "timestamp": {"type": "string", "format": "date-time"}, "url": {"type": "string"},
                            "ip": {"type": "string"}}}
    activity = _item({"campaign_id": {"type": "string"}, "list_id": {"type": "string"},
                      "list_is_active": {"type": "boolean"}, "email_id": {"type": "string"},
                      "email_address": {"type": "string"}, "activity": {"type": "array", "items": event}})
    sent_to = _item({"email_id": {"type": "string"}, "email_address": {"type": "string"}, "merge_fields": merge_map,
                     "vip": {"type": "boolean"}, "status": {"enum": ["sent", "hard", "soft"]},
                     "open_count": {"type": "integer"}, "last_open": {"type": "string", "format": "date-time"},
                     "absplit_group": {"enum": ["a", "b", "winner", ""]}, "gmt_offset": {"type": "integer"},
                     "campaign_id": {"type": "string"}, "list_id": {"type": "string"},
                     "list_is_active": {"type": "boolean"}})
    unsub = _item({"email_id": {"type": "string"}, "email_address": {"type": "string"}, "merge_fields": merge_map,
                   "vip": {"type": "boolean"}, "timestamp": {"type": "string", "format": "date-time"},
                   "reason": {"type": "string"}, "campaign_id": {"type": "string"}, "list_id": {"type": "string"},
                   "list_is_active": {"type": "boolean"}})
    for coll, key, item in (("Email_Activity", "emails", activity), ("Sent_To", "sent_to", sent_to),
                            ("Unsubscribes", "unsubscribes", unsub)):
        schemas[f"{coll}_Item"] = item
        schemas[coll]["properties"][key]["items"] = {"$ref": f"#/components/schemas/{coll}_Item"}
    # Validation errors carry field errors; SMS campaigns exist since the spec was cut.
    schemas["Problem_Detail_Document"]["properties"]["errors"] = {
        "type": "array", "items": {"type": "object", "additionalProperties": False,
                                   "properties": {"field": {"type": "string"}, "message": {"type": "string"}}}}
    schemas["Campaign"]["properties"]["type"]["enum"].append("sms")


def _strict(node: Any) -> None:
    """Close every object schema: unknown properties become validation errors."""
    if isinstance(node, dict):
        if "properties" in node and "additionalProperties" not in node and not {"allOf", "oneOf", "anyOf"} & set(node):
            node["additionalProperties"] = False
        for value in node.values():
            _strict(value)
    elif isinstance(node, list):
        for value in node:
            _strict(value)


@functools.cache
def _spec() -> dict[str, Any]:
    import yaml

    spec = yaml.load(SPEC.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    _strict(spec["components"]["schemas"])
    _patch(spec["components"]["schemas"])
    return spec


def _validator(schema_name: str) -> Any:
    from jsonschema import Draft4Validator, FormatChecker
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT4

    spec = _spec()
    registry = Registry().with_resource("urn:mailchimp", Resource.from_contents(spec, default_specification=DRAFT4))
    checker = FormatChecker()

    @checker.checks("date-time", raises=ValueError)
    def _date_time(value: object) -> bool:  # Mailchimp sends "" for "never"
        return not isinstance(value, str) or value == "" or bool(
            re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", value))

    return Draft4Validator({"$ref": f"urn:mailchimp#/components/schemas/{schema_name}"}, registry=registry,
                           format_checker=checker)


def _response_schema(path: str, method: str) -> str:
    op = _spec()["paths"][path][method.lower()]
    ref = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    name = ref.rsplit("/", 1)[1]
    if path.endswith("{subscriber_hash}"):  # the spec reuses the collection schema for one member
        return {"List_Members_2": "Member", "Email_Activity": "Email_Activity_Item", "Sent_To": "Sent_To_Item",
                "Unsubscribes": "Unsubscribes_Item"}.get(name, name)
    return name


def _check(doc: Any, schema: str) -> None:
    errors = sorted(_validator(schema).iter_errors(doc), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message[:300]}" for e in errors[:10])


@pytest.fixture(scope="module")
def ids(mailchimp_http: requests.Session, sandbox: dict[str, Any]) -> dict[str, str]:
    """Ids of seeded objects to fill the path templates with."""
    base = sandbox["mailchimp_url"]
    get = lambda path, **params: mailchimp_http.get(base + path, params=params).json()  # noqa: E731
    list_id = get("/lists")["lists"][0]["id"]
    member = get(f"/lists/{list_id}/members", count=1, status="subscribed")["members"][0]
    category = get(f"/lists/{list_id}/interest-categories")["categories"][0]["id"]
    campaigns = get("/campaigns", status="sent", count=1000)["campaigns"]
    campaign = next(c for c in campaigns if c["recipients"]["list_id"] == list_id)["id"]
    recipient = get(f"/reports/{campaign}/email-activity", count=1000)["emails"]
    active = next(e["email_id"] for e in recipient if e["activity"])
    unsub = get(f"/reports/{campaign}/unsubscribed", count=1)["unsubscribes"][0]["email_id"]
    batch = mailchimp_http.post(base + "/batches", json={"operations": [{"method": "GET", "path": "/ping"}]}).json()
    return {"list_id": list_id, "subscriber_hash": member["id"], "interest_category_id": category,
            "interest_id": get(f"/lists/{list_id}/interest-categories/{category}/interests")["interests"][0]["id"],
            "segment_id": str(get(f"/lists/{list_id}/segments")["segments"][0]["id"]),
            "merge_id": str(get(f"/lists/{list_id}/merge-fields")["merge_fields"][0]["merge_id"]),
            "campaign_id": campaign, "active_hash": active, "unsub_hash": unsub, "batch_id": batch["id"]}


GET_PATHS = [
    "/", "/ping", "/lists", "/lists/{list_id}", "/lists/{list_id}/members",
    "/lists/{list_id}/members/{subscriber_hash}",
    "/lists/{list_id}/members/{subscriber_hash}/tags", "/lists/{list_id}/merge-fields",
    "/lists/{list_id}/merge-fields/{merge_id}", "/lists/{list_id}/segments", "/lists/{list_id}/segments/{segment_id}",
    "/lists/{list_id}/segments/{segment_id}/members", "/lists/{list_id}/interest-categories",
    "/lists/{list_id}/interest-categories/{interest_category_id}",
    "/lists/{list_id}/interest-categories/{interest_category_id}/interests",
    "/lists/{list_id}/interest-categories/{interest_category_id}/interests/{interest_id}",
    "/campaigns", "/campaigns/{campaign_id}", "/reports", "/reports/{campaign_id}",
    "/reports/{campaign_id}/email-activity", "/reports/{campaign_id}/email-activity/{subscriber_hash}",
    "/reports/{campaign_id}/sent-to", "/reports/{campaign_id}/sent-to/{subscriber_hash}",
    "/reports/{campaign_id}/unsubscribed", "/reports/{campaign_id}/unsubscribed/{subscriber_hash}",
    "/batches", "/batches/{batch_id}",
]


@pytest.mark.parametrize("template", GET_PATHS)
def test_get_responses_match_the_spec(template: str, ids: dict[str, str], mailchimp_http: requests.Session,
                                      sandbox: dict[str, Any]) -> None:
    values = dict(ids)
    if template.startswith(("/reports/{campaign_id}/email-activity/", "/reports/{campaign_id}/sent-to/")):
        values["subscriber_hash"] = ids["active_hash"]
    if template.startswith("/reports/{campaign_id}/unsubscribed/"):
        values["subscriber_hash"] = ids["unsub_hash"]
    params = {"count": 50} if "{" not in template.rsplit("/", 1)[-1] and template not in ("/", "/ping") else {}
    response = mailchimp_http.get(sandbox["mailchimp_url"] + template.format(**values), params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    _check(response.json(), _response_schema(template, "GET"))


def test_write_responses_match_the_spec(ids: dict[str, str], mailchimp_http: requests.Session,
                                        sandbox: dict[str, Any]) -> None:
    base, list_id = sandbox["mailchimp_url"], ids["list_id"]
    created = mailchimp_http.post(f"{base}/lists", json={
        "name": "Spec check", "permission_reminder": "You asked for it.", "email_type_option": False,
        "contact": {"company": "ACME", "address1": "1 Main St", "city": "Springfield", "state": "IL", "zip": "62701",
                    "country": "US"},
        "campaign_defaults": {"from_name": "ACME", "from_email": "news@acme.example.com", "subject": "Hi",
                              "language": "en"}})
    assert created.status_code == 200, created.text
    _check(created.json(), _response_schema("/lists", "POST"))
    member = mailchimp_http.put(f"{base}/lists/{list_id}/members/spec.check@example.com",
                                json={"email_address": "spec.check@example.com", "status_if_new": "subscribed"})
    _check(member.json(), _response_schema("/lists/{list_id}/members/{subscriber_hash}", "PUT"))
    batch = mailchimp_http.post(f"{base}/lists/{list_id}", json={"members": [
        {"email_address": "spec.batch@example.com", "status": "pending"},
        {"email_address": "spec.check@example.com", "status": "subscribed"}]})
    _check(batch.json(), _response_schema("/lists/{list_id}", "POST"))
    field = mailchimp_http.post(f"{base}/lists/{list_id}/merge-fields", json={"name": "Spec size", "type": "dropdown",
                                                                               "options": {"choices": ["S", "M"]}})
    _check(field.json(), _response_schema("/lists/{list_id}/merge-fields", "POST"))
    segment = mailchimp_http.post(f"{base}/lists/{list_id}/segments",
                                  json={"name": "Spec seg", "static_segment": ["spec.check@example.com"]})
    _check(segment.json(), _response_schema("/lists/{list_id}/segments", "POST"))
    category = mailchimp_http.post(f"{base}/lists/{list_id}/interest-categories",
                                   json={"title": "Spec", "type": "radio"})
    _check(category.json(), _response_schema("/lists/{list_id}/interest-categories", "POST"))


@pytest.mark.parametrize("method,path,body,status", [
    ("GET", "/lists/nope", None, 404),
    ("GET", "/lists?count=5000", None, 400),
    ("POST", "/lists/{list_id}/members", {"email_address": "x@", "status": "subscribed"}, 400),
    ("PATCH", "/lists", {}, 405),
])
def test_errors_are_problem_documents(method: str, path: str, body: Any, status: int, ids: dict[str, str],
                                      mailchimp_http: requests.Session, sandbox: dict[str, Any]) -> None:
    response = mailchimp_http.request(method, sandbox["mailchimp_url"] + path.format(**ids), json=body)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json; charset=utf-8"
    _check(response.json(), "Problem_Detail_Document")
