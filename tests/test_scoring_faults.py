"""Scoring when the model or its server misbehaves: rejected output, HTTP faults, a restart mid-scoring."""

from __future__ import annotations

import sqlite3

import pytest

from tests.helpers import wait_for
from tests.scoring_helpers import PROFILE, named, scoring_env, search_leads
from tests.standins.openai_chat import error_body

# Ten leads per request, one request at a time: 60 catalogue places give
# 30 scorable leads in three requests, completed in order.
SERIAL = {"batch_size": "10", "concurrency": "1"}


@pytest.mark.parametrize(
    ("kind", "params", "code"),
    [
        ("fixture", {"name": "refusal"}, "refusal"),
        ("fixture", {"name": "length"}, "length"),
        ("fixture", {"name": "structured"}, "invalid_output"),
        ("content_filter", {}, "content_filter"),
        ("not_json", {}, "invalid_output"),
    ],
)
def test_rejected_output_marks_only_its_batch(
    leadd, google_env, openai_env, places_new, openai_chat, kind, params, code
):
    client = leadd(scoring_env(google_env, openai_env, **SERIAL)).client()
    openai_chat.add_response(kind, **params)

    search = client.wait_search(client.submit(query="restaurants", profile=PROFILE)["id"])

    assert search["state"] == "succeeded"
    assert search["scoring"]["state"] == "done"
    assert search["scoring"]["leads_scored"] == 20
    first_batch = {lead["id"] for lead in openai_chat.sent_leads()[0]}
    assert len(first_batch) == 10
    leads = named(search_leads(client, search["id"]))
    failed = {lead["id"] for lead in leads if lead["score_error"]}
    assert failed == first_batch
    for lead in leads:
        if lead["id"] in first_batch:
            assert lead["score"] is None
            assert lead["score_error"]["code"] == code
            assert lead["score_error"]["message"]
        else:
            assert lead["score"] is not None
    assert len(openai_chat.requests("chat")) == 3
    assert any("leads have no score" in warning for warning in search["warnings"])


def test_invalid_entry_marks_one_lead(leadd, google_env, openai_env, places_new, openai_chat):
    client = leadd(scoring_env(google_env, openai_env, **SERIAL)).client()
    openai_chat.add_response("invalid_entry")

    search = client.wait_search(client.submit(query="restaurants", profile=PROFILE)["id"])

    first_id = openai_chat.sent_leads()[0][0]["id"]
    leads = named(search_leads(client, search["id"]))
    failed = [lead for lead in leads if lead["score_error"]]
    assert [lead["id"] for lead in failed] == [first_id]
    assert failed[0]["score_error"]["code"] == "invalid_output"
    assert "score" in failed[0]["score_error"]["message"]
    assert search["scoring"]["leads_scored"] == 29


def test_missing_ids_asked_again_then_marked(leadd, google_env, openai_env, places_new, openai_chat):
    client = leadd(scoring_env(google_env, openai_env, **SERIAL)).client()
    # The first output leaves out three leads, which are requested again
    # alone, and that output leaves one of them out again.
    openai_chat.add_response("omit", leads=3)
    openai_chat.add_response("omit", leads=1)

    search = client.wait_search(client.submit(query="restaurants", profile=PROFILE)["id"])

    batches = openai_chat.sent_leads()
    assert [len(batch) for batch in batches] == [10, 3, 10, 10]
    assert [lead["id"] for lead in batches[1]] == [lead["id"] for lead in batches[0][-3:]]
    missing_id = batches[1][-1]["id"]
    leads = {lead["id"]: lead for lead in search_leads(client, search["id"])}
    assert leads[missing_id]["score_error"]["code"] == "missing_from_output"
    assert search["scoring"]["leads_scored"] == 29
    assert search["scoring"]["usage"]["requests"] == 4


def test_unknown_ids_dropped(leadd, google_env, openai_env, places_new, openai_chat):
    daemon = leadd(scoring_env(google_env, openai_env, **SERIAL))
    client = daemon.client()
    openai_chat.add_response("unknown")

    search = client.wait_search(client.submit(query="restaurants", profile=PROFILE)["id"])

    assert search["scoring"]["leads_scored"] == 30
    assert search["scoring"]["leads_failed"] == 30  # only the unscorable catalogue places
    assert len(openai_chat.requests("chat")) == 3
    dropped = daemon.events("scoring_entries_dropped")
    assert len(dropped) == 1
    assert len(dropped[0]["unknown_ids"]) == 1
    with sqlite3.connect(daemon.state_dir / "leadd.sqlite3") as conn:
        stored = conn.execute("SELECT lead_id FROM lead_scores").fetchall()
        lead_ids = {row[0] for row in conn.execute("SELECT id FROM leads")}
    assert all(row[0] in lead_ids for row in stored)


def test_rate_limit_honours_retry_after(leadd, google_env, openai_env, places_new, openai_chat):
    daemon = leadd(scoring_env(google_env, openai_env))
    client = daemon.client()
    body = error_body("Rate limit reached for requests", "requests", "rate_limit_exceeded")
    openai_chat.add_fault("chat", "status", status=429, body=body, headers={"Retry-After": "1"})

    search = client.wait_search(client.submit(query="restaurants", max_results=19, profile=PROFILE)["id"])

    requests = openai_chat.requests("chat")
    assert len(requests) == 2
    assert requests[1].at - requests[0].at >= 0.95
    assert search["scoring"]["state"] == "done"
    assert search["scoring"]["usage"]["requests"] == 2
    retry = daemon.events("upstream_retry")[0]
    assert retry["upstream_status"] == "rate_limited"
    assert retry["delay_s"] >= 1


def test_outage_fails_scoring_not_search(leadd, google_env, openai_env, places_new, openai_chat):
    env = scoring_env(google_env, openai_env, max_retries="1", **SERIAL)
    client = leadd(env).client()
    body = error_body("The server had an error while processing your request.", "server_error")
    openai_chat.add_fault("chat", "status", count=10, status=500, body=body)

    search = client.wait_search(client.submit(query="restaurants", profile=PROFILE)["id"])

    assert search["state"] == "succeeded"
    assert search["error"] is None
    assert search["scoring"]["state"] == "failed"
    assert search["scoring"]["error"]["code"] == "openai_http_500"
    assert "HTTP 500" in search["scoring"]["error"]["message"]
    assert search["scoring"]["usage"]["requests"] == 2
    assert len(openai_chat.requests("chat")) == 2
    assert any(warning.startswith("scoring failed") for warning in search["warnings"])
    assert search["progress"]["leads_stored"] == 60
    assert all(lead["score"] is None for lead in search_leads(client, search["id"]))


def test_rejected_key_not_retried(leadd, google_env, openai_env, places_new, openai_chat):
    client = leadd(scoring_env(google_env, openai_env)).client()
    openai_chat.configure(api_key="sk-another-key-that-does-not-match-0000")

    search = client.wait_search(client.submit(query="restaurants", max_results=19, profile=PROFILE)["id"])

    assert search["scoring"]["state"] == "failed"
    assert search["scoring"]["error"]["code"] == "openai_http_401"
    assert "OPENAI_API_KEY" in search["scoring"]["error"]["message"]
    assert len(openai_chat.requests("chat")) == 1


def test_timeout_and_malformed_body_retried(leadd, google_env, openai_env, places_new, openai_chat):
    env = scoring_env(google_env, openai_env, max_retries="2") | {"LEADD_OPENAI_TIMEOUT_S": "0.5"}
    daemon = leadd(env)
    client = daemon.client()
    openai_chat.add_fault("chat", "delay", seconds=1.5)
    openai_chat.add_fault("chat", "malformed")

    search = client.wait_search(client.submit(query="restaurants", max_results=19, profile=PROFILE)["id"])

    assert search["scoring"]["state"] == "done"
    assert search["scoring"]["leads_scored"] == 9
    assert search["scoring"]["usage"]["requests"] == 3
    statuses = [event["upstream_status"] for event in daemon.events("upstream_retry")]
    assert statuses == ["timeout", "malformed"]


def test_restart_mid_scoring_resumes_without_rescoring(leadd, google_env, openai_env, places_new, openai_chat):
    env = scoring_env(google_env, openai_env, **SERIAL)
    openai_chat.configure(latency_s=1.0)
    daemon = leadd(env)
    client = daemon.client()
    search_id = client.submit(query="restaurants", profile=PROFILE)["id"]

    def first_batch_stored():
        search = client.get(f"/v1/searches/{search_id}").json()
        return search["scoring"]["leads_scored"] >= 10

    wait_for(first_batch_stored, timeout=20, what="the first batch to be scored")
    daemon.kill()
    with sqlite3.connect(daemon.state_dir / "leadd.sqlite3") as conn:
        scored_before = {row[0] for row in conn.execute("SELECT lead_id FROM lead_scores WHERE score IS NOT NULL")}
        stage = conn.execute("SELECT state, scoring_state FROM searches WHERE id = ?", (search_id,)).fetchone()
    places_requests = len(places_new.requests("search_text"))
    chat_requests = len(openai_chat.requests("chat"))
    openai_chat.configure(latency_s=0.0)

    restarted = leadd(env)
    client = restarted.client()
    search = client.wait_search(search_id)

    assert stage == ("running", "running")
    assert 10 <= len(scored_before) < 30
    assert search["state"] == "succeeded"
    assert search["attempts"] == 2
    assert search["scoring"]["state"] == "done"
    assert search["scoring"]["leads_scored"] == 30
    assert len(places_new.requests("search_text")) == places_requests
    sent_after = {lead["id"] for batch in openai_chat.sent_leads()[chat_requests:] for lead in batch}
    assert sent_after
    assert not sent_after & scored_before
    assert restarted.events("search_resumed")


def test_cancel_during_scoring_shows_stopped(leadd, google_env, openai_env, places_new, openai_chat):
    openai_chat.configure(latency_s=1.0)
    client = leadd(scoring_env(google_env, openai_env, **SERIAL)).client()
    search_id = client.submit(query="restaurants", profile=PROFILE)["id"]
    wait_for(
        lambda: client.get(f"/v1/searches/{search_id}").json()["scoring"]["state"] == "running",
        timeout=15,
        what="scoring to start",
    )

    cancelled = client.delete(f"/v1/searches/{search_id}").json()

    assert cancelled["state"] == "cancelled"
    assert cancelled["scoring"]["state"] == "stopped"
