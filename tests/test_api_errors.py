"""Every API error status, with its problem body; auth, CORS and request ids."""

from __future__ import annotations

import sqlite3
import threading

import pytest
import requests

from tests.helpers import API_TOKEN, GOOGLE_KEY, assert_no_secrets


def _problem(response: requests.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["title"]
    assert body["detail"]
    assert body["request_id"] == response.headers["X-Request-ID"]
    return body


@pytest.fixture
def api(leadd, google_env):
    return leadd(google_env).client()


def test_malformed_json_is_400(api):
    response = api.post("/v1/searches", data=b'{"query": "roofers",', headers={"Content-Type": "application/json"})
    body = _problem(response, 400, "malformed_json")
    assert "not valid JSON" in body["detail"]


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b'{"query": "cafe", "min_rating": NaN}', "NaN is not a JSON value"),
        (b'{"query": "cafe", "x": ' + b"[" * 20000 + b"]" * 20000 + b"}", "nested too deeply"),
    ],
    ids=["nan", "deep"],
)
def test_non_json_values_are_400(api, body, detail):
    response = api.post("/v1/searches", data=body, headers={"Content-Type": "application/json"})
    assert detail in _problem(response, 400, "malformed_json")["detail"]


@pytest.mark.parametrize("query", ["!!!", "\u200b", "\u2615", "* -"])
def test_query_without_words_is_422(api, query):
    body = _problem(api.post("/v1/searches", json={"query": query}), 422, "invalid_fields")
    assert body["errors"][0]["pointer"] == "#/query"
    assert "letter or a digit" in body["errors"][0]["detail"]


def test_huge_offset_and_nan_rating_are_422(api):
    offset = _problem(api.get("/v1/leads", params={"offset": str(2**63)}), 422, "invalid_fields")
    rating = _problem(api.get("/v1/leads", params={"min_rating": "nan"}), 422, "invalid_fields")
    assert offset["errors"][0]["parameter"] == "offset"
    assert rating["errors"][0]["parameter"] == "min_rating"
    assert "finite" in rating["errors"][0]["detail"]


def test_wrong_content_type_is_415(api):
    response = api.post("/v1/searches", data="query=roofers", headers={"Content-Type": "application/x-www-form-urlencoded"})
    _problem(response, 415, "unsupported_media_type")


def test_invalid_fields_listed_one_by_one(api):
    response = api.post(
        "/v1/searches",
        json={"query": "", "max_results": 61, "require": ["email"], "region": "USA", "colour": "red", "min_rating": "4"},
    )
    body = _problem(response, 422, "invalid_fields")
    pointers = {entry["pointer"] for entry in body["errors"]}
    assert pointers == {"#/query", "#/max_results", "#/require/0", "#/region", "#/colour", "#/min_rating"}
    assert next(e for e in body["errors"] if e["pointer"] == "#/colour")["detail"] == "unknown field"


def test_missing_query_is_422(api):
    body = _problem(api.post("/v1/searches", json={"location": "Austin, TX"}), 422, "invalid_fields")
    assert body["errors"] == [{"pointer": "#/query", "detail": "Field required"}]


def test_body_not_object_is_422(api):
    _problem(api.post("/v1/searches", json=["roofers"]), 422, "invalid_fields")


def test_invalid_query_parameters_are_422(api):
    body = _problem(api.get("/v1/leads", params={"limit": "0", "sort": "price", "colour": "red"}), 422, "invalid_fields")
    parameters = {entry["parameter"] for entry in body["errors"]}
    assert parameters == {"limit", "sort", "colour"}


def test_repeated_query_parameter_is_422(api):
    body = _problem(api.get("/v1/leads?limit=5&limit=6"), 422, "invalid_fields")
    assert body["errors"][0] == {"parameter": "limit", "detail": "given more than once"}


def test_unknown_ids_are_404(api):
    _problem(api.get("/v1/searches/5b0d2a4e-2f43-4d6e-9a3e-2d1b5c3f0a11"), 404, "search_not_found")
    _problem(api.get("/v1/searches/not-a-uuid"), 404, "search_not_found")
    _problem(api.get("/v1/searches/5b0d2a4e-2f43-4d6e-9a3e-2d1b5c3f0a11/leads"), 404, "search_not_found")
    _problem(api.delete("/v1/searches/5b0d2a4e-2f43-4d6e-9a3e-2d1b5c3f0a11"), 404, "search_not_found")
    _problem(api.get("/v1/leads/999"), 404, "lead_not_found")
    _problem(api.get("/v1/leads/abc"), 404, "lead_not_found")
    _problem(api.get("/v1/nothing-here"), 404, "not_found")


def test_wrong_method_is_405_with_allow(api):
    response = api.request("PUT", "/v1/searches")
    _problem(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"]


def test_body_over_limit_is_413(api):
    response = api.post("/v1/searches", data=b'{"query": "' + b"x" * 70_000 + b'"}', headers={"Content-Type": "application/json"})
    body = _problem(response, 413, "body_too_large")
    assert "65536" in body["detail"]


def test_provider_without_key_is_503(leadd):
    client = leadd().client()
    body = _problem(client.post("/v1/searches", json={"query": "roofers", "provider": "places_new"}), 503, "provider_not_configured")
    assert "GOOGLE_PLACES_API_KEY" in body["detail"]


def test_queue_full_is_429_with_retry_after(leadd, google_env, places_new):
    client = leadd(google_env | {"LEADD_MAX_CONCURRENT_SEARCHES": "1", "LEADD_MAX_QUEUED_SEARCHES": "1"}).client()
    places_new.configure(latency_s=1.0)

    first = client.submit(query="roofers")
    client.wait_search(first["id"], states=("running",))
    client.submit(query="plumbers")
    response = client.post("/v1/searches", json={"query": "electricians"})

    _problem(response, 429, "queue_full")
    assert int(response.headers["Retry-After"]) >= 1


def test_queue_of_zero_runs_or_refuses(leadd, google_env, places_new):
    client = leadd(google_env | {"LEADD_MAX_CONCURRENT_SEARCHES": "1", "LEADD_MAX_QUEUED_SEARCHES": "0"}).client()
    places_new.configure(latency_s=1.0)

    first = client.post("/v1/searches", json={"query": "roofers"})
    client.wait_search(first.json()["id"], states=("running",))
    second = client.post("/v1/searches", json={"query": "plumbers"})

    assert first.status_code == 202
    _problem(second, 429, "queue_full")


def test_internal_error_is_500_with_request_id_only(leadd, google_env):
    daemon = leadd(google_env)
    client = daemon.client()
    with sqlite3.connect(daemon.state_dir / "leadd.sqlite3") as conn:
        conn.execute("ALTER TABLE leads RENAME TO leads_gone")

    response = client.get("/v1/leads", headers={"X-Request-ID": "trace-500"})

    body = _problem(response, 500, "internal_error")
    assert body["request_id"] == "trace-500"
    assert "Traceback" not in response.text
    assert "leads_gone" not in response.text
    assert "sqlite" not in response.text.lower()
    errors = daemon.events("http_internal_error")
    assert errors[0]["request_id"] == "trace-500"
    assert "OperationalError" in errors[0]["exc_info"]


def test_token_required_on_v1_not_on_health(leadd, google_env):
    daemon = leadd(google_env | {"LEADD_API_TOKEN": API_TOKEN})
    anonymous = daemon.client(token="")
    anonymous.session.headers.pop("Authorization", None)

    missing = anonymous.get("/v1/searches")
    wrong = anonymous.get("/v1/searches", headers={"Authorization": "Bearer wrong-token-000000000"})
    allowed = daemon.client(token=API_TOKEN).get("/v1/searches")

    _problem(missing, 401, "unauthorized")
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    _problem(wrong, 401, "invalid_token")
    assert allowed.status_code == 200
    assert anonymous.get("/health").status_code == 200
    assert anonymous.get("/health/detailed").status_code == 200
    assert_no_secrets([missing.text, wrong.text, allowed.text], [API_TOKEN, GOOGLE_KEY])


def test_request_id_echoed_or_generated(api):
    echoed = api.get("/health", headers={"X-Request-ID": "client-abc.123"})
    unsafe = api.get("/health", headers={"X-Request-ID": "bad id\twith tab"})

    assert echoed.headers["X-Request-ID"] == "client-abc.123"
    assert unsafe.headers["X-Request-ID"] != "bad id\twith tab"
    assert len(unsafe.headers["X-Request-ID"]) == 32


def test_cors_only_for_listed_origins(leadd, google_env):
    client = leadd(google_env | {"LEADD_CORS_ORIGINS": "https://crm.example.com"}).client()

    allowed = client.get("/v1/leads", headers={"Origin": "https://crm.example.com"})
    other = client.get("/v1/leads", headers={"Origin": "https://evil.example.net"})
    # A streamed body sends its headers before the handler returns; a
    # problem body is built after the handler raised. Both get the headers.
    csv = client.get("/v1/leads?format=csv", headers={"Origin": "https://crm.example.com", "X-Request-ID": "csv-1"})
    missing = client.get("/v1/searches/nope", headers={"Origin": "https://crm.example.com"})
    preflight = client.request(
        "OPTIONS",
        "/v1/searches",
        headers={"Origin": "https://crm.example.com", "Access-Control-Request-Method": "POST"},
    )

    assert allowed.headers["Access-Control-Allow-Origin"] == "https://crm.example.com"
    assert "Access-Control-Allow-Origin" not in other.headers
    assert other.headers["Vary"] == "Origin"
    assert csv.headers["Access-Control-Allow-Origin"] == "https://crm.example.com"
    assert csv.headers["X-Request-ID"] == "csv-1"
    assert missing.status_code == 404
    assert missing.headers["Access-Control-Allow-Origin"] == "https://crm.example.com"
    assert missing.headers["X-Request-ID"] == missing.json()["request_id"]
    assert preflight.status_code == 204
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]


def test_idempotency_key_returns_same_search(api, places_new):
    headers = {"Idempotency-Key": "5f1c2a7e-retry-1"}
    first = api.post("/v1/searches", json={"query": "roofers", "max_results": 20}, headers=headers)
    again = api.post("/v1/searches", json={"query": "roofers", "max_results": 20}, headers=headers)
    other = api.post("/v1/searches", json={"query": "plumbers"}, headers=headers)

    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    _problem(other, 422, "idempotency_key_reused")
    api.wait_search(first.json()["id"])
    assert len(places_new.requests("search_text")) == 1
    assert api.get("/v1/searches").json()["total"] == 1


def test_cancel_keeps_leads_and_rejects_finished(api, places_new):
    places_new.configure(latency_s=0.6)
    search = api.submit(query="roofers")
    api.wait_search(search["id"], states=("running",))
    api.get(f"/v1/searches/{search['id']}")
    threading.Event().wait(0.9)  # at least the first page is stored

    cancelled = api.delete(f"/v1/searches/{search['id']}")
    again = api.delete(f"/v1/searches/{search['id']}")

    assert cancelled.status_code == 200
    assert cancelled.json()["state"] == "cancelled"
    assert again.status_code == 200
    kept = api.get(f"/v1/searches/{search['id']}/leads").json()["total"]
    assert kept >= 20
    places_new.configure(latency_s=0)
    done = api.wait_search(api.submit(query="plumbers", max_results=5)["id"])
    _problem(api.delete(f"/v1/searches/{done['id']}"), 409, "search_finished")
