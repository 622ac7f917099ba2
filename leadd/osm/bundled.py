"""The import behind ``leadd import-osm``, and the bundled extract's import on first start.

On start, the daemon imports the extract shipped in ``leadd/osm/data`` when
LEADD_OSM_IMPORT_BUNDLED allows it (unset: when the default provider is
osm) and the store contains no OpenStreetMap lead yet. The import blocks
start-up before the search workers start: it takes well under a second for
the bundled extract (docs/benchmarks.md), and a failure is logged without
stopping the daemon, which can still search through Overpass.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from leadd.config import PlacesProvider, Settings
from leadd.osm import BUNDLED_EXTRACT_REGION, bundled_extract_path
from leadd.store import Store

if TYPE_CHECKING:
    from leadd.osm.importer import ImportResult

__all__ = ["EX_DATAERR", "EX_NOINPUT", "import_bundled_if_empty", "run_import", "wants_bundled_import"]

log = logging.getLogger(__name__)

# sysexits.h: the input file is not valid / does not exist or cannot be opened.
EX_DATAERR = 65
EX_NOINPUT = 66
_EX_CANTCREAT = 73


def wants_bundled_import(settings: Settings) -> bool:
    """Tell whether the bundled extract may be imported on start (see the module docstring)."""
    if settings.osm_import_bundled is not None:
        return settings.osm_import_bundled
    return settings.default_provider == PlacesProvider.OSM


async def import_bundled_if_empty(
    settings: Settings, store: Store, on_stage: Callable[[str], None]
) -> ImportResult | None:
    """Import the bundled extract when the settings allow it and the store has no OSM lead; log the outcome."""
    if not wants_bundled_import(settings):
        return None
    has_osm = await store.db.read(
        lambda conn: conn.execute("SELECT EXISTS (SELECT 1 FROM leads WHERE source = 'osm')").fetchone()[0]
    )
    if has_osm:
        return None
    # Imported here: pyosmium loads only when an import runs, not on every start.
    from leadd.osm.importer import OsmImportError, import_extract

    path = bundled_extract_path()
    on_stage("importing the bundled OpenStreetMap extract")
    log.info(
        "importing the bundled OpenStreetMap extract %s",
        path.name,
        extra={"event": "osm_bundled_import_started", "file": str(path)},
    )
    try:
        result = await asyncio.to_thread(
            import_extract, settings.database_path, path, region=BUNDLED_EXTRACT_REGION
        )
    except (OsmImportError, sqlite3.Error, OSError) as exc:
        log.error(
            "the bundled OpenStreetMap extract was not imported: %s; searches outside imported data "
            "still use Overpass, and leadd import-osm FILE imports an extract",
            exc,
            extra={"event": "osm_bundled_import_failed"},
        )
        return None
    log.info(
        "imported the bundled OpenStreetMap extract: %d leads in %.2f s",
        result.counts.get("inserted", 0) + result.counts.get("updated", 0) + result.counts.get("unchanged", 0),
        result.duration_s,
        extra={
            "event": "osm_bundled_import_finished",
            "import_id": result.import_id,
            "counts": result.counts,
            "duration_s": round(result.duration_s, 3),
        },
    )
    return result


def run_import(settings: Settings, path: Path, region: str | None, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Run ``leadd import-osm``: import ``path``, print progress to ``err`` and a summary to ``out``; return the exit status."""
    from leadd.osm.importer import ExtractNotFound, OsmImportError, import_extract

    print(f"importing {path} into {settings.database_path}", file=err)
    try:
        result = import_extract(
            settings.database_path, path, region=region, progress=lambda stage: print(f"  {stage}", file=err)
        )
    except ExtractNotFound as exc:
        print(f"error: {exc}", file=err)
        return EX_NOINPUT
    except OsmImportError as exc:
        print(f"error: {exc}; check that it is a complete OpenStreetMap extract (.osm.pbf)", file=err)
        return EX_DATAERR
    except (sqlite3.Error, OSError) as exc:
        print(f"error: cannot write the store {settings.database_path}: {exc}", file=err)
        return _EX_CANTCREAT
    counts = result.counts
    leads = counts.get("inserted", 0) + counts.get("updated", 0) + counts.get("unchanged", 0)
    print(
        f"imported {leads} leads ({counts.get('inserted', 0)} new, {counts.get('updated', 0)} changed, "
        f"{counts.get('unchanged', 0)} unchanged, {counts.get('missing', 0)} no longer in the extract) "
        f"and {counts.get('places', 0)} gazetteer names in {result.duration_s:.2f} s",
        file=out,
    )
    if result.bbox is not None:
        south, west, north, east = result.bbox
        print(f"coverage: {south:.5f},{west:.5f} to {north:.5f},{east:.5f} (south,west to north,east)", file=out)
    return 0
