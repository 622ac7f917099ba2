"""Live OpenStreetMap sources through stand-ins: Overpass outside the imported area, Nominatim, faults."""

from __future__ import annotations

import re

from leadd import __version__
from leadd.osm.tags import lead_tags
from leadd.providers.osm import OsmGeocoder
from tests.standins.nominatim import load_body

USER_AGENT = f"leadd/{__version__} (leadd-tests@example.com)"
# boundingbox of Frankfurt am Main, the first result of the recorded body.
FRANKFURT_BBOX = "[bbox:50.0153529,8.4727605,50.2271424,8.8004049]"


def business_ids(elements: list[dict]) -> set[str]:
    return {f"{e['type']}/{e['id']}" for e in elements if lead_tags(e["type"], e["tags"])}


def test_overpass_searched_beyond_extract(leadd, osm_env, overpass):
    client = leadd(osm_env).client()

    search = client.wait_search(client.submit(query="cafe", location="Helsinki")["id"])

    leads = client.get(f"/v1/searches/{search['id']}/leads", params={"limit": 500}).json()["items"]
    [request] = overpass.requests("interpreter")
    [query] = overpass.answered_queries
    answered = overpass.evaluate(query)
    assert search["state"] == "succeeded"
    assert search["warnings"] == []
    assert search["usage"]["calls"] == {"overpass": 1}
    assert request.headers["User-Agent"] == USER_AGENT
    assert query.startswith("[out:json][timeout:5][bbox:")
    assert '  nwr["amenity"="cafe"]["name"];' in query.splitlines()
    assert query.endswith("out tags center 120;")
    assert search["progress"]["leads_stored"] == 60
    assert {lead["place_id"] for lead in leads} <= business_ids(answered)
    assert {lead["attribution"] for lead in leads} == {"© OpenStreetMap contributors"}
    tagged = ["amenity=cafe" in lead["types"] for lead in leads]
    assert tagged == sorted(tagged, reverse=True)  # tag matches before name matches
    assert tagged[0]


def test_overpass_dentist_query_both_tags(leadd, osm_env, overpass):
    client = leadd(osm_env).client()

    search = client.wait_search(client.submit(query="dentist", location="Helsinki")["id"])

    [query] = overpass.answered_queries
    assert '  nwr["amenity"="dentist"]["name"];' in query.splitlines()
    assert '  nwr["healthcare"="dentist"]["name"];' in query.splitlines()
    assert search["progress"]["leads_stored"] == 5


def test_overpass_429_honours_retry_after(leadd, osm_env, overpass):
    client = leadd(osm_env).client()
    overpass.add_fault("interpreter", "status", status=429, headers={"Retry-After": "1"})

    search = client.wait_search(client.submit(query="bakery", location="Helsinki")["id"])

    requests = overpass.requests("interpreter")
    assert search["state"] == "succeeded"
    assert search["warnings"] == []
    assert search["usage"]["calls"] == {"overpass": 1}
    assert len(requests) == 2
    assert requests[1].at - requests[0].at >= 0.9


def test_overpass_504_retried(leadd, osm_env, overpass):
    daemon = leadd(osm_env)
    client = daemon.client()
    overpass.add_fault("interpreter", "status", count=2, status=504)

    search = client.wait_search(client.submit(query="bakery", location="Helsinki")["id"])

    assert search["state"] == "succeeded"
    assert len(overpass.requests("interpreter")) == 3
    retries = daemon.events("upstream_retry")
    assert [retry["upstream_status"] for retry in retries] == ["GATEWAY_TIMEOUT", "GATEWAY_TIMEOUT"]


def test_overpass_timeout_retried(leadd, osm_env, overpass):
    daemon = leadd(osm_env | {"LEADD_OVERPASS_TIMEOUT_S": "1", "LEADD_UPSTREAM_TIMEOUT_S": "1"})
    client = daemon.client()
    overpass.add_fault("interpreter", "delay", seconds=2.5)

    search = client.wait_search(client.submit(query="bakery", location="Helsinki")["id"])

    assert search["state"] == "succeeded"
    assert "[timeout:1]" in overpass.answered_queries[-1]
    assert daemon.events("upstream_retry")[0]["upstream_status"] == "TIMEOUT"


def test_overpass_failure_falls_back_locally(leadd, osm_env, overpass):
    daemon = leadd(osm_env | {"LEADD_UPSTREAM_MAX_RETRIES": "2"})
    client = daemon.client()
    overpass.add_fault("interpreter", "status", count=3, status=504)

    search = client.wait_search(client.submit(query="cafe", location="Helsinki")["id"])

    assert search["state"] == "succeeded"
    assert len(overpass.requests("interpreter")) == 3
    assert any("Overpass failed (Overpass returned HTTP 504)" in warning for warning in search["warnings"])
    assert search["progress"]["leads_stored"] == 60
    assert "overpass" not in search["usage"]["calls"]
    assert daemon.events("overpass_fallback")[0]["upstream_status"] == "GATEWAY_TIMEOUT"


def test_nominatim_geocodes_place_outside_gazetteer(leadd, osm_env, overpass, nominatim):
    client = leadd(osm_env).client()

    search = client.wait_search(client.submit(query="cafe", location="Frankfurt, Germany", language="de")["id"])

    [geocode] = nominatim.requests("search")
    assert geocode.headers["User-Agent"] == USER_AGENT
    assert geocode.query["q"] == "Frankfurt, Germany"
    assert geocode.query["format"] == "jsonv2"
    assert geocode.query["accept-language"] == "de"
    assert overpass.answered_queries[0].startswith(f"[out:json][timeout:5]{FRANKFURT_BBOX};")
    assert search["state"] == "succeeded"
    assert search["progress"]["leads_stored"] == 0  # the stand-in only has Helsinki
    assert search["usage"]["calls"] == {"nominatim": 1, "overpass": 1}
    assert search["usage"]["billed_calls"] == 0


def test_nominatim_area_cached_via_geocode(leadd, osm_env, nominatim):
    client = leadd(osm_env).client()

    first = client.get("/v1/geocode", params={"location": "Ottawa, Ontario", "provider": "osm"}).json()
    second = client.get("/v1/geocode", params={"location": "ottawa,  ontario", "provider": "osm"}).json()

    recorded = load_body("ottawa, ontario")[0]
    south, north, west, east = (float(value) for value in recorded["boundingbox"])
    assert first["geocoder"] == "osm"
    assert first["area"]["south"] == south
    assert first["area"]["north"] == north
    assert first["area"]["west"] == west
    assert first["area"]["east"] == east
    assert first["area"]["country_code"] == "CA"
    assert first["cached"] is False
    assert second["cached"] is True
    assert len(nominatim.requests("search")) == 1


def test_gazetteer_answers_before_nominatim(leadd, osm_env, nominatim):
    client = leadd(osm_env).client()

    helsinki = client.get("/v1/geocode", params={"location": "Helsingfors, Finland", "provider": "osm"}).json()

    assert nominatim.requests("search") == []
    assert helsinki["area"]["label"] == "Helsingfors (city, OpenStreetMap)"
    assert helsinki["area"]["south"] < 60.1674098 < helsinki["area"]["north"]
    assert helsinki["area"]["country_code"] == "FI"


def test_nominatim_requests_spaced_one_second(leadd, osm_env, overpass, nominatim):
    client = leadd(osm_env | {"LEADD_MAX_CONCURRENT_SEARCHES": "2"}).client()

    first = client.submit(query="cafe", location="Frankfurt, Germany")
    second = client.submit(query="cafe", location="Ottawa, Ontario")
    client.wait_search(first["id"])
    client.wait_search(second["id"])

    requests = nominatim.requests("search")
    assert len(requests) == 2
    assert requests[1].at - requests[0].at >= 0.9


def test_nominatim_429_retried(leadd, osm_env, overpass, nominatim):
    client = leadd(osm_env).client()
    nominatim.add_fault("search", "status", status=429, headers={"Retry-After": "0"})

    search = client.wait_search(client.submit(query="cafe", location="Ottawa, Ontario")["id"])

    assert search["state"] == "succeeded"
    assert search["usage"]["calls"]["nominatim"] == 1  # the call that succeeded, as for Google
    assert len(nominatim.requests("search")) == 2


def test_nominatim_no_match_fails_search(leadd, osm_env, overpass, nominatim):
    client = leadd(osm_env).client()

    search = client.wait_search(client.submit(query="cafe", location="Nowhere Land")["id"])

    assert search["state"] == "failed"
    assert search["error"]["code"] == "geocoding_zero_results"
    assert overpass.requests("interpreter") == []


def test_overpass_stopped_query_not_retried(leadd, osm_env, overpass, nominatim):
    client = leadd(osm_env).client()
    # Overpass returns HTTP 200 with a runtime error remark for a query that
    # ran past [timeout:N]. This body has the fields of such a response.
    stopped = {
        "version": 0.6,
        "generator": "Overpass API",
        "osm3s": {
            "timestamp_osm_base": "2019-04-21T09:50:14Z",
            "copyright": "The data included in this document is from www.openstreetmap.org. "
            "The data is made available under ODbL.",
        },
        "elements": [],
        "remark": 'runtime error: Query timed out in "query" at line 4 after 2 seconds.',
    }
    overpass.add_fault("interpreter", "status", status=200, body=stopped)

    search = client.wait_search(client.submit(query="cafe", location="Ottawa, Ontario")["id"])

    assert search["state"] == "failed"
    assert search["error"]["code"] == "overpass_runtime_error"
    assert "LEADD_OVERPASS_TIMEOUT_S" in search["error"]["message"]
    assert len(overpass.requests("interpreter")) == 1


def test_overpass_rejection_outside_coverage_fails(leadd, osm_env, overpass, nominatim):
    client = leadd(osm_env).client()
    overpass.add_fault("interpreter", "status", status=400)

    search = client.wait_search(client.submit(query="cafe", location="Ottawa, Ontario")["id"])

    assert search["state"] == "failed"
    assert search["error"]["code"] == "overpass_400"
    assert re.search(r"HTTP 400", search["error"]["message"])
    assert len(overpass.requests("interpreter")) == 1


def test_location_miss_hint_fits_settings():
    without_google = OsmGeocoder(None, None, google_configured=False).miss_hint  # type: ignore[arg-type]
    with_google = OsmGeocoder(None, None, google_configured=True).miss_hint  # type: ignore[arg-type]

    assert "GOOGLE_PLACES_API_KEY" in without_google
    assert "GOOGLE_PLACES_API_KEY" not in with_google
    assert '"provider": "places_new"' in with_google
