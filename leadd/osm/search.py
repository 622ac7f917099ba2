"""Search over imported OpenStreetMap leads, and what the imports cover.

Functions here take a ``sqlite3.Connection`` and run on the store's reader
thread (``Store.db.read``). The text search uses the FTS5 index
``leads_fts`` over names and keywords (see leadd.osm.vocabulary for how a
query becomes a MATCH expression) and restricts hits to the geocoded area.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from leadd.osm.vocabulary import QueryTerms, fts_expression
from leadd.providers.base import Area, Place

__all__ = ["Coverage", "coverage", "place_from_row", "search_local"]

Box = tuple[float, float, float, float]  # south, west, north, east


@dataclass(frozen=True)
class Coverage:
    """The bounding boxes of the succeeded imports and the leads they wrote."""

    boxes: tuple[Box, ...]
    imports: int
    leads: int
    newest_data: str | None

    def contains(self, area: Area) -> bool:
        """Tell whether one imported extract covers all of ``area``."""
        if area.west > area.east:
            return False  # crosses the antimeridian; no extract box does
        return any(
            south <= area.south and area.north <= north and west <= area.west and area.east <= east
            for south, west, north, east in self.boxes
        )

    def overlaps(self, area: Area) -> bool:
        """Tell whether any imported extract covers part of ``area``."""
        for south, west, north, east in self.boxes:
            if area.south > north or area.north < south:
                continue
            if area.west <= area.east:
                if area.west <= east and area.east >= west:
                    return True
            elif east >= area.west or west <= area.east:
                return True
        return False

    def describe(self) -> str:
        """Return the state /health/detailed shows, such as "1309 leads from 1 import"."""
        if not self.imports:
            return "none imported"
        plural = "s" if self.imports != 1 else ""
        text = f"{self.leads} leads from {self.imports} import{plural}"
        if self.newest_data:
            text += f", data up to {self.newest_data[:10]}"
        return text


def coverage(conn: sqlite3.Connection) -> Coverage:
    """Read the coverage of every succeeded import."""
    rows = conn.execute(
        "SELECT south, west, north, east, newest_element_at, header_timestamp FROM osm_imports"
        " WHERE state = 'succeeded'"
    ).fetchall()
    boxes = tuple((row[0], row[1], row[2], row[3]) for row in rows if row[0] is not None)
    stamps = [stamp for row in rows for stamp in (row[4], row[5]) if stamp]
    leads = conn.execute("SELECT COUNT(*) FROM leads WHERE source = 'osm' AND osm_import_id IS NOT NULL").fetchone()[0]
    return Coverage(boxes=boxes, imports=len(rows), leads=leads, newest_data=max(stamps) if stamps else None)


def _area_clause(area: Area | None) -> tuple[str, list[Any]]:
    if area is None:
        return "", []
    clause = " AND leads.latitude BETWEEN ? AND ?"
    params: list[Any] = [area.south, area.north]
    if area.west <= area.east:
        clause += " AND leads.longitude BETWEEN ? AND ?"
    else:
        clause += " AND (leads.longitude >= ? OR leads.longitude <= ?)"
    params += [area.west, area.east]
    return clause, params


def search_local(
    conn: sqlite3.Connection,
    terms: QueryTerms,
    area: Area | None,
    require: frozenset[str],
    limit: int,
    offset: int,
) -> list[sqlite3.Row]:
    """Return OSM leads matching ``terms`` inside ``area``, best match first.

    Ranks by BM25 with a name hit worth four keyword hits, then by name.
    ``require`` ("phone", "website") filters in SQL so that max_results
    counts only leads the search keeps. A query without words matches
    every lead in the area.
    """
    where, params = _area_clause(area)
    if "phone" in require:
        where += " AND leads.phone IS NOT NULL"
    if "website" in require:
        where += " AND leads.website IS NOT NULL"
    expression = fts_expression(terms)
    if expression is None:
        return conn.execute(
            f"SELECT leads.* FROM leads WHERE leads.source = 'osm' {where}"
            " ORDER BY leads.name COLLATE NOCASE, leads.id LIMIT ? OFFSET ?",
            [*params, limit, offset],
        ).fetchall()
    return conn.execute(
        "SELECT leads.* FROM leads_fts JOIN leads ON leads.id = leads_fts.rowid"
        f" WHERE leads_fts MATCH ? AND leads.source = 'osm' {where}"
        " ORDER BY bm25(leads_fts, 4.0, 1.0), leads.name COLLATE NOCASE, leads.id LIMIT ? OFFSET ?",
        [expression, *params, limit, offset],
    ).fetchall()


def place_from_row(row: sqlite3.Row) -> Place:
    """Rebuild the Place a stored OSM lead came from, so that storing it again changes nothing."""
    display = row["phone_display"]
    international = display if display and display.startswith("+") else None
    return Place(
        source="osm",
        place_id=row["place_id"],
        name=row["name"],
        address=row["address"],
        latitude=row["latitude"],
        longitude=row["longitude"],
        primary_type=row["primary_type"],
        types=json.loads(row["types"]) if row["types"] else [],
        business_status=row["business_status"],
        maps_url=row["maps_url"],
        phone_international=international,
        phone_national=None if international else display,
        website=row["website"],
        email=row["email"],
        opening_hours=row["opening_hours"],
        extra={
            "category": row["category"],
            "keywords": row["keywords"],
            "osm_tags": json.loads(row["osm_tags"]) if row["osm_tags"] else None,
        },
    )
