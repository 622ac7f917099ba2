"""Store writes of an OpenStreetMap import: leads, the import log and the gazetteer.

Each batch is one transaction on the importer's own connection, so an import
of any size holds one batch in memory and other writers (the daemon) wait at
most one batch for the lock. Re-importing writes only elements whose content
changed; the user fields ``status``, ``notes`` and ``tags`` are never written.

Every insert and update here sets ``osm_import_id``, so the full-text
triggers skip them (see migration 0002) and ``leads_fts`` is written in
bulk at the end of each batch.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from leadd.providers.base import Place
from leadd.store import utc_now
from leadd.store.leads import place_content

__all__ = ["GazetteerRow", "ImportWriter", "lead_row"]

# Columns an import owns; compared to tell a changed element from an unchanged one.
_CONTENT_COLUMNS = (
    "name",
    "address",
    "latitude",
    "longitude",
    "primary_type",
    "types",
    "maps_url",
    "phone",
    "phone_display",
    "website",
    "website_domain",
    "email",
    "opening_hours",
    "category",
    "keywords",
    "osm_version",
    "osm_tags",
)

_INSERT = (
    "INSERT INTO leads (source, place_id, "
    + ", ".join(_CONTENT_COLUMNS)
    + ", osm_import_id, content_fetched_at, first_seen_at, last_seen_at) VALUES ('osm', :place_id, "
    + ", ".join(f":{column}" for column in _CONTENT_COLUMNS)
    + ", :import_id, :now, :now, :now)"
)

_UPDATE = (
    "UPDATE leads SET "
    + ", ".join(f"{column} = :{column}" for column in _CONTENT_COLUMNS)
    + ", osm_import_id = :import_id, content_fetched_at = :now, content_purged_at = NULL,"
    " last_seen_at = :now WHERE source = 'osm' AND place_id = :place_id"
)

_NAME = _CONTENT_COLUMNS.index("name")
_KEYWORDS = _CONTENT_COLUMNS.index("keywords")

_TOUCH = "UPDATE leads SET osm_import_id = ?, last_seen_at = ? WHERE source = 'osm' AND place_id = ?"

# SQLite limits bound variables per statement; 500 ids per IN list stays far below.
_LOOKUP_CHUNK = 500


def lead_row(place: Place, region: str | None) -> dict[str, Any]:
    """Return the lead columns an import writes for ``place`` (see leadd.osm.tags.place_from_element)."""
    content = place_content(place, region)
    row = {column: content[column] for column in _CONTENT_COLUMNS if column in content}
    row["place_id"] = place.place_id
    row["osm_version"] = place.extra.get("osm_version")
    return row


@dataclass(frozen=True)
class GazetteerRow:
    """One name variant of a named place and the area a search near it covers."""

    lookup: str
    osm_id: str
    name: str
    place_type: str
    rank: int
    south: float
    west: float
    north: float
    east: float


class ImportWriter:
    """Writes one import to the store; create it, call ``begin``, the batches, then ``finish`` or ``fail``."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self.import_id: int | None = None
        self.counts = {"inserted": 0, "updated": 0, "unchanged": 0, "places": 0}

    def begin(self, file: str, sha256: str, header_timestamp: str | None) -> int:
        """Record a running import and return its id."""
        with _transaction(self._conn):
            cursor = self._conn.execute(
                "INSERT INTO osm_imports (file, sha256, header_timestamp, state, started_at)"
                " VALUES (?, ?, ?, 'running', ?)",
                (file, sha256, header_timestamp, utc_now()),
            )
        self.import_id = int(cursor.lastrowid or 0)
        return self.import_id

    def write_leads(self, rows: list[dict[str, Any]]) -> None:
        """Insert new elements, update changed ones and mark unchanged ones as seen, in one transaction."""
        if not rows:
            return
        now = utc_now()
        with _transaction(self._conn):
            stored = self._stored_content([row["place_id"] for row in rows])
            inserts, updates, touches, reindex = [], [], [], []
            for row in rows:
                previous = stored.get(row["place_id"])
                values = dict(row, import_id=self.import_id, now=now)
                if previous is None:
                    inserts.append(values)
                    continue
                lead_id, content = previous
                if content == tuple(row[column] for column in _CONTENT_COLUMNS):
                    touches.append((self.import_id, now, row["place_id"]))
                    continue
                updates.append(values)
                old_name, old_keywords = content[_NAME], content[_KEYWORDS]
                if (old_name, old_keywords) != (row["name"], row["keywords"]):
                    reindex.append((lead_id, old_name, old_keywords, row["name"], row["keywords"]))
            newest_before = self._conn.execute("SELECT COALESCE(MAX(id), 0) FROM leads").fetchone()[0]
            self._conn.executemany(_INSERT, inserts)
            self._conn.executemany(_UPDATE, updates)
            self._conn.executemany(_TOUCH, touches)
            self._index_text(newest_before, reindex)
        self.counts["inserted"] += len(inserts)
        self.counts["updated"] += len(updates)
        self.counts["unchanged"] += len(touches)

    def _stored_content(self, place_ids: list[str]) -> dict[str, tuple[int, tuple[Any, ...]]]:
        """Return place id -> (lead id, content columns) for the ids already stored."""
        stored: dict[str, tuple[int, tuple[Any, ...]]] = {}
        columns = ", ".join(_CONTENT_COLUMNS)
        for start in range(0, len(place_ids), _LOOKUP_CHUNK):
            chunk = place_ids[start : start + _LOOKUP_CHUNK]
            marks = ", ".join("?" * len(chunk))
            query = f"SELECT place_id, id, {columns} FROM leads WHERE source = 'osm' AND place_id IN ({marks})"
            for row in self._conn.execute(query, chunk):
                stored[row[0]] = (row[1], tuple(row[2:]))
        return stored

    def _index_text(self, newest_before: int, reindex: list[tuple[Any, ...]]) -> None:
        """Add the batch's new leads to leads_fts and replace the entries of renamed ones."""
        self._conn.execute(
            "INSERT INTO leads_fts (rowid, name, keywords) SELECT id, name, keywords FROM leads"
            " WHERE id > ? AND osm_import_id = ?",
            (newest_before, self.import_id),
        )
        self._conn.executemany(
            "INSERT INTO leads_fts (leads_fts, rowid, name, keywords) VALUES ('delete', ?, ?, ?)",
            [(lead_id, old_name, old_keywords) for lead_id, old_name, old_keywords, _, _ in reindex],
        )
        self._conn.executemany(
            "INSERT INTO leads_fts (rowid, name, keywords) VALUES (?, ?, ?)",
            [(lead_id, name, keywords) for lead_id, _, _, name, keywords in reindex],
        )

    def write_places(self, rows: Iterable[GazetteerRow]) -> None:
        """Store gazetteer rows, replacing earlier ones for the same name and element."""
        values = [
            (r.lookup, r.osm_id, r.name, r.place_type, r.rank, r.south, r.west, r.north, r.east, self.import_id)
            for r in rows
        ]
        if not values:
            return
        with _transaction(self._conn):
            self._conn.executemany(
                "INSERT OR REPLACE INTO osm_places (lookup, osm_id, name, place_type, rank,"
                " south, west, north, east, import_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                values,
            )
        self.counts["places"] += len(values)

    def finish(
        self,
        bbox: tuple[float, float, float, float] | None,
        country_code: str | None,
        newest_element_at: str | None,
        extra_counts: dict[str, int],
        duration_s: float,
    ) -> dict[str, int]:
        """Mark the import succeeded with its coverage ``bbox`` (south, west, north, east); return its counts.

        Counts as missing the leads inside ``bbox`` that an earlier import
        wrote and this one did not contain. They stay as they are, and their
        last_seen_at shows when an extract last had them. Clears the osm
        geocode cache, because the gazetteer may have changed.
        """
        counts = dict(self.counts, **extra_counts)
        with _transaction(self._conn):
            if bbox is not None:
                south, west, north, east = bbox
                counts["missing"] = self._conn.execute(
                    "SELECT COUNT(*) FROM leads WHERE source = 'osm' AND osm_import_id IS NOT NULL"
                    " AND osm_import_id != ? AND latitude BETWEEN ? AND ? AND longitude BETWEEN ? AND ?",
                    (self.import_id, south, north, west, east),
                ).fetchone()[0]
            self._conn.execute(
                "UPDATE osm_places SET country_code = ? WHERE import_id = ?", (country_code, self.import_id)
            )
            self._conn.execute("DELETE FROM geocode_cache WHERE provider = 'osm'")
            self._conn.execute(
                "UPDATE osm_imports SET state = 'succeeded', finished_at = ?, duration_s = ?, south = ?,"
                " west = ?, north = ?, east = ?, country_code = ?, newest_element_at = ?, counts = ?"
                " WHERE id = ?",
                (
                    utc_now(),
                    round(duration_s, 3),
                    *(bbox or (None, None, None, None)),
                    country_code,
                    newest_element_at,
                    json.dumps(counts, sort_keys=True),
                    self.import_id,
                ),
            )
        return counts

    def fail(self, error: str, duration_s: float) -> None:
        """Mark the import failed; batches already written stay (each element is complete on its own)."""
        if self.import_id is None:
            return
        with _transaction(self._conn):
            self._conn.execute(
                "UPDATE osm_imports SET state = 'failed', error = ?, finished_at = ?, duration_s = ?, counts = ?"
                " WHERE id = ?",
                (error, utc_now(), round(duration_s, 3), json.dumps(self.counts, sort_keys=True), self.import_id),
            )


class _transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on an exception."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self._conn.execute("BEGIN IMMEDIATE")
        return self._conn

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self._conn.execute("ROLLBACK" if exc_type is not None else "COMMIT")
