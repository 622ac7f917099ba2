"""Searches through the legacy Places API, via the real googlemaps client; and /v1/geocode."""

from __future__ import annotations

from tests.helpers import GOOGLE_KEY
from tests.standins.google_maps import GoogleMapsStandIn
from tests.standins.google_places import load_fixture


def test_legacy_search_pages_with_details(leadd, google_env, google_maps):
    client = leadd(google_env).client()

    search = client.wait_search(client.submit(query="pizza in New York", provider="places_legacy")["id"])

    assert search["state"] == "succeeded"
    assert search["progress"] == {"pages_fetched": 3, "places_found": 41, "leads_stored": 41}
    assert search["usage"]["calls"] == {"places_text_search": 3, "place_details": 41}
    pages = google_maps.requests("textsearch")
    assert [page.query.get("pagetoken") is None for page in pages[:1]] == [True]
    assert all(page.query["key"] == GOOGLE_KEY for page in pages)
    leads = client.get(f"/v1/searches/{search['id']}/leads", params={"limit": 500}).json()["items"]
    expected = GoogleMapsStandIn.page_place_ids(0) + GoogleMapsStandIn.page_place_ids(1) + GoogleMapsStandIn.page_place_ids(2)
    assert [lead["place_id"] for lead in leads] == expected
    details = load_fixture("google-legacy", "legacy_place_details.json")["result"]
    assert leads[0]["phone_display"] == details["international_phone_number"]
    assert leads[0]["website"] == details["website"]


def test_legacy_details_only_for_kept_ratings(leadd, google_env, google_maps):
    client = leadd(google_env).client()

    search = client.wait_search(client.submit(query="pizza", provider="places_legacy", min_rating=4.5)["id"])

    rated = [
        place["place_id"]
        for page in range(3)
        for place in GoogleMapsStandIn.page_results(page)
        if (place.get("rating") or 0) >= 4.5
    ]
    assert search["state"] == "succeeded"
    assert 0 < len(rated) < 41
    assert search["usage"]["calls"]["place_details"] == len(rated)
    assert sorted(r.query["placeid"] for r in google_maps.requests("details")) == sorted(rated)


def test_legacy_token_not_yet_valid_is_retried(leadd, google_env, google_maps):
    client = leadd(google_env).client()
    google_maps.configure(token_delay_s=0.6)  # leadd waits 0.25 s, so its first try is too early

    search = client.wait_search(client.submit(query="pizza", provider="places_legacy", max_results=40)["id"])

    assert search["state"] == "succeeded"
    assert search["progress"]["leads_stored"] == 40
    token_requests = [r for r in google_maps.requests("textsearch") if "pagetoken" in r.query]
    assert len(token_requests) >= 2
    assert search["usage"]["calls"]["places_text_search"] == 2


def test_legacy_location_keeps_results_inside_viewport(leadd, google_env, google_maps):
    client = leadd(google_env).client()

    search = client.wait_search(client.submit(query="pubs", location="Sydney", provider="places_legacy")["id"])

    # Page 1 is New York pizza (outside the Sydney viewport); pages 2 and 3 are in Sydney.
    assert search["progress"]["leads_stored"] == 21
    first = google_maps.requests("textsearch")[0]
    assert first.query["location"].startswith("-33.8")
    assert 0 < int(first.query["radius"]) <= 50_000


def test_legacy_over_query_limit_retried_by_leadd(leadd, google_env, google_maps):
    client = leadd(google_env).client()
    over_limit = load_fixture("google-legacy", "legacy_over_query_limit.json")
    google_maps.add_fault("textsearch", "status", count=2, status=200, body=over_limit)

    search = client.wait_search(client.submit(query="pizza", provider="places_legacy", max_results=5)["id"])

    assert search["state"] == "succeeded"
    assert len(google_maps.requests("textsearch")) == 3


def test_legacy_request_denied_fails_with_hint(leadd, google_env, google_maps):
    client = leadd(google_env).client()
    google_maps.api_key = "AIzaSomeOtherKey0000000000000000000000"

    search = client.wait_search(client.submit(query="pizza", provider="places_legacy")["id"])

    assert search["state"] == "failed"
    assert search["error"]["code"] == "places_legacy_request_denied"
    assert "billing" in search["error"]["message"]
    assert len(google_maps.requests("textsearch")) == 1


def test_legacy_server_errors_bounded(leadd, google_env, google_maps):
    daemon = leadd(google_env | {"LEADD_UPSTREAM_TIMEOUT_S": "1", "LEADD_UPSTREAM_MAX_RETRIES": "1"})
    client = daemon.client()
    google_maps.add_fault("textsearch", "status", count=50, status=503)

    search = client.wait_search(client.submit(query="pizza", provider="places_legacy")["id"], timeout=30)

    assert search["state"] == "failed"
    # googlemaps retries 5xx itself until retry_timeout (the upstream
    # timeout); leadd then retries once more.
    assert search["error"]["code"] == "places_legacy_timeout"
    assert len(google_maps.requests("textsearch")) < 50


def test_geocode_endpoint_caches(leadd, google_env, google_maps):
    client = leadd(google_env).client()

    first = client.get("/v1/geocode", params={"location": "Sydney"})
    second = client.get("/v1/geocode", params={"location": "sydney"})
    missing = client.get("/v1/geocode", params={"location": "Nowhere Land"})

    assert first.status_code == 200
    assert first.json()["cached"] is False
    assert first.json()["area"]["country_code"] == "AU"
    assert second.json()["cached"] is True
    assert missing.status_code == 404
    assert missing.json()["code"] == "location_not_found"
    assert len(google_maps.requests("geocode")) == 2


def test_geocode_endpoint_upstream_failure_is_502(leadd, google_env, google_maps):
    client = leadd(google_env | {"LEADD_UPSTREAM_MAX_RETRIES": "0"}).client()
    google_maps.api_key = "AIzaSomeOtherKey0000000000000000000000"

    response = client.get("/v1/geocode", params={"location": "Sydney"})

    assert response.status_code == 502
    assert response.json()["code"] == "geocoding_request_denied"
    assert "Geocoding API" in response.json()["detail"]
