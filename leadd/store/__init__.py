"""The SQLite store: searches, leads and caches behind async methods."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from leadd.providers.base import Area, Page, Place
from leadd.store import leads as lead_rows
from leadd.store import searches as search_rows
from leadd.store.db import Database, StoreError, StorePathError
from leadd.store.leads import LeadQuery
from leadd.store.searches import IdempotencyConflict, QueueFull, SearchRecord

__all__ = [
    "IdempotencyConflict",
    "LeadQuery",
    "QueueFull",
    "SearchRecord",
    "Store",
    "StoreError",
    "StorePathError",
    "utc_now",
]


def utc_now() -> str:
    """Return the current time as RFC 3339 UTC with milliseconds (sorts as text)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Store:
    """Async access to the store; every method is one transaction or one read."""

    def __init__(self, path: Path) -> None:
        self.db = Database(path)

    @property
    def path(self) -> Path:
        return self.db.path

    async def open(self, on_migration: Callable[[int, str], None] | None = None) -> None:
        await self.db.open(on_migration)

    async def close(self) -> None:
        await self.db.close()

    # Health

    async def check_writable(self) -> None:
        """Write and read back a heartbeat row; raises StoreError or sqlite3.Error when the store is unusable."""
        await self.db.write(_touch_heartbeat, utc_now())

    async def check_readable(self) -> None:
        await self.db.read(lambda conn: conn.execute("SELECT 1 FROM searches LIMIT 1").fetchall())

    # Searches

    async def create_search(self, record: SearchRecord, max_queued: int, max_running: int) -> tuple[dict[str, Any], bool]:
        row, created = await self.db.write(search_rows.insert_search, record, max_queued, max_running, utc_now())
        return search_rows.search_to_json(row), created

    async def get_search(self, search_id: str) -> dict[str, Any] | None:
        row = await self.db.read(search_rows.get_search, search_id)
        return search_rows.search_to_json(row) if row is not None else None

    async def get_search_row(self, search_id: str) -> sqlite3.Row | None:
        return await self.db.read(search_rows.get_search, search_id)

    async def list_searches(self, state: str | None, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
        rows, total = await self.db.read(search_rows.list_searches, state, limit, offset)
        return [search_rows.search_to_json(row) for row in rows], total

    async def pending_search_ids(self) -> list[str]:
        return await self.db.read(search_rows.pending_search_ids)

    async def start_attempt(self, search_id: str) -> sqlite3.Row | None:
        return await self.db.write(search_rows.start_attempt, search_id, utc_now())

    async def record_page(self, search_id: str, page: Page, kept: Iterable[Place], region: str | None) -> int:
        kept = list(kept)

        def write(conn: sqlite3.Connection) -> int:
            now = utc_now()
            search_rows.add_usage(conn, search_id, page.calls, now)
            return lead_rows.record_page(conn, search_id, page, kept, region, now)

        return await self.db.write(write)

    async def mark_places_stored(self, search_id: str) -> None:
        """Record that every page of a search is stored; a resumed run then skips the fetch."""
        await self.db.write(search_rows.mark_places_stored, search_id, utc_now())

    async def add_usage(self, search_id: str, calls: dict[str, int]) -> None:
        if calls:
            await self.db.write(search_rows.add_usage, search_id, calls, utc_now())

    async def add_warning(self, search_id: str, warning: str) -> None:
        await self.db.write(search_rows.add_warning, search_id, warning, utc_now())

    async def finish_search(
        self, search_id: str, state: str, error_code: str | None = None, error_message: str | None = None
    ) -> bool:
        return await self.db.write(search_rows.finish_search, search_id, state, utc_now(), error_code, error_message)

    async def cancel_search(self, search_id: str) -> dict[str, Any] | None:
        row = await self.db.write(search_rows.cancel_search, search_id, utc_now())
        return search_rows.search_to_json(row) if row is not None else None

    # Leads

    async def list_leads(self, query: LeadQuery) -> tuple[list[dict[str, Any]], int]:
        rows, total = await self.db.read(lead_rows.list_leads, query)
        return [lead_rows.lead_to_json(row) for row in rows], total

    async def get_lead(self, lead_id: int) -> dict[str, Any] | None:
        row = await self.db.read(lead_rows.get_lead, lead_id)
        return lead_rows.lead_to_json(row) if row is not None else None

    async def update_lead(self, lead_id: int, changes: dict[str, Any]) -> dict[str, Any] | None:
        row = await self.db.write(lead_rows.update_lead, lead_id, changes)
        return lead_rows.lead_to_json(row) if row is not None else None

    async def purge_google_content(self, ttl_days: int) -> int:
        now = datetime.now(UTC)
        return await self.db.write(lead_rows.purge_google_content, _utc(now - timedelta(days=ttl_days)), _utc(now))

    # Geocode cache

    async def cached_area(self, provider: str, query: str) -> tuple[bool, Area | None]:
        """Return (hit, area); a hit with area None means the location matched nothing."""
        row = await self.db.read(
            lambda conn: conn.execute(
                "SELECT result FROM geocode_cache WHERE provider = ? AND query = ?", (provider, query)
            ).fetchone()
        )
        if row is None:
            return False, None
        return True, Area.from_json(json.loads(row[0])) if row[0] else None

    async def cache_area(self, provider: str, query: str, area: Area | None) -> None:
        result = json.dumps(area.to_json()) if area is not None else None
        await self.db.write(
            lambda conn: conn.execute(
                "INSERT OR REPLACE INTO geocode_cache (provider, query, result, fetched_at) VALUES (?, ?, ?, ?)",
                (provider, query, result, utc_now()),
            )
        )


def _touch_heartbeat(conn: sqlite3.Connection, now: str) -> None:
    conn.execute("INSERT OR REPLACE INTO heartbeat (id, at) VALUES (1, ?)", (now,))
