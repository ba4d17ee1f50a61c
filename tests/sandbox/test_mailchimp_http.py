"""The Mailchimp emulator at the HTTP level: auth, error documents, limits, controls.

Raw ``requests`` calls, so status codes, headers and bodies are checked byte for byte rather
than through a client that might smooth them over.
"""

from __future__ import annotations

import base64
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

import pytest
import requests

if TYPE_CHECKING:
    from collections.abc import Iterator

PROBLEM = "application/problem+json; charset=utf-8"
ERRORS_DOC = "https://mailchimp.com/developer/marketing/docs/errors/"


@pytest.fixture
def url(sandbox: dict[str, Any]) -> str:
    return sandbox["mailchimp_url"]


@pytest.fixture
def controls(mailchimp_http: requests.Session, url: str) -> Iterator[Any]:
    """Change latency/faults for one test; always restored afterwards."""
    endpoint = url.removesuffix("/3.0") + "/_sandbox/controls"

    def set_controls(**body: Any) -> dict[str, Any]:
        response = mailchimp_http.post(endpoint, json=body)
        assert response.status_code == 200, response.text
        return response.json()

    yield set_controls
    set_controls(latency_ms=0, faults="")


@pytest.fixture(scope="module")
def list_id(mailchimp_http: requests.Session, sandbox: dict[str, Any]) -> str:
    return mailchimp_http.get(sandbox["mailchimp_url"] + "/lists").json()["lists"][0]["id"]


def _assert_problem(response: requests.Response, status: int, title: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == PROBLEM
    body = response.json()
    assert set(body) >= {"type", "title", "status", "detail", "instance"}
    assert (body["type"], body["title"], body["status"]) == (ERRORS_DOC, title, status)
    assert body["instance"] == response.headers["X-Request-Id"]
    uuid.UUID(body["instance"])
    return body


@pytest.mark.parametrize("headers,status,title", [
    ({}, 401, "API Key Missing"),
    ({"Authorization": "Basic " + base64.b64encode(b"user:0123456789abcdef0123456789abcdef-us1").decode()}, 401,
     "API Key Invalid"),
    ({"Authorization": "Bearer nonsense"}, 401, "API Key Invalid"),
    ({"Authorization": "Digest abc"}, 401, "API Key Invalid"),
])
def test_missing_or_wrong_key_is_401(url: str, headers: dict[str, str], status: int, title: str) -> None:
    for path in ("/ping", "/lists", "/no/such/path"):
        _assert_problem(requests.get(url + path, headers=headers), status, title)
    _assert_problem(requests.get(url.removesuffix("/3.0") + "/_sandbox/requests", headers=headers), status, title)


def test_key_of_another_datacenter_is_refused(url: str, sandbox: dict[str, Any]) -> None:
    other = sandbox["mailchimp_api_key"].replace("-us1", "-us6")
    _assert_problem(requests.get(url + "/ping", auth=("u", other)), 403, "Wrong Datacenter")


def test_bearer_and_basic_with_any_user_work(url: str, sandbox: dict[str, Any]) -> None:
    key = sandbox["mailchimp_api_key"]
    assert requests.get(url + "/ping", headers={"Authorization": f"Bearer {key}"}).json() == {
        "health_status": "Everything's Chimpy!"}
    ok = requests.get(url + "/ping", auth=("whoever", key))
    assert ok.status_code == 200 and ok.headers["Content-Type"] == "application/json; charset=utf-8"
    uuid.UUID(ok.headers["X-Request-Id"])


def test_not_found_paths_and_resources(mailchimp_http: requests.Session, url: str, list_id: str) -> None:
    body = _assert_problem(mailchimp_http.get(url + "/lists/doesnotexist"), 404, "Resource Not Found")
    assert body["detail"] == "The requested resource could not be found."
    _assert_problem(mailchimp_http.get(url + "/definitely/not/here"), 404, "Resource Not Found")
    _assert_problem(mailchimp_http.get(f"{url}/lists/{list_id}/members/{'0' * 32}"), 404, "Resource Not Found")
    assert "Link" in mailchimp_http.get(url + "/lists/doesnotexist").headers


def test_wrong_method_is_405_with_allow(mailchimp_http: requests.Session, url: str, list_id: str) -> None:
    response = mailchimp_http.put(url + "/lists")
    _assert_problem(response, 405, "Method Not Allowed")
    assert set(response.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "POST"}
    member = mailchimp_http.post(f"{url}/lists/{list_id}/members/{'0' * 32}")
    assert {"GET", "PUT", "PATCH", "DELETE"} <= set(member.headers["Allow"].replace(" ", "").split(","))


def test_malformed_and_non_object_json(mailchimp_http: requests.Session, url: str, list_id: str) -> None:
    target = f"{url}/lists/{list_id}/members"
    body = _assert_problem(mailchimp_http.post(target, data=b'{"email_address": "x@example.com",',
                                               headers={"Content-Type": "application/json"}), 400, "JSON Parse Error")
    assert body["detail"] == "We encountered an unspecified JSON parsing error."
    _assert_problem(mailchimp_http.post(target, data=b"\xff\xfe", headers={"Content-Type": "application/json"}),
                    400, "JSON Parse Error")
    _assert_problem(mailchimp_http.post(target, json=[1, 2]), 400, "Invalid Resource")
    missing = _assert_problem(mailchimp_http.post(target, json={"status": "subscribed"}), 400, "Invalid Resource")
    assert missing["errors"][0]["field"] == "email_address"


def test_huge_body_is_413_not_500(mailchimp_http: requests.Session, url: str, list_id: str) -> None:
    blob = b'{"members": [' + b'{"email_address": "a@example.com"},' * 330_000 + b"{}]}"
    assert len(blob) > 10 * 1024 * 1024
    _assert_problem(mailchimp_http.post(f"{url}/lists/{list_id}", data=blob,
                                        headers={"Content-Type": "application/json"}), 413, "Request Entity Too Large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit must hold while streaming too
        for _ in range(12):
            yield b" " * (1024 * 1024)

    streamed = mailchimp_http.post(f"{url}/lists/{list_id}", data=chunks(),
                                   headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413


@pytest.mark.parametrize("query,field", [
    ("since_last_change=2026-01-01", "since_last_change"),
    ("count=1001", "count"),
    ("count=-1", "count"),
    ("offset=abc", "offset"),
    (f"offset={2**64}", "offset"),
    ("status=gone", "status"),
    ("since_last_changed=yesterday", "since_last_changed"),
    ("vip_only=maybe", "vip_only"),
])
def test_bad_query_parameters_are_400(mailchimp_http: requests.Session, url: str, list_id: str, query: str,
                                      field: str) -> None:
    body = _assert_problem(mailchimp_http.get(f"{url}/lists/{list_id}/members?{query}"), 400, "Invalid Resource")
    assert field in body["detail"]


@pytest.mark.parametrize("path", ["/batches", "/campaigns", "/reports", "/lists"])
def test_an_offset_past_64_bits_is_400_on_every_collection(mailchimp_http: requests.Session, url: str,
                                                           path: str) -> None:
    """Found by the soak's fuzzing: such an offset reached the store and answered 500."""
    body = _assert_problem(mailchimp_http.get(f"{url}{path}?offset={2**63}"), 400, "Invalid Resource")
    assert "offset" in body["detail"]
    assert mailchimp_http.get(f"{url}{path}?offset={2**63 - 1}").status_code == 200


def test_booleans_and_unencoded_plus_in_times(mailchimp_http: requests.Session, url: str, list_id: str) -> None:
    target = f"{url}/lists/{list_id}/members"
    counts = [mailchimp_http.get(f"{target}?vip_only={v}&count=1").json()["total_items"]
              for v in ("True", "TRUE", "true")]
    assert len(set(counts)) == 1 and counts[0] < mailchimp_http.get(f"{target}?vip_only=False").json()["total_items"]
    raw = mailchimp_http.get(f"{target}?since_last_changed=2026-11-19T00:00:00+00:00&count=1").json()["total_items"]
    encoded = mailchimp_http.get(target, params={"since_last_changed": "2026-11-19T00:00:00+00:00"})
    encoded = encoded.json()["total_items"]
    zulu = mailchimp_http.get(target, params={"since_last_changed": "2026-11-19T00:00:00Z"}).json()["total_items"]
    assert raw == encoded == zulu > 0


def test_fields_and_exclude_fields(mailchimp_http: requests.Session, url: str, list_id: str) -> None:
    only = mailchimp_http.get(f"{url}/lists/{list_id}/members",
                              params={"fields": "members.email_address,members.merge_fields.FNAME,total_items"}).json()
    assert set(only) == {"members", "total_items"}
    assert all(set(m) == {"email_address", "merge_fields"} and set(m["merge_fields"]) == {"FNAME"}
               for m in only["members"])
    lean = mailchimp_http.get(f"{url}/lists/{list_id}/members",
                              params={"exclude_fields": "members._links,_links"}).json()
    assert "_links" not in lean and all("_links" not in m and "email_address" in m for m in lean["members"])


def test_eleventh_simultaneous_request_gets_429(mailchimp_http: requests.Session, url: str, sandbox: dict[str, Any],
                                               controls: Any) -> None:
    controls(latency_ms=500)
    statuses: list[int] = []
    barrier = threading.Barrier(11)

    def hit() -> None:
        with requests.Session() as session:
            session.auth = ("u", sandbox["mailchimp_api_key"])
            barrier.wait()
            response = session.get(url + "/ping")
            statuses.append(response.status_code)
            if response.status_code == 429:
                _assert_problem_headers(response)

    threads = [threading.Thread(target=hit) for _ in range(11)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(statuses) == [200] * 10 + [429]


def _assert_problem_headers(response: requests.Response) -> None:
    assert response.headers["Content-Type"] == PROBLEM
    assert response.headers["Retry-After"] == "1"
    assert response.json()["title"] == "Too Many Requests"


def test_latency_and_faults_can_be_switched_on(mailchimp_http: requests.Session, url: str, controls: Any) -> None:
    controls(latency_ms=300)
    start = time.perf_counter()
    assert mailchimp_http.get(url + "/ping").status_code == 200
    assert time.perf_counter() - start >= 0.3
    controls(latency_ms=0, faults="503:1.0")
    failed = mailchimp_http.get(url + "/ping")
    assert failed.status_code == 503 and failed.headers["Content-Type"] == PROBLEM
    assert failed.headers["Retry-After"] == "1"
    controls(faults="")
    assert mailchimp_http.get(url + "/ping").status_code == 200
    bad = mailchimp_http.post(url.removesuffix("/3.0") + "/_sandbox/controls", json={"faults": "teapot:2"})
    assert bad.status_code == 400


def test_requests_are_counted_per_endpoint(mailchimp_http: requests.Session, url: str, list_id: str) -> None:
    root = url.removesuffix("/3.0") + "/_sandbox"
    before = mailchimp_http.get(root + "/requests").json()["by_endpoint"].get("GET /3.0/lists/{list_id}/members", 0)
    for _ in range(3):
        mailchimp_http.get(f"{url}/lists/{list_id}/members", params={"count": 1})
    after = mailchimp_http.get(root + "/requests").json()["by_endpoint"]["GET /3.0/lists/{list_id}/members"]
    assert after == before + 3


def test_private_endpoints(mailchimp_http: requests.Session, url: str, list_id: str) -> None:
    root = url.removesuffix("/3.0") + "/_sandbox"
    summary = mailchimp_http.get(root + "/summary").json()
    assert summary["counts"]["members"] >= 6000 and summary["seed"]["seed"] == 7
    frozen = mailchimp_http.put(root + "/clock", json={"now": "2026-11-20T09:15:00Z"}).json()
    assert frozen == {"now": "2026-11-20T09:15:00+00:00", "frozen": True}
    try:
        email = f"clock.{uuid.uuid4().hex[:6]}@example.com"
        member = mailchimp_http.put(f"{url}/lists/{list_id}/members/{email}",
                                    json={"email_address": email, "status_if_new": "subscribed"}).json()
        assert member["last_changed"] == "2026-11-20T09:15:00+00:00"
    finally:
        assert mailchimp_http.put(root + "/clock", json={"now": None}).json()["frozen"] is False
    bad = mailchimp_http.post(root + "/campaigns", json={"list_id": list_id, "type": "fax"})
    assert bad.status_code == 400 and bad.headers["Content-Type"] == PROBLEM
    assert mailchimp_http.put(root + "/account", json={"role": "emperor"}).status_code == 400


def test_serve_flags_latency_faults_and_clean_stop(tmp_path: Any) -> None:
    """Start-up flags reach the controls, and SIGTERM ends the process cleanly."""
    import json
    import subprocess
    import sys

    from tests.conftest import REPO, _read_line

    proc = subprocess.Popen([sys.executable, "-m", "sandbox", "serve", "--state-dir", str(tmp_path), "--no-seed",
                             "--no-salesforce", "--seed", "3", "--latency-ms", "250", "--faults", "500:1.0"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        info = json.loads(_read_line(proc, 60))
        assert "salesforce_url" not in info and info["pid"] == proc.pid
        assert info["mailchimp_api_key"].endswith("-us1") and len(info["mailchimp_api_key"]) == 36
        start = time.perf_counter()
        response = requests.get(info["mailchimp_url"] + "/ping", auth=("u", info["mailchimp_api_key"]))
        assert time.perf_counter() - start >= 0.25
        _assert_problem_headers_only(response, 500)
        lists = requests.get(info["mailchimp_url"].removesuffix("/3.0") + "/_sandbox/summary",
                             auth=("u", info["mailchimp_api_key"])).json()
        assert lists["counts"]["lists"] == 0
    finally:
        proc.terminate()
        assert proc.wait(timeout=15) == 0


def _assert_problem_headers_only(response: requests.Response, status: int) -> None:
    assert response.status_code == status
    assert response.headers["Content-Type"] == PROBLEM
    assert response.json()["status"] == status
