"""Search jobs in SQLite: creation with idempotency and a queue bound, state changes, progress."""

from __future__ import annotations

import json
import sqlite3
import uuid
from dataclasses import dataclass
from typing import Any

from leadd.store.scores import scoring_json

__all__ = [
    "ACTIVE_STATES",
    "TERMINAL_STATES",
    "IdempotencyConflict",
    "QueueFull",
    "SearchRecord",
    "search_to_json",
]

# Upstream calls Google bills; OpenStreetMap calls (nominatim, overpass) are free.
BILLED_CALLS = frozenset({"places_text_search", "place_details", "geocoding"})

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "queued", "running", "succeeded", "failed", "cancelled"
ACTIVE_STATES = (QUEUED, RUNNING)
TERMINAL_STATES = (SUCCEEDED, FAILED, CANCELLED)


class QueueFull(Exception):
    """As many searches are queued as LEADD_MAX_QUEUED_SEARCHES allows."""

    def __init__(self, queued: int) -> None:
        super().__init__(f"{queued} searches are queued, the configured maximum")
        self.queued = queued


class IdempotencyConflict(Exception):
    """An Idempotency-Key was reused with a different request body."""

    def __init__(self, search_id: str) -> None:
        super().__init__(f"the Idempotency-Key was already used for search {search_id} with another request")
        self.search_id = search_id


@dataclass(frozen=True)
class SearchRecord:
    """A new search as the API validated it."""

    provider: str
    query: str
    location: str | None
    request: dict[str, Any]
    idempotency_key: str | None
    request_hash: str


def insert_search(
    conn: sqlite3.Connection, record: SearchRecord, max_queued: int, max_running: int, now: str
) -> tuple[sqlite3.Row, bool]:
    """Insert a queued search; return (row, created).

    With an idempotency key already stored for the same request, return that
    search and created=False. Raises IdempotencyConflict for the same key with
    another request, and QueueFull when max_queued searches would wait: a
    search that an idle worker (fewer than max_running running) takes at
    once does not count, so max_queued=0 means "run now or refuse".
    """
    if record.idempotency_key is not None:
        existing = conn.execute(
            "SELECT * FROM searches WHERE idempotency_key = ?", (record.idempotency_key,)
        ).fetchone()
        if existing is not None:
            if existing["request_hash"] != record.request_hash:
                raise IdempotencyConflict(existing["id"])
            return existing, False
    counts = dict(
        conn.execute("SELECT state, COUNT(*) FROM searches WHERE state IN (?, ?) GROUP BY state", (QUEUED, RUNNING))
    )
    queued, running = counts.get(QUEUED, 0), counts.get(RUNNING, 0)
    if queued >= max_queued + max(0, max_running - running):
        raise QueueFull(queued)
    search_id = str(uuid.uuid4())
    conn.execute(
        "INSERT INTO searches (id, state, provider, query, location, request, idempotency_key,"
        " request_hash, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            search_id,
            QUEUED,
            record.provider,
            record.query,
            record.location,
            json.dumps(record.request, sort_keys=True),
            record.idempotency_key,
            record.request_hash,
            now,
            now,
        ),
    )
    return get_search(conn, search_id), True  # type: ignore[return-value]


def get_search(conn: sqlite3.Connection, search_id: str) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM searches WHERE id = ?", (search_id,)).fetchone()


def list_searches(
    conn: sqlite3.Connection, state: str | None, limit: int, offset: int
) -> tuple[list[sqlite3.Row], int]:
    where, params = ("WHERE state = ?", [state]) if state else ("", [])
    total = conn.execute(f"SELECT COUNT(*) FROM searches {where}", params).fetchone()[0]
    rows = conn.execute(
        f"SELECT * FROM searches {where} ORDER BY created_at DESC, id LIMIT ? OFFSET ?",
        [*params, limit, offset],
    ).fetchall()
    return rows, total


def pending_search_ids(conn: sqlite3.Connection) -> list[str]:
    """Return queued and running searches, oldest first: the work a start resumes."""
    rows = conn.execute(
        "SELECT id FROM searches WHERE state IN (?, ?) ORDER BY created_at, id", ACTIVE_STATES
    ).fetchall()
    return [row[0] for row in rows]


def start_attempt(conn: sqlite3.Connection, search_id: str, now: str) -> sqlite3.Row | None:
    """Mark a queued or running search as running for one more attempt; None if it is no longer active."""
    cursor = conn.execute(
        "UPDATE searches SET state = ?, attempts = attempts + 1, started_at = COALESCE(started_at, ?),"
        " updated_at = ? WHERE id = ? AND state IN (?, ?)",
        (RUNNING, now, now, search_id, *ACTIVE_STATES),
    )
    if cursor.rowcount == 0:
        return None
    return get_search(conn, search_id)


def mark_places_stored(conn: sqlite3.Connection, search_id: str, now: str) -> None:
    conn.execute("UPDATE searches SET places_stored_at = ?, updated_at = ? WHERE id = ?", (now, now, search_id))


def add_usage(conn: sqlite3.Connection, search_id: str, calls: dict[str, int], now: str) -> None:
    row = conn.execute("SELECT usage FROM searches WHERE id = ?", (search_id,)).fetchone()
    if row is None:
        return
    usage = json.loads(row[0] or "{}")
    for kind, count in calls.items():
        usage[kind] = usage.get(kind, 0) + count
    conn.execute("UPDATE searches SET usage = ?, updated_at = ? WHERE id = ?", (json.dumps(usage, sort_keys=True), now, search_id))


def add_warning(conn: sqlite3.Connection, search_id: str, warning: str, now: str) -> None:
    row = conn.execute("SELECT warnings FROM searches WHERE id = ?", (search_id,)).fetchone()
    if row is None:
        return
    warnings = json.loads(row[0] or "[]")
    if warning not in warnings:
        warnings.append(warning)
    conn.execute("UPDATE searches SET warnings = ?, updated_at = ? WHERE id = ?", (json.dumps(warnings), now, search_id))


def finish_search(
    conn: sqlite3.Connection,
    search_id: str,
    state: str,
    now: str,
    error_code: str | None = None,
    error_message: str | None = None,
) -> bool:
    """Move a running search to a final state; False when it was no longer running."""
    cursor = conn.execute(
        "UPDATE searches SET state = ?, finished_at = ?, updated_at = ?, checkpoint = NULL,"
        " error_code = ?, error_message = ? WHERE id = ? AND state = ?",
        (state, now, now, error_code, error_message, search_id, RUNNING),
    )
    return cursor.rowcount == 1


def cancel_search(conn: sqlite3.Connection, search_id: str, now: str) -> sqlite3.Row | None:
    """Cancel a queued or running search; return its row (None when the id is unknown)."""
    conn.execute(
        "UPDATE searches SET state = ?, finished_at = ?, updated_at = ?, checkpoint = NULL"
        " WHERE id = ? AND state IN (?, ?)",
        (CANCELLED, now, now, search_id, *ACTIVE_STATES),
    )
    return get_search(conn, search_id)


def search_to_json(row: sqlite3.Row) -> dict[str, Any]:
    """Render a search row as the API shows it."""
    usage = json.loads(row["usage"] or "{}")
    request = json.loads(row["request"])
    search_id = row["id"]
    error = None
    if row["error_code"]:
        error = {"code": row["error_code"], "message": row["error_message"]}
    return {
        "id": search_id,
        "state": row["state"],
        "provider": row["provider"],
        "query": row["query"],
        "location": row["location"],
        "request": request,
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "started_at": row["started_at"],
        "finished_at": row["finished_at"],
        "attempts": row["attempts"],
        "progress": {
            "pages_fetched": row["pages_fetched"],
            "places_found": row["places_found"],
            "leads_stored": row["leads_stored"],
        },
        "usage": {"calls": usage, "billed_calls": sum(count for kind, count in usage.items() if kind in BILLED_CALLS)},
        "scoring": scoring_json(row),
        "warnings": json.loads(row["warnings"] or "[]"),
        "error": error,
        "links": {"self": f"/v1/searches/{search_id}", "leads": f"/v1/searches/{search_id}/leads"},
    }
