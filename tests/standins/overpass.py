"""Stand-in for the Overpass API interpreter: POST or GET /api/interpreter.

It serves the real central-Helsinki extract that leadd ships
(``leadd/osm/data/helsinki-center.osm.pbf``): every tagged node, way and
relation, with node coordinates and, for ways and relations, the centre of
their members' bounding box, as ``out tags center`` gives them.

It evaluates only the query shape that leadd builds (and rejects anything
else with 400, as Overpass rejects a query it cannot parse)::

    [out:json][timeout:N][bbox:S,W,N,E];
    (
      nwr["key"="value"]["name"];
      nwr["key"]["name"~"regex",i];
    );
    out tags center LIMIT;

An element is in the bbox when its point (a node's location, else its
centre) is; the real server also returns ways that only cross the bbox. The
response envelope (version, generator, osm3s) has the fields of Overpass's
JSON output, with this stand-in named as the generator. Faults (429, 504,
delays past the client's timeout) come from the StandIn base class.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import osmium
from aiohttp import web

from tests.standins.base import StandIn

__all__ = ["OverpassStandIn", "load_extract_elements"]

EXTRACT = Path(__file__).resolve().parent.parent.parent / "leadd" / "osm" / "data" / "helsinki-center.osm.pbf"

_SETTINGS = re.compile(r"^\s*(\[[^\]]+\])+;\s*")
_SETTING = re.compile(r"\[(\w+):([^\]]*)\]")
_STATEMENT = re.compile(r"^nwr((?:\[[^\]]*\])+);$")
_FILTER = re.compile(r'\["([^"]+)"(?:(=|~)"((?:[^"\\]|\\.)*)"(,i)?)?\]')
_OUT = re.compile(r"^out tags center (\d+);$")


class QueryError(ValueError):
    """The query is not one of the shapes this stand-in evaluates."""


def _bbox(box: tuple[float, float, float, float] | None, lat: float, lon: float) -> tuple[float, float, float, float]:
    if box is None:
        return (lat, lon, lat, lon)
    return (min(box[0], lat), min(box[1], lon), max(box[2], lat), max(box[3], lon))


def load_extract_elements(path: Path = EXTRACT) -> tuple[list[dict[str, Any]], str]:
    """Return the extract's tagged elements as Overpass ``out tags center`` objects, and its newest timestamp."""
    nodes: dict[int, tuple[float, float]] = {}
    way_boxes: dict[int, tuple[float, float, float, float]] = {}
    elements: list[dict[str, Any]] = []
    relations = []
    newest = ""
    for obj in osmium.FileProcessor(str(path)):
        stamp = obj.timestamp.strftime("%Y-%m-%dT%H:%M:%SZ")
        newest = max(newest, stamp)
        tags = dict(obj.tags)
        if obj.is_node():
            if not obj.location.valid():
                continue
            nodes[obj.id] = (obj.location.lat, obj.location.lon)
            if tags:
                elements.append({"type": "node", "id": obj.id, "lat": obj.location.lat, "lon": obj.location.lon, "tags": tags})
        elif obj.is_way():
            box = None
            for ref in (node.ref for node in obj.nodes):
                if ref in nodes:
                    box = _bbox(box, *nodes[ref])
            if box is not None:
                way_boxes[obj.id] = box
                if tags:
                    center = {"lat": (box[0] + box[2]) / 2, "lon": (box[1] + box[3]) / 2}
                    elements.append({"type": "way", "id": obj.id, "center": center, "tags": tags})
        elif tags:
            relations.append((obj.id, tags, [(member.type, member.ref) for member in obj.members]))
    for relation_id, tags, members in relations:
        box = None
        for kind, ref in members:
            if kind == "n" and ref in nodes:
                box = _bbox(box, *nodes[ref])
            elif kind == "w" and ref in way_boxes:
                south, west, north, east = way_boxes[ref]
                box = _bbox(_bbox(box, south, west), north, east)
        if box is not None:
            center = {"lat": (box[0] + box[2]) / 2, "lon": (box[1] + box[3]) / 2}
            elements.append({"type": "relation", "id": relation_id, "center": center, "tags": tags})
    return elements, newest


def _point(element: dict[str, Any]) -> tuple[float, float]:
    if element["type"] == "node":
        return element["lat"], element["lon"]
    return element["center"]["lat"], element["center"]["lon"]


def parse_query(text: str) -> tuple[dict[str, str], list[list[tuple[str, str | None, str | None, bool]]], int]:
    """Return (settings, statements as filter lists, out limit); raises QueryError for any other shape."""
    match = _SETTINGS.match(text)
    if match is None:
        raise QueryError("the query does not start with [out:json][timeout:N][bbox:...];")
    settings = dict(_SETTING.findall(match.group(0)))
    lines = [line.strip() for line in text[match.end() :].splitlines() if line.strip()]
    if len(lines) < 3 or lines[0] != "(" or lines[-2] != ");":
        raise QueryError("expected a union ( ... ); followed by an out statement")
    out = _OUT.match(lines[-1])
    if out is None:
        raise QueryError(f"unsupported out statement {lines[-1]!r}")
    statements = []
    for line in lines[1:-2]:
        statement = _STATEMENT.match(line)
        if statement is None:
            raise QueryError(f"unsupported statement {line!r}")
        filters = [(key, op or None, value if op else None, bool(flag)) for key, op, value, flag in _FILTER.findall(statement.group(1))]
        statements.append(filters)
    return settings, statements, int(out.group(1))


def _matches(tags: dict[str, str], filters: list[tuple[str, str | None, str | None, bool]]) -> bool:
    for key, op, value, ignore_case in filters:
        actual = tags.get(key)
        if actual is None:
            return False
        if op == "=" and actual != value:
            return False
        if op == "~" and not re.search(value or "", actual, re.IGNORECASE if ignore_case else 0):
            return False
    return True


class OverpassStandIn(StandIn):
    name = "overpass"

    def __init__(self, **kwargs: Any) -> None:
        self.elements, self.timestamp = load_extract_elements()
        # The base class records JSON bodies only; Overpass queries are form-encoded.
        self.answered_queries: list[str] = []
        super().__init__(**kwargs)

    def on_reset(self) -> None:
        self.answered_queries.clear()

    def setup_routes(self) -> None:
        self.route("POST", "/api/interpreter", "interpreter", self._interpreter)
        self.route("GET", "/api/interpreter", "interpreter", self._interpreter)

    async def _interpreter(self, request: web.Request, body: Any) -> web.StreamResponse:
        if request.method == "POST":
            form = await request.post()
            query = str(form.get("data", ""))
        else:
            query = request.query.get("data", "")
        self.answered_queries.append(query)
        try:
            found = self.evaluate(query)
        except QueryError as exc:
            return web.Response(status=400, text=f"Error: the stand-in cannot parse the query: {exc}", content_type="text/html")
        return web.json_response(
            {
                "version": 0.6,
                "generator": "Overpass API (leadd test stand-in)",
                "osm3s": {
                    "timestamp_osm_base": self.timestamp,
                    "copyright": "The data included in this document is from www.openstreetmap.org. "
                    "The data is made available under ODbL.",
                },
                "elements": found,
            }
        )

    def evaluate(self, query: str) -> list[dict[str, Any]]:
        """Return the elements the query selects, in Overpass's default order (type, then id), cut to its limit."""
        settings, statements, limit = parse_query(query)
        try:
            south, west, north, east = (float(part) for part in settings["bbox"].split(","))
        except (KeyError, ValueError):
            raise QueryError("the query has no valid [bbox:south,west,north,east]") from None
        found = []
        for element in self.elements:
            lat, lon = _point(element)
            if not (south <= lat <= north and west <= lon <= east):
                continue
            if any(_matches(element["tags"], filters) for filters in statements):
                found.append(element)
        found.sort(key=lambda element: (("node", "way", "relation").index(element["type"]), element["id"]))
        return found[:limit]
