"""``leadd import-osm FILE``: stream an OpenStreetMap extract into the store.

The file is read twice, each time filtered in C++ by pyosmium so that
Python receives only the few elements that matter:

1. relations with a business, ``place`` or ``boundary`` tag: business and
   place relations are kept with the ids of their member ways and nodes,
   and so are boundaries with a label node;
2. nodes and ways, with node locations cached in an index: in memory for
   a small file, else a disk-backed ``sparse_file_array`` in a temporary
   folder next to the store (see ``_location_index``). Named
   business and place elements become leads and gazetteer rows, written in
   batches as they come; the ways that the filter drops go to a handler
   that keeps the bounding boxes of the member ways found in pass 1. After
   the pass, each kept relation is placed at the centre of its members.

Memory contains one batch of rows and the members of kept relations. Above
the small-file limit, node locations live in the index file, whose pages
the kernel may drop, so the process's anonymous memory does not grow with
the extract. A truncated or
corrupt file fails in pass 1, before any lead is written.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import osmium
import osmium.filter
import osmium.index

from leadd.osm import gazetteer, tags
from leadd.osm.writer import GazetteerRow, ImportWriter, lead_row
from leadd.store.migrate import apply_migrations

__all__ = ["ExtractNotFound", "ImportResult", "OsmImportError", "import_extract", "open_store"]

log = logging.getLogger(__name__)

_BATCH_SIZE = 2000

# Files up to this size keep node locations in memory, which saved about
# 13 ms of 150 ms on the bundled extract. A PBF file takes about 30 bytes
# per node and the index 16, so this index stays below about 20 MB.
MEMORY_INDEX_MAX_BYTES = 32 * 1024 * 1024
_BUSY_TIMEOUT_MS = 5000

Box = tuple[float, float, float, float]  # south, west, north, east


class OsmImportError(Exception):
    """The extract cannot be read; the message names the file and the cause."""


class ExtractNotFound(OsmImportError):
    """The extract file does not exist or cannot be opened."""


@dataclass
class ImportResult:
    """The outcome of an import: its id in osm_imports, the coverage and the counts."""

    import_id: int
    file: str
    sha256: str
    header_timestamp: str | None
    bbox: Box | None
    country_code: str | None
    counts: dict[str, int]
    duration_s: float


@dataclass
class _Relation:
    osm_id: int
    version: int
    tags: dict[str, str]
    ways: list[int]
    nodes: list[int]
    label: int | None = None


@dataclass
class _Extent:
    """Bounding box of the points seen so far."""

    south: float = 90.0
    west: float = 180.0
    north: float = -90.0
    east: float = -180.0

    def add(self, latitude: float, longitude: float) -> None:
        self.south = min(self.south, latitude)
        self.north = max(self.north, latitude)
        self.west = min(self.west, longitude)
        self.east = max(self.east, longitude)

    def box(self) -> Box | None:
        return (self.south, self.west, self.north, self.east) if self.south <= self.north else None


@dataclass
class _Pass:
    """State shared by the passes of one import."""

    source: str
    writer: ImportWriter
    region: str | None
    batch_size: int
    leads: list[dict[str, Any]] = field(default_factory=list)
    places: list[GazetteerRow] = field(default_factory=list)
    countries: Counter[str] = field(default_factory=Counter)
    counts: Counter[str] = field(default_factory=Counter)
    extent: _Extent = field(default_factory=_Extent)
    newest: datetime | None = None

    def default_region(self) -> str | None:
        if self.region:
            return self.region
        common = self.countries.most_common(1)
        return common[0][0] if common else None

    def add_lead(
        self,
        kind: str,
        element: tuple[int, int, dict[str, str]],
        pairs: list[tuple[str, str]],
        point: tuple[float, float],
    ) -> None:
        element_id, version, element_tags = element
        country = tags.element_region(element_tags, None)
        if country:
            self.countries[country] += 1
        region = tags.element_region(element_tags, self.default_region())
        place = tags.place_from_element(kind, element_id, element_tags, point[0], point[1], region, version, pairs)
        self.leads.append(lead_row(place, region))
        self.counts[f"{kind}_leads"] += 1
        if len(self.leads) >= self.batch_size:
            self.flush()

    def add_places(self, rows: list[GazetteerRow]) -> None:
        self.places.extend(rows)
        if len(self.places) >= self.batch_size:
            self.flush()

    def note_timestamp(self, element: Any) -> None:
        stamp = element.timestamp
        if stamp is not None and (self.newest is None or stamp > self.newest):
            self.newest = stamp

    def newest_text(self) -> str | None:
        # Files without metadata report the epoch for every element.
        if self.newest is None or self.newest.year <= 1970:
            return None
        return self.newest.strftime("%Y-%m-%dT%H:%M:%SZ")

    def flush(self) -> None:
        self.writer.write_leads(self.leads)
        self.writer.write_places(self.places)
        self.leads = []
        self.places = []


def open_store(db_path: Path) -> sqlite3.Connection:
    """Open the store for an import (WAL, busy timeout) and apply pending migrations.

    Creates the state folder when it does not exist yet, as the daemon does.
    """
    db_path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    apply_migrations(conn)
    return conn


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_file(path: Path) -> None:
    if not path.exists():
        raise ExtractNotFound(f"{path} does not exist; give the path of an .osm.pbf extract")
    if not path.is_file():
        raise ExtractNotFound(f"{path} is not a file; give the path of an .osm.pbf extract")
    if not os.access(path, os.R_OK):
        raise ExtractNotFound(f"{path} is not readable by this user; fix its mode or owner")


def _header(path: Path) -> tuple[str | None, Box | None]:
    header = osmium.FileProcessor(str(path)).header
    stamp = header.get("osmosis_replication_timestamp") or header.get("timestamp") or None
    box = header.box()
    if not box.valid():
        return stamp, None
    return stamp, (box.bottom_left.lat, box.bottom_left.lon, box.top_right.lat, box.top_right.lon)


def _relations_pass(path: str, state: _Pass) -> list[_Relation]:
    """Pass 1: keep business and place relations and labelled boundaries."""
    selected: list[_Relation] = []
    processor = osmium.FileProcessor(path, osmium.osm.RELATION).with_filter(
        osmium.filter.KeyFilter(*tags.BUSINESS_KEYS, "place", "boundary")
    )
    for relation in processor:
        element_tags = dict(relation.tags)
        # Place relations must describe one area; boundaries with a place tag
        # (often hundreds of member ways) are placed by their label node.
        place = bool(element_tags.get("place") and element_tags.get("name"))
        place = place and element_tags.get("type") in tags.PLACE_RELATION_TYPES
        placed = bool(tags.lead_tags("relation", element_tags)) or place
        label = None
        if element_tags.get("boundary") == "administrative" and element_tags.get("name"):
            label = next((m.ref for m in relation.members if m.type == "n" and m.role in ("label", "admin_centre")), None)
        if not placed and label is None:
            continue
        ways = [m.ref for m in relation.members if m.type == "w"] if placed else []
        nodes = [m.ref for m in relation.members if m.type == "n"] if placed else []
        selected.append(_Relation(relation.id, relation.version, element_tags, ways, nodes, label))
        state.note_timestamp(relation)
    return selected


def _way_box(way: Any) -> Box | None:
    extent = _Extent()
    for node in way.nodes:
        location = node.location
        if location.valid():
            extent.add(location.lat, location.lon)
    return extent.box()


class _MemberWays:
    """Fallback handler of pass 2: bounding boxes of relation member ways that the tag filters drop."""

    def __init__(self, way_ids: set[int]) -> None:
        self.way_ids = way_ids
        self.boxes: dict[int, Box] = {}

    def way(self, way: Any) -> None:
        if way.id in self.way_ids:
            box = _way_box(way)
            if box is not None:
                self.boxes[way.id] = box


def _nodes_ways_pass(path: str, state: _Pass, index: Any, members: _MemberWays) -> None:
    """Pass 2: leads and gazetteer rows from named business and place nodes and ways."""
    processor = (
        osmium.FileProcessor(path, osmium.osm.NODE | osmium.osm.WAY)
        .with_locations(index)
        .with_filter(osmium.filter.KeyFilter(*tags.BUSINESS_KEYS, "place"))
        .with_filter(osmium.filter.KeyFilter("name"))
    )
    # Handler objects are called only for the element types they define:
    # _MemberWays has way() alone, so dropped nodes never reach Python.
    processor.handler_for_filtered(members)
    for element in processor:
        element_tags = dict(element.tags)
        kind = "node" if element.is_node() else "way"
        if kind == "node":
            location = element.location
            if not location.valid():
                state.counts["skipped_without_location"] += 1
                continue
            point = (location.lat, location.lon)
            box = None
        else:
            members.way(element)
            box = _way_box(element)
            if box is None:
                state.counts["skipped_without_location"] += 1
                continue
            point = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
        state.extent.add(*point)
        state.note_timestamp(element)
        pairs = tags.lead_tags(kind, element_tags)
        if pairs:
            state.add_lead(kind, (element.id, element.version, element_tags), pairs, point)
        if element_tags.get("place"):
            osm_id = f"{kind}/{element.id}"
            state.add_places(gazetteer.place_rows(osm_id, element_tags, point=point if box is None else None, box=box))


def _node_location(index: Any, node_id: int) -> tuple[float, float] | None:
    try:
        location = index.get(node_id)
    except KeyError:
        return None
    return (location.lat, location.lon) if location.valid() else None


def _place_relations(relations: list[_Relation], way_boxes: dict[int, Box], index: Any, state: _Pass) -> None:
    """Write leads and gazetteer rows for the relations of pass 1, now that members have locations."""
    for relation in relations:
        osm_id = f"relation/{relation.osm_id}"
        if relation.label is not None:
            label = _node_location(index, relation.label)
            if label is not None:
                state.add_places(gazetteer.boundary_rows(osm_id, relation.tags, label))
        if not relation.ways and not relation.nodes:
            continue
        extent = _Extent()
        for way_id in relation.ways:
            box = way_boxes.get(way_id)
            if box is not None:
                extent.add(box[0], box[1])
                extent.add(box[2], box[3])
        for node_id in relation.nodes:
            location = _node_location(index, node_id)
            if location is not None:
                extent.add(*location)
        box = extent.box()
        if box is None:
            state.counts["skipped_without_location"] += 1
            continue
        point = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
        pairs = tags.lead_tags("relation", relation.tags)
        if pairs:
            state.add_lead("relation", (relation.osm_id, relation.version, relation.tags), pairs, point)
        if relation.tags.get("place"):
            state.add_places(gazetteer.place_rows(osm_id, relation.tags, box=box))


def import_extract(
    db_path: Path,
    source: Path,
    *,
    region: str | None = None,
    progress: Callable[[str], None] | None = None,
    batch_size: int = _BATCH_SIZE,
) -> ImportResult:
    """Import the extract ``source`` into the store at ``db_path``.

    ``region`` (ISO 3166-1 alpha-2) reads national phone numbers of elements
    without addr:country; unset, the most common addr:country seen so far in
    the file is used. Raises ExtractNotFound for a missing file and
    OsmImportError for a file pyosmium cannot read; a failed import is
    recorded in osm_imports with state failed.
    """
    source = Path(source)
    _check_file(source)
    report = progress or (lambda stage: None)
    started = time.monotonic()
    try:
        header_timestamp, header_box = _header(source)
    except RuntimeError as exc:
        raise OsmImportError(f"cannot read {source} as an OpenStreetMap file: {str(exc).rstrip('.')}") from None

    conn = open_store(db_path)
    try:
        writer = ImportWriter(conn)
        digest = _sha256(source)
        writer.begin(str(source.resolve()), digest, header_timestamp)
        state = _Pass(str(source), writer, region.upper() if region else None, batch_size)
        try:
            _run_passes(state, db_path.parent, report)
        except RuntimeError as exc:
            message = f"cannot read {source} as an OpenStreetMap file: {str(exc).rstrip('.')}"
            writer.fail(message, time.monotonic() - started)
            raise OsmImportError(message) from None
        except BaseException as exc:
            writer.fail(f"{type(exc).__name__}: {exc}", time.monotonic() - started)
            raise
        bbox = header_box or state.extent.box()
        country = state.default_region()
        duration = time.monotonic() - started
        counts = writer.finish(bbox, country, state.newest_text(), dict(state.counts), duration)
    finally:
        conn.close()
    return ImportResult(
        import_id=writer.import_id or 0,
        file=str(source),
        sha256=digest,
        header_timestamp=header_timestamp,
        bbox=bbox,
        country_code=country,
        counts=counts,
        duration_s=duration,
    )


def _location_index(source: Path, scratch: Path) -> Any:
    """Create the node location index: in memory for a small file, else in a file under ``scratch``."""
    if source.stat().st_size <= MEMORY_INDEX_MAX_BYTES:
        return osmium.index.create_map("flex_mem")
    return osmium.index.create_map(f"sparse_file_array,{scratch / 'node-locations'}")


def _run_passes(state: _Pass, work_dir: Path, report: Callable[[str], None]) -> None:
    report("reading relations")
    relations = _relations_pass(state.source, state)
    members = _MemberWays({way_id for relation in relations for way_id in relation.ways})
    with tempfile.TemporaryDirectory(prefix="leadd-osm-import-", dir=work_dir) as scratch:
        index = _location_index(Path(state.source), Path(scratch))
        report("reading nodes and ways")
        _nodes_ways_pass(state.source, state, index, members)
        _place_relations(relations, members.boxes, index, state)
        state.flush()
        del index
