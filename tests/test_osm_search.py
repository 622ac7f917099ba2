"""OpenStreetMap searches over the bundled extract, offline: first-start import, the API, JSON and CSV.

The daemons here run with the default test environment, in which Overpass
and Nominatim point at a closed loopback port: a fresh store with no Google
key and no internet.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

import pytest

from tests.helpers import DaemonProcess

ATTRIBUTION = "© OpenStreetMap contributors"
DENTISTS = {
    "node/4747221552",  # amenity=dentist
    "node/4858188394",
    "node/5865298900",  # amenity=dentist and healthcare=dentist
    "node/6049453031",
    "node/6139262587",
}


@pytest.fixture(scope="module")
def helsinki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    """One offline daemon on a fresh store; tests here only submit searches and read."""
    daemon = DaemonProcess(tmp_path_factory.mktemp("osm-offline")).start()
    yield daemon
    daemon.stop()


def search_leads(client, **search) -> tuple[dict, list[dict]]:
    done = client.wait_search(client.submit(**search)["id"])
    leads = client.get(f"/v1/searches/{done['id']}/leads", params={"limit": 500}).json()["items"]
    return done, leads


def test_first_start_imports_bundled_extract(helsinki):
    health = helsinki.client().get("/health/detailed").json()

    assert health["default_provider"] == "osm"
    assert health["dependencies"]["osm_data"] == "1309 leads from 1 import, data up to 2019-04-21"
    assert health["dependencies"]["overpass"] == "configured"
    finished = helsinki.events("osm_bundled_import_finished")
    assert len(finished) == 1
    assert finished[0]["counts"]["inserted"] == 1309
    ready = helsinki.events("daemon_ready")[0]
    assert ready["timestamp"] > finished[0]["timestamp"]


def test_cafe_near_helsinki_offline(helsinki):
    client = helsinki.client()

    search, leads = search_leads(client, query="cafe", location="Helsinki")

    assert search["state"] == "succeeded"
    assert search["provider"] == "osm"
    assert search["progress"]["leads_stored"] == 60
    assert any("Overpass failed" in warning for warning in search["warnings"])
    assert {lead["source"] for lead in leads} == {"osm"}
    assert {lead["attribution"] for lead in leads} == {ATTRIBUTION}
    cafes = [lead for lead in leads if lead["category"] == "amenity=cafe"]
    assert len(cafes) >= 50
    engel = next(lead for lead in leads if lead["place_id"] == "node/307465178")
    assert engel["name"] == "Cafe Engel"
    assert engel["phone"] == "+3589652776"
    assert engel["opening_hours"] == "Mo-Fr 08:00-21:00; Sa 09:00-21:00; Su 10:00-19:00"
    assert engel["maps_url"] == "https://www.openstreetmap.org/node/307465178"


def test_osm_leads_in_csv_carry_attribution(helsinki):
    client = helsinki.client()
    search, _ = search_leads(client, query="travel agency", location="Helsinki")

    response = client.get(f"/v1/searches/{search['id']}/leads", params={"format": "csv"})

    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert response.headers["Content-Type"].startswith("text/csv")
    assert rows
    assert {row["attribution"] for row in rows} == {ATTRIBUTION}
    aventura = next(row for row in rows if row["place_id"] == "node/4753386021")
    assert aventura["email"] == "info@aventura.fi"
    assert aventura["opening_hours"] == "Mo-Fr 9:00-17:00; PH off"
    assert aventura["category"] == "shop=travel_agency"
    assert aventura["phone"] == "+358401351001"


def test_dentist_finds_both_dentist_tags(helsinki):
    client = helsinki.client()

    search, leads = search_leads(client, query="dentists")

    assert search["state"] == "succeeded"
    assert {lead["place_id"] for lead in leads} == DENTISTS
    both = next(lead for lead in leads if lead["place_id"] == "node/5865298900")
    assert "healthcare=dentist" in both["types"]
    assert both["category"] == "amenity=dentist"


def test_search_restricted_to_area(helsinki):
    client = helsinki.client()
    square = client.get("/v1/geocode", params={"location": "Senaatintori", "provider": "osm"}).json()
    area = square["area"]

    near, near_leads = search_leads(client, query="restaurant", location="Senaatintori")
    anywhere, _ = search_leads(client, query="restaurant", max_results=500)

    assert square["geocoder"] == "osm"
    assert 0 < near["progress"]["leads_stored"] < anywhere["progress"]["leads_stored"]
    for lead in near_leads:
        assert area["south"] <= lead["location"]["latitude"] <= area["north"]
        assert area["west"] <= lead["location"]["longitude"] <= area["east"]


def test_search_matches_names_in_any_script(helsinki):
    client = helsinki.client()

    _, leads = search_leads(client, query="Phở")

    # A prefix match also finds "Dragon Phoenix"; the whole word ranks first.
    assert leads[0]["name"] == "Asian Wok And Grill Phở Việt"
    assert leads[0]["place_id"] == "node/1371747504"


def test_search_max_results_above_google_cap(helsinki):
    client = helsinki.client()

    search, leads = search_leads(client, query="restaurant", max_results=150, provider="osm")
    google = client.post("/v1/searches", json={"query": "restaurant", "max_results": 61, "provider": "places_new"})

    assert search["progress"]["leads_stored"] == 150
    assert search["progress"]["pages_fetched"] == 2
    assert len(leads) == 150
    assert google.status_code == 422
    assert google.json()["errors"][0]["pointer"] == "#/max_results"


def test_search_require_filters_in_store(helsinki):
    client = helsinki.client()

    search, leads = search_leads(client, query="restaurant", require=["phone", "website"], max_results=20)

    assert search["progress"]["leads_stored"] == 20
    assert all(lead["phone"] and lead["website"] for lead in leads)


def test_min_rating_warns_no_ratings(helsinki):
    client = helsinki.client()

    search, _ = search_leads(client, query="cafe", min_rating=4)

    assert search["progress"]["leads_stored"] == 0
    assert any("no ratings" in warning for warning in search["warnings"])


def test_unknown_location_offline_names_the_fix(leadd):
    client = leadd({"LEADD_NOMINATIM_URL": "", "LEADD_OVERPASS_URL": ""}, name="no-live").client()

    response = client.get("/v1/geocode", params={"location": "Austin, TX", "provider": "osm"})

    assert response.status_code == 404
    detail = response.json()["detail"]
    assert "Austin, TX" in detail
    assert "LEADD_NOMINATIM_URL" in detail
    assert "GOOGLE_PLACES_API_KEY" in detail


def test_unknown_location_offline_fails_clearly(helsinki):
    client = helsinki.client()

    search = client.wait_search(client.submit(query="cafe", location="Tampere")["id"])

    assert search["state"] == "failed"
    assert search["error"]["code"] == "nominatim_unreachable"
    assert "cannot reach Nominatim" in search["error"]["message"]
    assert "leadd import-osm" in search["error"]["message"]


def test_restart_does_not_import_again(leadd):
    first = leadd(name="store")
    first.stop()
    second = leadd(name="store")

    assert len(second.events("osm_bundled_import_started")) == 1  # the log file has both runs
    assert second.client().get("/health/detailed").json()["dependencies"]["osm_data"].startswith("1309 leads from 1 import")


def test_bundled_import_can_be_turned_off(leadd):
    daemon = leadd({"LEADD_OSM_IMPORT_BUNDLED": "false"})
    client = daemon.client()

    search = client.wait_search(client.submit(query="cafe")["id"])

    assert daemon.events("osm_bundled_import_started") == []
    assert client.get("/health/detailed").json()["dependencies"]["osm_data"] == "none imported"
    assert search["state"] == "failed"
    assert search["error"]["code"] == "osm_no_data"
    assert "leadd import-osm" in search["error"]["message"]


@pytest.mark.parametrize("text", ["kämp", "KÄMP", "kamp", "Kamp"])
def test_lead_filter_any_case_or_accent(helsinki, text):
    leads = helsinki.client().get("/v1/leads", params={"q": text, "limit": 500}).json()["items"]

    assert "Hotel Kämp" in {lead["name"] for lead in leads}
