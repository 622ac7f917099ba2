"""Offline geocoding from the named places of imported extracts.

The importer stores every named ``place=*`` element (a city node, a suburb
area, a square) and every administrative boundary of admin_level 4 to 10
that has a ``label`` or ``admin_centre`` node. A node has no extent, so a
search near it covers a square around it whose half-size depends on the
place type (``PLACE_RADIUS_M``: 12 km for a city, 2 km for a suburb). A way
or relation covers its bounding box plus a margin. Names are matched after
case folding and without diacritics, in every language the element has
(``name``, ``name:sv``, ``alt_name``...).
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterator, Mapping

from leadd.osm.tags import normalize_text, split_values
from leadd.osm.writer import GazetteerRow
from leadd.providers.base import Area

__all__ = [
    "PLACE_RADIUS_M",
    "boundary_rows",
    "lookup_area",
    "place_rows",
]

# Half-size of the square searched around a place node, in metres, with the
# rank that picks the larger place when names repeat. Rough sizes of typical
# places, not measured for any one country.
PLACE_RADIUS_M: dict[str, tuple[float, int]] = {
    "country": (500_000, 100),
    "state": (200_000, 90),
    "region": (100_000, 85),
    "province": (100_000, 85),
    "county": (50_000, 80),
    "municipality": (15_000, 75),
    "city": (12_000, 70),
    "town": (5_000, 60),
    "borough": (4_000, 55),
    "suburb": (2_000, 50),
    "village": (2_000, 45),
    "island": (3_000, 42),
    "quarter": (1_200, 40),
    "neighbourhood": (700, 35),
    "hamlet": (800, 30),
    "locality": (500, 25),
    "islet": (300, 22),
    "square": (150, 20),
    "farm": (300, 15),
    "isolated_dwelling": (300, 15),
    "city_block": (150, 10),
    "plot": (100, 5),
}
_DEFAULT_RADIUS = (500.0, 1)

# Half-size around the label node of an administrative boundary, by
# admin_level (4: regions of most countries, 8: municipalities, 10: districts).
_ADMIN_RADIUS_M = {4: 150_000, 5: 100_000, 6: 60_000, 7: 30_000, 8: 12_000, 9: 5_000, 10: 2_000}

# Added around the bounding box of a way or relation, so a search near a
# small square still finds the cafes on its edge.
_MARGIN_M = 100.0

_NAME_KEYS = ("name", "alt_name", "official_name", "short_name")

_METRES_PER_DEGREE = 111_320.0


def _names(tags: Mapping[str, str]) -> list[str]:
    names: list[str] = []
    keys = list(_NAME_KEYS) + sorted(key for key in tags if key.startswith("name:"))
    for key in keys:
        for name in split_values(tags.get(key)):
            if name not in names:
                names.append(name)
    return names


def _square(latitude: float, longitude: float, radius_m: float) -> tuple[float, float, float, float]:
    """Return (south, west, north, east) of a square with half-size ``radius_m`` around a point."""
    dlat = radius_m / _METRES_PER_DEGREE
    dlon = radius_m / (_METRES_PER_DEGREE * max(math.cos(math.radians(latitude)), 0.01))
    return max(latitude - dlat, -90.0), longitude - dlon, min(latitude + dlat, 90.0), longitude + dlon


def _expand(box: tuple[float, float, float, float], margin_m: float) -> tuple[float, float, float, float]:
    south, west, north, east = box
    _, margin_west, margin_north, _ = _square(north, west, margin_m)
    dlat = margin_north - north
    dlon = west - margin_west
    return max(south - dlat, -90.0), west - dlon, min(north + dlat, 90.0), east + dlon


def _rows(
    osm_id: str, tags: Mapping[str, str], place_type: str, rank: int, box: tuple[float, float, float, float]
) -> Iterator[GazetteerRow]:
    seen: set[str] = set()
    for name in _names(tags):
        lookup = normalize_text(name)
        if lookup and lookup not in seen:
            seen.add(lookup)
            yield GazetteerRow(lookup, osm_id, name, place_type, rank, *box)


def place_rows(
    osm_id: str,
    tags: Mapping[str, str],
    point: tuple[float, float] | None = None,
    box: tuple[float, float, float, float] | None = None,
) -> list[GazetteerRow]:
    """Return gazetteer rows for a ``place=*`` element: a node gives ``point``, a way or relation ``box``."""
    place_type = (tags.get("place") or "").strip().lower()
    if not place_type:
        return []
    radius, rank = PLACE_RADIUS_M.get(place_type, _DEFAULT_RADIUS)
    if box is not None:
        area = _expand(box, _MARGIN_M)
    elif point is not None:
        area = _square(point[0], point[1], radius)
    else:
        return []
    return list(_rows(osm_id, tags, place_type, rank, area))


def boundary_rows(osm_id: str, tags: Mapping[str, str], label: tuple[float, float]) -> list[GazetteerRow]:
    """Return gazetteer rows for an administrative boundary relation, centred on its label node."""
    if tags.get("boundary") != "administrative":
        return []
    try:
        level = int(tags.get("admin_level", ""))
    except ValueError:
        return []
    radius = _ADMIN_RADIUS_M.get(level)
    if radius is None:
        return []
    # Below the city and town ranks, so "Helsinki" finds the city node first.
    rank = 58 - level
    return list(_rows(osm_id, tags, f"admin_level_{level}", rank, _square(label[0], label[1], radius)))


def lookup_area(conn: sqlite3.Connection, text: str) -> Area | None:
    """Return the area of the best-ranked place named ``text``, or None.

    Tries the whole text, then its part before the first comma, so
    "Helsinki, Finland" finds Helsinki.
    """
    candidates = [normalize_text(text)]
    if "," in text:
        candidates.append(normalize_text(text.split(",", 1)[0]))
    for lookup in candidates:
        if not lookup:
            continue
        row = conn.execute(
            "SELECT name, place_type, south, west, north, east, country_code FROM osm_places"
            " WHERE lookup = ? ORDER BY rank DESC, import_id DESC, osm_id LIMIT 1",
            (lookup,),
        ).fetchone()
        if row is not None:
            return Area(
                south=row[2],
                west=row[3],
                north=row[4],
                east=row[5],
                label=f"{row[0]} ({row[1]}, OpenStreetMap)",
                country_code=row[6],
            )
    return None
