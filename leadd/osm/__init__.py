"""OpenStreetMap as a lead source: extract import, tag rules, local search and gazetteer.

- ``tags``: which elements are businesses and how their tags become a lead.
- ``vocabulary``: search words mapped to OSM tags ("dentist" -> amenity=dentist).
- ``importer``: ``leadd import-osm FILE`` streams an extract into the store.
- ``writer``: the store writes of an import (leads, import log, gazetteer).
- ``search``: full-text search over imported leads and the extracts' coverage.
- ``gazetteer``: offline geocoding from named places in imported extracts.
- ``bundled``: the ``import-osm`` command and the bundled extract's first-start import.

The live sources (Overpass, Nominatim) and the ``osm`` provider that combines
them with imported data live in ``leadd.providers``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["BUNDLED_EXTRACT_REGION", "bundled_extract_path"]

# The bundled extract covers central Helsinki; its national phone numbers
# ("09 627161") are read as Finnish.
BUNDLED_EXTRACT_REGION = "FI"
_BUNDLED_EXTRACT = "helsinki-center.osm.pbf"


def bundled_extract_path() -> Path:
    """Return the path of the OpenStreetMap extract shipped with leadd (see data/NOTICE)."""
    return Path(str(resources.files("leadd.osm").joinpath("data", _BUNDLED_EXTRACT)))
