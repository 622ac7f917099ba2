"""The SQLite store: additive migrations, a newer schema after rollback, the retention purge."""

from __future__ import annotations

import re
import sqlite3

import pytest

from leadd.store.migrate import apply_migrations, known_migrations
from tests.helpers import DaemonProcess

# Statements that would break the previous release after a rollback.
_FORBIDDEN = [
    (re.compile(r"\bDROP\s+(TABLE|COLUMN|INDEX|VIEW|TRIGGER)\b", re.I), "drops"),
    (re.compile(r"\bRENAME\b", re.I), "renames"),
    (re.compile(r"\bALTER\s+TABLE\s+\w+\s+(?!ADD\b)", re.I), "alters other than ADD COLUMN"),
    (re.compile(r"\bDELETE\s+FROM\b|\bUPDATE\s+\w+\s+SET\b", re.I), "rewrites data"),
]
_ADD_NOT_NULL_WITHOUT_DEFAULT = re.compile(r"ADD\s+(COLUMN\s+)?\w+[^,;]*NOT\s+NULL(?![^,;]*DEFAULT)", re.I)


@pytest.mark.parametrize("migration", known_migrations(), ids=lambda m: f"{m.version:04d}_{m.name}")
def test_migration_is_additive(migration):
    sql = "\n".join(line for line in migration.sql.splitlines() if not line.strip().startswith("--"))
    for pattern, what in _FORBIDDEN:
        assert not pattern.search(sql), f"migration {migration.name} {what}: previous releases would break"
    assert not _ADD_NOT_NULL_WITHOUT_DEFAULT.search(sql), f"migration {migration.name} adds NOT NULL without DEFAULT"


def test_migrations_apply_once_and_record(tmp_path):
    conn = sqlite3.connect(tmp_path / "s.sqlite3", isolation_level=None)

    first = apply_migrations(conn)
    second = apply_migrations(conn)

    assert first == second == len(known_migrations())
    recorded = [row[0] for row in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
    assert recorded == list(range(1, len(known_migrations()) + 1))


def test_older_release_runs_on_newer_schema(leadd, google_env, places_new):
    daemon = leadd(google_env, name="newer")
    client = daemon.client()
    client.wait_search(client.submit(query="roofers", max_results=5)["id"])
    daemon.stop()
    # What a later release's migration might add, recorded as already applied.
    with sqlite3.connect(daemon.state_dir / "leadd.sqlite3") as conn:
        future = len(known_migrations()) + 1
        conn.execute("ALTER TABLE leads ADD COLUMN future_field TEXT DEFAULT 'x'")
        conn.execute("CREATE TABLE future_table (id INTEGER PRIMARY KEY)")
        conn.execute("INSERT INTO schema_migrations VALUES (?, 'from_the_future', '2030-01-01')", (future,))

    restarted = DaemonProcess(daemon.workdir, env=daemon.env, port=daemon.port).start()
    try:
        restarted_client = restarted.client()
        assert restarted_client.get("/v1/leads").json()["total"] == 5
        again = restarted_client.wait_search(restarted_client.submit(query="roofers", max_results=10)["id"])
        assert again["state"] == "succeeded"
        assert restarted.events("store_schema_newer")
    finally:
        restarted.stop()


def test_purge_clears_google_content_keeps_user_data(leadd, google_env, places_new):
    daemon = leadd(google_env, name="purge")
    client = daemon.client()
    search = client.wait_search(client.submit(query="vegetarian", max_results=19)["id"])
    lead = next(item for item in client.get("/v1/leads", params={"limit": 50}).json()["items"] if item["phone"])
    client.patch(f"/v1/leads/{lead['id']}", json={"status": "contacted", "notes": "called Monday", "tags": ["hot"]})
    daemon.stop()
    with sqlite3.connect(daemon.state_dir / "leadd.sqlite3") as conn:
        conn.execute("UPDATE leads SET content_fetched_at = '2020-01-01T00:00:00.000Z' WHERE id = ?", (lead["id"],))

    restarted = DaemonProcess(daemon.workdir, env=daemon.env, port=daemon.port).start()
    try:
        purged = restarted.client().get(f"/v1/leads/{lead['id']}").json()
        untouched = restarted.client().get("/v1/leads", params={"limit": 50}).json()["items"]
    finally:
        restarted.stop()

    assert purged["content_expired"] is True
    assert purged["place_id"] == lead["place_id"]
    for field in ("name", "address", "phone", "website", "rating"):
        assert purged[field] is None, field
    assert purged["status"] == "contacted"
    assert purged["notes"] == "called Monday"
    assert purged["tags"] == ["hot"]
    assert purged["search_ids"] == [search["id"]]
    assert sum(1 for item in untouched if item["content_expired"]) == 1
    assert restarted.events("google_content_purged")[0]["leads"] == 1


def test_purge_refreshed_by_new_search(leadd, google_env, places_new):
    daemon = leadd(google_env, name="refresh")
    client = daemon.client()
    client.wait_search(client.submit(query="vegetarian", max_results=5)["id"])
    daemon.stop()
    with sqlite3.connect(daemon.state_dir / "leadd.sqlite3") as conn:
        conn.execute("UPDATE leads SET content_fetched_at = '2020-01-01T00:00:00.000Z'")

    restarted = DaemonProcess(daemon.workdir, env=daemon.env, port=daemon.port).start()
    try:
        restarted_client = restarted.client()
        assert all(item["content_expired"] for item in restarted_client.get("/v1/leads").json()["items"])
        restarted_client.wait_search(restarted_client.submit(query="vegetarian", max_results=5)["id"])
        items = restarted_client.get("/v1/leads").json()["items"]
    finally:
        restarted.stop()

    assert not any(item["content_expired"] for item in items)
    assert all(item["name"] for item in items)
