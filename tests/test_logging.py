"""JSON-lines logs: fields, access lines, redaction, and the file surviving a logrotate rename."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from leadd.logging import REDACTED, REQUEST_ID_KEY, JsonAccessLogger, Redactor, setup_logging, utc_timestamp
from tests.helpers import GOOGLE_KEY, assert_no_secrets, wait_for


def test_log_lines_are_json_with_fields(leadd, google_env, places_new):
    daemon = leadd(google_env)
    client = daemon.client()
    search = client.wait_search(client.submit(query="roofers", max_results=5)["id"])
    response = client.get("/health", headers={"X-Request-ID": "log-check-1"})
    # aiohttp writes the access line after the response has gone out.
    wait_for(lambda: "log-check-1" in daemon.log_text(), what="the access line")

    records = daemon.log_records()

    assert response.status_code == 200
    for record in records:
        for field in ("timestamp", "level", "logger", "message", "event"):
            assert field in record, record
        assert record["timestamp"].endswith("Z")
    access = [r for r in records if r["event"] == "http_request" and r.get("request_id") == "log-check-1"]
    assert len(access) == 1
    assert access[0]["status"] == 200
    assert access[0]["path"] == "/health"
    search_lines = [r for r in records if r.get("search_id") == search["id"]]
    assert {"search_started", "search_page_stored", "search_succeeded"} <= {r["event"] for r in search_lines}
    ready = daemon.events("daemon_ready")[0]
    assert ready["dependencies"]["google_places"] == "configured"


def test_debug_logs_redact_key_in_urls(leadd, google_env, google_maps):
    daemon = leadd(google_env | {"LEADD_LOG_LEVEL": "debug"})
    client = daemon.client()

    client.wait_search(client.submit(query="pizza", provider="places_legacy", max_results=3)["id"])

    text = daemon.log_text()
    assert GOOGLE_KEY not in text
    # urllib3 logs each request URL at debug level, key parameter included.
    assert f"key={REDACTED}" in text


def test_log_file_reopened_after_rename(leadd, google_env, tmp_path):
    log_file = tmp_path / "logs" / "leadd.log"
    daemon = leadd(google_env | {"LEADD_LOG_FILE": str(log_file)})
    client = daemon.client()
    sent = []
    for index in range(5):
        sent.append(f"before-{index}")
        client.get("/health", headers={"X-Request-ID": sent[-1]})

    rotated = log_file.with_suffix(".log.1")
    log_file.rename(rotated)
    for index in range(5):
        sent.append(f"after-{index}")
        client.get("/health", headers={"X-Request-ID": sent[-1]})
    daemon.stop()

    lines = rotated.read_text().splitlines() + log_file.read_text().splitlines()
    seen = [json.loads(line).get("request_id") for line in lines]
    for request_id in sent:
        assert seen.count(request_id) == 1, request_id
    assert "after-0" in log_file.read_text()


@pytest.mark.parametrize(
    "line",
    [
        "key=SeCrEt-VaLuE-123",
        'json "SeCrEt-VaLuE-123"',
        "url https://x/?q=1&key=SeCrEt-VaLuE-123&z=2",
        "Authorization: Bearer abcdefghijklmnop",
        "google AIzaSyA-1234567890abcdefghijklmnopqrstu",
        "openai sk-proj-abcdefghijklmnop1234",
    ],
)
def test_redactor_removes_secret_shapes(line):
    redact = Redactor(["SeCrEt-VaLuE-123"])

    cleaned = redact(line)

    assert REDACTED in cleaned
    for secret in ("SeCrEt-VaLuE-123", "abcdefghijklmnop", "AIzaSyA-1234567890", "sk-proj-abcdefghijklmnop"):
        assert secret not in cleaned


def test_redactor_handles_json_escaped_secret():
    secret = 'quote"back\\slash'
    redact = Redactor([secret])

    assert json.dumps(secret)[1:-1] not in redact(json.dumps({"value": secret}))


@pytest.fixture
def root_logger_restored():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_setup_logging_redacts_exceptions(capsys, root_logger_restored):
    setup_logging("info", secrets=["TopSecret-999"])
    try:
        raise ValueError("failed with TopSecret-999")
    except ValueError:
        logging.getLogger("leadd.test").exception("boom", extra={"event": "test_boom"})

    line = capsys.readouterr().err.strip().splitlines()[-1]
    record = json.loads(line)
    assert "TopSecret-999" not in line
    assert record["event"] == "test_boom"
    assert "ValueError" in record["exc_info"]


def _access_logger(redactor: Redactor) -> JsonAccessLogger:
    return JsonAccessLogger.using(redactor)(logging.getLogger("leadd.access"), "")


def _request(raw_path: str, request_id: str) -> web.Request:
    request = make_mocked_request("GET", raw_path)
    request[REQUEST_ID_KEY] = request_id
    return request


def test_access_line_escaped_and_redacted(capsys, root_logger_restored):
    redactor = setup_logging("info", secrets=["TopSecret-999"])
    # Decoded, the path contains quotes, a backslash, a newline, non-ASCII and the secret.
    request = _request("/v1/leads/%22q%22%5Cb%0Aline/M%C3%BCller/TopSecret-999", "req-esc-1")

    _access_logger(redactor).log(request, web.Response(status=404), 0.01234)

    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    path = f'/v1/leads/"q"\\b\nline/Müller/{REDACTED}'
    assert record == {
        "timestamp": record["timestamp"],
        "level": "info",
        "logger": "leadd.access",
        "message": f"GET {path} 404",
        "event": "http_request",
        "request_id": "req-esc-1",
        "method": "GET",
        "path": path,
        "status": 404,
        "duration_ms": 12.34,
        "bytes_sent": 0,
        "remote": None,
    }
    assert "TopSecret-999" not in lines[0]


def test_access_lines_batched_in_order(capsys, root_logger_restored):
    redactor = setup_logging("info")
    access = _access_logger(redactor)

    async def serve() -> list[str]:
        access.log(_request("/health", "first"), web.Response(), 0.001)
        access.log(_request("/health", "second"), web.Response(), 0.001)
        written_at_once = capsys.readouterr().err
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        written_after_round = capsys.readouterr().err
        access.log(_request("/health", "third"), web.Response(), 0.001)
        # An ordinary record first writes the access line waiting before it.
        logging.getLogger("leadd.test").warning("after", extra={"event": "after_third"})
        return [written_at_once, written_after_round, capsys.readouterr().err]

    at_once, after_round, rest = asyncio.run(serve())

    assert at_once == ""
    assert [json.loads(line)["request_id"] for line in after_round.splitlines()] == ["first", "second"]
    assert [json.loads(line).get("request_id") or json.loads(line)["event"] for line in rest.splitlines()] == [
        "third",
        "after_third",
    ]


def test_utc_timestamp_milliseconds():
    for when in (0.0, 1_733_356_800.5, 1_733_356_800.999, 1_733_356_801.0456):
        expected = datetime.fromtimestamp(when, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        assert utc_timestamp(when) == expected


def test_secret_request_id_replaced(leadd, google_env):
    daemon = leadd(google_env | {"LEADD_API_TOKEN": "tok-0123456789abcdef0123"})
    client = daemon.client(token="tok-0123456789abcdef0123")
    sent = ["tok-0123456789abcdef0123", "AIzaSyB-fake-but-key-shaped-0123456789", "plain.id-42"]

    echoed = [client.get("/health", headers={"X-Request-ID": value}).headers["X-Request-ID"] for value in sent]
    wait_for(lambda: "plain.id-42" in daemon.log_text(), what="the access line")

    assert echoed[0] not in sent
    assert echoed[1] not in sent
    assert echoed[2] == "plain.id-42"
    assert_no_secrets([daemon.log_text()], sent[:2])


def test_failed_flush_does_not_raise(root_logger_restored):
    setup_logging("info", log_file=Path("/dev/full"))
    access = _access_logger(Redactor())

    async def log_both() -> None:
        access.log(_request("/health", "full-1"), web.Response(), 0.001)
        # The ordinary record first writes the waiting access line, which fails.
        logging.getLogger("leadd.test").warning("after a full disk")

    saved, logging.raiseExceptions = logging.raiseExceptions, False
    try:
        asyncio.run(log_both())
    finally:
        logging.raiseExceptions = saved
