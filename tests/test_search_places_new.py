"""Searches through Places API (New): paging, location, filters, storage, faults."""

from __future__ import annotations

import sqlite3

from leadd.providers.places_new import FIELD_MASK
from tests.helpers import GOOGLE_KEY
from tests.standins.google_places import load_fixture


def test_search_pages_until_token_absent(leadd, google_env, places_new):
    daemon = leadd(google_env)
    client = daemon.client()

    search = client.wait_search(client.submit(query="roofing contractors")["id"])

    assert search["state"] == "succeeded"
    assert search["progress"] == {"pages_fetched": 3, "places_found": 60, "leads_stored": 60}
    assert search["usage"]["calls"] == {"places_text_search": 3}
    requests = places_new.requests("search_text")
    assert len(requests) == 3
    assert "pageToken" not in requests[0].json
    assert requests[1].json["pageToken"]
    assert requests[2].json["pageToken"]
    leads = client.get(f"/v1/searches/{search['id']}/leads", params={"limit": 500}).json()
    assert leads["total"] == 60
    assert [lead["place_id"] for lead in leads["items"]] == places_new.catalogue_ids(60)


def test_search_request_shape(leadd, google_env, places_new):
    client = leadd(google_env).client()

    client.wait_search(client.submit(query="plumbers", language="en", region="us", min_rating=3.7)["id"])

    request = places_new.requests("search_text")[0]
    assert request.headers["X-Goog-Api-Key"] == GOOGLE_KEY
    assert request.headers["X-Goog-FieldMask"] == FIELD_MASK
    for field in ("places.id", "places.displayName", "places.nationalPhoneNumber", "places.websiteUri", "nextPageToken"):
        assert field in FIELD_MASK.split(",")
    assert request.json["textQuery"] == "plumbers"
    assert request.json["pageSize"] == 20
    assert request.json["includePureServiceAreaBusinesses"] is True
    assert request.json["languageCode"] == "en"
    assert request.json["regionCode"] == "US"
    assert request.json["minRating"] == 3.5


def test_search_stops_at_max_results(leadd, google_env, places_new):
    client = leadd(google_env).client()

    search = client.wait_search(client.submit(query="dentists", max_results=25)["id"])

    assert search["progress"]["leads_stored"] == 25
    assert len(places_new.requests("search_text")) == 2


def test_search_location_restricted_and_geocode_cached(leadd, google_env, places_new, google_maps):
    client = leadd(google_env).client()

    first = client.wait_search(client.submit(query="cafes", location="Sydney NSW")["id"])
    second = client.wait_search(client.submit(query="bakeries", location="  sydney   nsw ")["id"])

    rectangle = places_new.requests("search_text")[0].json["locationRestriction"]["rectangle"]
    assert rectangle == {
        "low": {"latitude": -34.118328, "longitude": 150.5209286},
        "high": {"latitude": -33.5782519, "longitude": 151.3429976},
    }
    assert len(google_maps.requests("geocode")) == 1
    assert first["usage"]["calls"]["geocoding"] == 1
    assert "geocoding" not in second["usage"]["calls"]


def test_search_unknown_location_fails_clearly(leadd, google_env, places_new):
    client = leadd(google_env).client()

    search = client.wait_search(client.submit(query="cafes", location="Nowhere Land")["id"])

    assert search["state"] == "failed"
    assert search["error"]["code"] == "geocoding_zero_results"
    assert "Nowhere Land" in search["error"]["message"]
    assert "Geocoding API found no match" in search["error"]["message"]
    assert places_new.requests("search_text") == []


def test_recorded_pizza_pages_replayed(leadd, google_env, places_new):
    client = leadd(google_env).client()

    search = client.wait_search(client.submit(query="pizza in New York")["id"])

    leads = client.get(f"/v1/searches/{search['id']}/leads").json()["items"]
    assert search["progress"]["leads_stored"] == 10
    assert leads[0]["place_id"] == "ChIJifIePKtZwokRVZ-UdRGkZzs"
    assert leads[0]["name"] is None  # the recorded mask had only ids


def test_leads_normalise_phone_and_domain(leadd, google_env, places_new):
    client = leadd(google_env).client()
    search = client.wait_search(client.submit(query="vegetarian", max_results=19)["id"])

    leads = {lead["place_id"]: lead for lead in client.get(f"/v1/searches/{search['id']}/leads").json()["items"]}

    spiced = leads["ChIJs5ydyTiuEmsR0fRSlU0C7k0"]
    assert spiced["phone"] == "+61433479794"
    assert spiced["phone_display"] == "+61 433 479 794"
    mother_chu = next(lead for lead in leads.values() if lead["name"] == "Mother Chu's Vegetarian Kitchen")
    assert mother_chu["website_domain"] == "motherchusvegetarian.com.au"
    assert mother_chu["attribution"] == "Google Maps"


def test_leads_upserted_across_searches(leadd, google_env, places_new):
    daemon = leadd(google_env)
    client = daemon.client()

    first = client.wait_search(client.submit(query="roofers", max_results=20)["id"])
    lead_before = client.get(f"/v1/searches/{first['id']}/leads", params={"limit": 1}).json()["items"][0]
    second = client.wait_search(client.submit(query="roofers", max_results=20)["id"])

    all_leads = client.get("/v1/leads").json()
    assert all_leads["total"] == 20
    lead_after = client.get(f"/v1/leads/{lead_before['id']}").json()
    assert sorted(lead_after["search_ids"]) == sorted([first["id"], second["id"]])
    assert lead_after["first_seen_at"] == lead_before["first_seen_at"]
    assert lead_after["last_seen_at"] > lead_before["last_seen_at"]
    with sqlite3.connect(daemon.state_dir / "leadd.sqlite3") as conn:
        rows, distinct = conn.execute("SELECT COUNT(*), COUNT(DISTINCT source || place_id) FROM leads").fetchone()
    assert rows == distinct == 20


def test_filters_require_and_min_rating(leadd, google_env, places_new):
    client = leadd(google_env).client()

    with_website = client.wait_search(client.submit(query="shops", max_results=19, require=["website"])["id"])
    rated = client.wait_search(client.submit(query="shops", max_results=19, min_rating=4)["id"])

    assert with_website["progress"]["places_found"] == 19
    assert with_website["progress"]["leads_stored"] == 2
    # The documentation examples carry no rating, so none passes min_rating.
    assert rated["progress"]["leads_stored"] == 0


def test_transient_errors_retried(leadd, google_env, places_new):
    client = leadd(google_env | {"LEADD_UPSTREAM_MAX_RETRIES": "4"}).client()
    rate_limited = load_fixture("google-errors", "google_error_429_resource_exhausted.json")
    places_new.add_fault("search_text", "status", status=503)
    places_new.add_fault("search_text", "status", status=429, body=rate_limited, headers={"Retry-After": "0"})
    places_new.add_fault("search_text", "malformed")
    places_new.add_fault("search_text", "drop")

    search = client.wait_search(client.submit(query="roofers", max_results=20)["id"])

    assert search["state"] == "succeeded"
    assert search["progress"]["leads_stored"] == 20
    assert len(places_new.requests("search_text")) == 5


def test_timeout_retried(leadd, google_env, places_new):
    daemon = leadd(google_env | {"LEADD_UPSTREAM_TIMEOUT_S": "0.5"})
    client = daemon.client()
    places_new.add_fault("search_text", "delay", seconds=1.5)

    search = client.wait_search(client.submit(query="roofers", max_results=20)["id"])

    assert search["state"] == "succeeded"
    retries = daemon.events("upstream_retry")
    assert retries[0]["upstream_status"] == "TIMEOUT"


def test_retries_exhausted_keep_found_leads(leadd, google_env, places_new):
    client = leadd(google_env | {"LEADD_UPSTREAM_MAX_RETRIES": "2"}).client()
    places_new.add_fault("search_text", "delay", seconds=0)  # page 1 passes
    places_new.add_fault("search_text", "status", count=3, status=500)

    search = client.wait_search(client.submit(query="roofers")["id"])

    assert search["state"] == "failed"
    assert search["error"]["code"] == "places_new_500"
    # The stand-in's 500 has no Google error object: the status alone, once.
    assert "Places API (New) returned HTTP 500" in search["error"]["message"]
    assert search["error"]["message"].count("500") == 1, search["error"]["message"]
    assert search["progress"]["leads_stored"] == 20
    assert client.get(f"/v1/searches/{search['id']}/leads").json()["total"] == 20
    assert len(places_new.requests("search_text")) == 4


def test_permission_denied_not_retried(leadd, google_env, places_new):
    client = leadd(google_env).client()
    places_new.configure(api_key="AIzaAnotherKeyThatDoesNotMatch000000000")

    search = client.wait_search(client.submit(query="roofers")["id"])

    assert search["state"] == "failed"
    assert search["error"]["code"] == "places_new_permission_denied"
    assert "Places API (New) is enabled" in search["error"]["message"]
    assert len(places_new.requests("search_text")) == 1


def test_invalid_argument_not_retried(leadd, google_env, places_new):
    client = leadd(google_env).client()
    invalid = load_fixture("google-errors", "google_error_400_invalid_argument.json")
    places_new.add_fault("search_text", "status", status=400, body=invalid)

    search = client.wait_search(client.submit(query="roofers")["id"])

    assert search["error"]["code"] == "places_new_invalid_argument"
    assert "Address not supported." in search["error"]["message"]
    assert len(places_new.requests("search_text")) == 1
