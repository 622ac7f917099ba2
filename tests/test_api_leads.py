"""Lead lists: filters, sorting, pagination, CSV export, user edits; health endpoints."""

from __future__ import annotations

import csv
import http.client
import io
import json
import socket
import sqlite3

import pytest
from aiohttp.test_utils import make_mocked_request

from leadd.api.csv_export import CSV_COLUMNS, _cell, wants_csv
from tests.helpers import wait_for


@pytest.fixture
def loaded(leadd, google_env, places_new):
    daemon = leadd(google_env)
    client = daemon.client()
    search = client.wait_search(client.submit(query="vegetarian", max_results=40)["id"])
    return daemon, client, search


def test_pagination_follows_next(loaded):
    _, client, _ = loaded
    seen = []
    url = "/v1/leads?limit=15"
    while url:
        page = client.get(url).json()
        seen += [lead["id"] for lead in page["items"]]
        url = page["next"]

    assert len(seen) == len(set(seen)) == 40


def test_filters_and_sort(loaded):
    _, client, search = loaded

    with_phone = client.get("/v1/leads", params={"has_phone": "true"}).json()
    with_site = client.get("/v1/leads", params={"has_website": "true"}).json()
    text = client.get("/v1/leads", params={"q": "barangaroo"}).json()
    by_name = client.get("/v1/leads", params={"sort": "name", "limit": 500}).json()["items"]
    in_order = client.get(f"/v1/searches/{search['id']}/leads", params={"limit": 500}).json()["items"]

    assert with_phone["total"] == 3  # one documented place with phones, in 3 catalogue rounds
    assert all(lead["phone"] for lead in with_phone["items"])
    assert with_site["total"] == 5
    assert text["total"] == 3 and all("Barangaroo" in lead["name"] for lead in text["items"])
    names = [lead["name"].lower() for lead in by_name if lead["name"]]
    assert names == sorted(names)
    assert [lead["place_id"] for lead in in_order][:2] == ["ChIJs5ydyTiuEmsR0fRSlU0C7k0", "StandInDocExample01"]


def test_sort_position_only_for_a_search(loaded):
    _, client, _ = loaded

    response = client.get("/v1/leads", params={"sort": "position"})

    assert response.status_code == 422
    assert response.json()["errors"][0]["parameter"] == "sort"


def test_csv_export_streams_all_with_header(loaded):
    _, client, search = loaded

    by_param = client.get(f"/v1/searches/{search['id']}/leads", params={"format": "csv"})
    by_accept = client.get("/v1/leads", headers={"Accept": "text/csv"})

    for response in (by_param, by_accept):
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/csv")
        assert "attachment" in response.headers["Content-Disposition"]
        rows = list(csv.DictReader(io.StringIO(response.text)))
        assert len(rows) == 40
        assert list(rows[0]) == [name for name, _ in CSV_COLUMNS]
        assert {row["attribution"] for row in rows} == {"Google Maps"}
    spiced = next(row for row in csv.DictReader(io.StringIO(by_param.text)) if row["name"] == "Spiced @ Barangaroo")
    assert spiced["phone"] == "+61433479794"


def test_csv_head_then_get_same_connection(loaded):
    daemon, _, _ = loaded
    connection = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=10)

    connection.request("HEAD", "/v1/leads?format=csv")
    head = connection.getresponse()
    head_body = head.read()
    # A body sent after the HEAD response would be read as the next status line.
    connection.request("GET", "/health")
    health = connection.getresponse()
    health_body = json.loads(health.read())
    connection.close()

    assert head.status == 200
    assert head.getheader("Content-Type").startswith("text/csv")
    assert head_body == b""
    assert health.status == 200
    assert health_body["ok"] is True


def test_csv_client_gone_is_no_error(leadd, google_env, places_new):
    daemon = leadd(google_env)
    client = daemon.client()
    client.wait_search(client.submit(query="vegetarian", max_results=40)["id"])
    # Make the export far larger than the socket buffers, then read only its start.
    with sqlite3.connect(daemon.state_dir / "leadd.sqlite3") as conn:
        conn.execute(
            "WITH RECURSIVE n(value) AS (SELECT 1 UNION ALL SELECT value + 1 FROM n WHERE value < 20000)"
            " INSERT INTO leads (source, place_id, name, address, first_seen_at, last_seen_at)"
            " SELECT 'google', 'copy-' || value, 'Copy ' || value, printf('%0500d', value), '2026-01-01', '2026-01-01'"
            " FROM n"
        )
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as sock:
        sock.sendall(b"GET /v1/leads?format=csv HTTP/1.1\r\nHost: x\r\nX-Request-ID: gone-1\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")

    interrupted = wait_for(lambda: daemon.events("csv_export_interrupted"), what="the interrupted export line")
    access = wait_for(
        lambda: [r for r in daemon.events("http_request") if r.get("request_id") == "gone-1"], what="the access line"
    )
    assert interrupted[0]["request_id"] == "gone-1"
    assert access[0]["status"] == 200
    assert daemon.events("http_internal_error") == []


@pytest.mark.parametrize(
    ("accept", "csv_wanted"),
    [
        ("text/csv", True),
        ("text/csv, application/json;q=0.1", True),
        ("application/json, text/csv", False),
        ("text/csv;q=0.5, application/json", False),
        ("application/json;q=0.5, text/csv;q=0.9", True),
        ("text/csv;q=0", False),
        ("*/*", False),
        ("", False),
    ],
)
def test_accept_header_q_values(accept, csv_wanted):
    request = make_mocked_request("GET", "/v1/leads", headers={"Accept": accept})

    assert wants_csv(request, None) is csv_wanted


def test_csv_byte_order_mark_on_request(loaded):
    _, client, _ = loaded

    plain = client.get("/v1/leads", params={"format": "csv"})
    for_excel = client.get("/v1/leads", params={"format": "csv", "bom": "true"})

    assert not plain.content.startswith(b"\xef\xbb\xbf")
    assert for_excel.content.startswith(b"\xef\xbb\xbf")
    assert for_excel.content[3:] == plain.content


def test_csv_honours_explicit_limit(loaded):
    _, client, _ = loaded

    response = client.get("/v1/leads", params={"format": "csv", "limit": "7", "offset": "3"})

    assert len(list(csv.DictReader(io.StringIO(response.text)))) == 7


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("-2+3", "'-2+3"),
        ("+1 (512) 555-0100", "+1 (512) 555-0100"),
        ("+61433479794", "+61433479794"),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("Plain Name", "Plain Name"),
        (4.5, 4.5),
        (None, ""),
    ],
)
def test_csv_cells_cannot_become_formulas(value, written):
    assert _cell(value) == written


def test_patch_lead_user_fields(loaded):
    _, client, _ = loaded
    lead = client.get("/v1/leads", params={"limit": 1}).json()["items"][0]

    updated = client.patch(f"/v1/leads/{lead['id']}", json={"status": "qualified", "tags": ["roof", "q3", "roof"], "notes": "ask for Sam"})
    partial = client.patch(f"/v1/leads/{lead['id']}", json={"notes": None})
    filtered = client.get("/v1/leads", params={"status": "qualified"}).json()

    assert updated.status_code == 200
    assert updated.json()["status"] == "qualified"
    assert updated.json()["tags"] == ["roof", "q3"]
    assert partial.json()["notes"] is None
    assert partial.json()["status"] == "qualified"
    assert [item["id"] for item in filtered["items"]] == [lead["id"]]


@pytest.mark.parametrize(
    "body",
    [{"status": "won"}, {"status": None}, {"tags": ["x" * 51]}, {"name": "renamed"}, {"notes": 5}],
)
def test_patch_lead_rejects_invalid(loaded, body):
    _, client, _ = loaded
    lead_id = client.get("/v1/leads", params={"limit": 1}).json()["items"][0]["id"]

    response = client.patch(f"/v1/leads/{lead_id}", json=body)

    assert response.status_code == 422
    assert response.json()["code"] == "invalid_fields"


def test_health_detailed_reports_dependencies(loaded):
    _, client, _ = loaded

    body = client.get("/health/detailed").json()

    assert body["api"] == "ok"
    assert body["dependencies"]["database"] == "ok"
    assert body["dependencies"]["google_places"] == "configured"
    assert body["dependencies"]["python_modules"] == "ok"
    assert body["queue"]["max_concurrent"] == 2
    assert body["uptime_s"] > 0


def test_health_detailed_503_when_store_unusable(loaded):
    daemon, client, _ = loaded
    with sqlite3.connect(daemon.state_dir / "leadd.sqlite3") as conn:
        conn.execute("ALTER TABLE searches RENAME TO searches_gone")

    detailed = client.get("/health/detailed")
    simple = client.get("/health")

    assert detailed.status_code == 503
    assert detailed.json()["dependencies"]["database"] == "error"
    assert detailed.json()["api"] == "degraded"
    assert simple.status_code == 200
