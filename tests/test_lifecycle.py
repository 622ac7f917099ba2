"""Crash and shutdown: kill -9 mid-search, SIGTERM with requests in flight, restarts that resume."""

from __future__ import annotations

import signal
import socket
import sqlite3
import threading
import time

import pytest
import requests

from tests.helpers import DaemonProcess, wait_for


def _lead_ids(daemon: DaemonProcess) -> tuple[list[str], int]:
    with sqlite3.connect(daemon.state_dir / "leadd.sqlite3") as conn:
        place_ids = [row[0] for row in conn.execute("SELECT place_id FROM leads ORDER BY id")]
        links = conn.execute("SELECT COUNT(*) FROM search_leads").fetchone()[0]
    return place_ids, links


def _kill_after_first_page(leadd, env, places_new, name: str, query: str) -> tuple[DaemonProcess, dict]:
    """Start a slow 60-result search, wait until its first page is stored, then kill -9 the daemon."""
    daemon = leadd(env | {"LEADD_MAX_CONCURRENT_SEARCHES": "1"}, name=name)
    client = daemon.client()
    places_new.configure(latency_s=0.4)
    search = client.submit(query=query)
    wait_for(
        lambda: client.get(f"/v1/searches/{search['id']}").json()["progress"]["leads_stored"] >= 20,
        what="the first page to be stored",
    )
    daemon.kill()
    return daemon, search


def test_kill_9_mid_search_resumes_without_duplicates(leadd, google_env, places_new):
    daemon, search = _kill_after_first_page(leadd, google_env, places_new, "crash", "roofing contractors")

    before_restart = len(places_new.requests("search_text"))
    restarted = DaemonProcess(daemon.workdir, env=daemon.env, port=daemon.port).start()
    try:
        done = restarted.client().wait_search(search["id"], timeout=30)
    finally:
        restarted.stop()

    assert done["state"] == "succeeded"
    assert done["attempts"] == 2
    assert done["progress"]["leads_stored"] == 60
    place_ids, links = _lead_ids(restarted)
    assert sorted(place_ids) == sorted(places_new.catalogue_ids(60))
    assert len(place_ids) == len(set(place_ids))
    assert links == 60
    # The resumed run continued from the saved page token instead of page 1.
    resumed_first = places_new.requests("search_text")[before_restart]
    assert resumed_first.json.get("pageToken")
    assert restarted.events("search_resumed")


def test_resume_with_expired_token_starts_over(leadd, google_env, places_new):
    daemon, search = _kill_after_first_page(leadd, google_env, places_new, "expired", "plumbers")
    places_new.expire_tokens()
    places_new.configure(latency_s=0)
    restarted = DaemonProcess(daemon.workdir, env=daemon.env, port=daemon.port).start()
    try:
        done = restarted.client().wait_search(search["id"], timeout=30)
    finally:
        restarted.stop()

    assert done["state"] == "succeeded"
    assert done["progress"] == {"pages_fetched": 3, "places_found": 60, "leads_stored": 60}
    place_ids, links = _lead_ids(restarted)
    assert len(place_ids) == len(set(place_ids)) == 60
    assert links == 60
    assert restarted.events("page_token_restart")


def test_sigterm_leaves_running_search_resumable(leadd, google_env, places_new):
    daemon = leadd(google_env, name="term")
    client = daemon.client()
    places_new.configure(latency_s=0.5)
    search = client.submit(query="electricians")
    client.wait_search(search["id"], states=("running",))

    status = daemon.stop()

    assert status == 0
    with sqlite3.connect(daemon.state_dir / "leadd.sqlite3") as conn:
        state = conn.execute("SELECT state FROM searches WHERE id = ?", (search["id"],)).fetchone()[0]
    assert state == "running"
    assert daemon.events("search_interrupted")
    assert daemon.events("daemon_stopped")
    places_new.configure(latency_s=0)
    restarted = DaemonProcess(daemon.workdir, env=daemon.env, port=daemon.port).start()
    try:
        assert restarted.client().wait_search(search["id"])["state"] == "succeeded"
    finally:
        restarted.stop()


def test_sigterm_lets_in_flight_request_finish(leadd, google_env, google_maps):
    daemon = leadd(google_env, name="inflight")
    google_maps.add_fault("geocode", "delay", seconds=1.5)
    results: list[requests.Response] = []

    def slow_request() -> None:
        results.append(requests.get(daemon.url + "/v1/geocode", params={"location": "Sydney"}, timeout=10))

    worker = threading.Thread(target=slow_request)
    worker.start()
    wait_for(lambda: google_maps.requests("geocode"), what="the geocode call to reach the stand-in")
    daemon.signal(signal.SIGTERM)
    time.sleep(0.3)
    refused = _connect_refused(daemon.port)
    worker.join(10)
    status = daemon.stop()

    assert refused, "the daemon still accepted connections after SIGTERM"
    assert results and results[0].status_code == 200
    assert status == 0


def _connect_refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except OSError:
        return True


def test_bad_config_exits_78_before_binding(leadd, tmp_path):
    daemon = DaemonProcess(tmp_path / "bad", env={"LEADD_MAX_CONCURRENT_SEARCHES": "zero", "LEADD_API_TOKEN": "Tok3n-xyz"})
    daemon.start(wait=False)
    assert daemon.process is not None

    status = daemon.process.wait(20)

    assert status == 78
    assert _connect_refused(daemon.port)
    problems = daemon.events("config_invalid")
    assert {problem["variable"] for problem in problems} == {"LEADD_MAX_CONCURRENT_SEARCHES", "LEADD_API_TOKEN"}
    assert "Tok3n-xyz" not in daemon.log_text()


@pytest.mark.parametrize(
    ("variable", "value"),
    # /proc takes no new folders, even from root, while config validation
    # only checks the existing folder above the path.
    [("LEADD_LOG_FILE", "/proc/leadd-test/leadd.log"), ("LEADD_STATE_DIR", "/proc/leadd-test")],
)
def test_unusable_path_exits_78(leadd, tmp_path, variable, value):
    daemon = DaemonProcess(tmp_path / "paths", env={variable: value})
    daemon.start(wait=False)
    assert daemon.process is not None

    status = daemon.process.wait(20)

    assert status == 78
    assert _connect_refused(daemon.port)
    assert variable in daemon.log_text()
    assert daemon.events("startup_failed")[0]["exit_status"] == 78


def test_port_in_use_fails_start(leadd, tmp_path):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        daemon = DaemonProcess(tmp_path / "busy", port=blocker.getsockname()[1])
        daemon.start(wait=False)
        assert daemon.process is not None
        status = daemon.process.wait(20)

    assert status == 1
    failure = daemon.events("startup_failed")[0]
    assert "cannot bind" in failure["message"]
