"""The ``osm`` provider: imported OpenStreetMap data first, Overpass for the rest.

Which source a search uses (the coverage rule, also in docs/osm.md):

1. No location: the imported data, or a failed search when nothing is
   imported (Overpass needs an area).
2. The geocoded area lies inside the bounding box of one imported extract:
   the imported data.
3. Otherwise Overpass, when LEADD_OVERPASS_URL is set. Overpass may fail
   (unreachable, rate limited past the retries, server errors). Then the
   search falls back to the imported data with a warning if an imported
   extract covers part of the area, and fails with Overpass's error if not.
4. Overpass disabled: the imported data when an extract covers part of the
   area (with a warning), else a failed search.

After Overpass was unreachable, searches that can fall back skip it for
``_UNREACHABLE_PAUSE_S``, so an offline machine answers without waiting.

Geocoding (``OsmGeocoder``) tries the offline gazetteer of the imported
extracts first, then Nominatim when LEADD_NOMINATIM_URL is set.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from leadd import __version__
from leadd.config import Settings
from leadd.logging import search_id_var
from leadd.osm import gazetteer
from leadd.osm.search import Coverage, coverage, place_from_row, search_local
from leadd.osm.vocabulary import QueryTerms, parse_query
from leadd.providers import Providers
from leadd.providers.base import Area, Page, Place, SearchSpec
from leadd.providers.errors import PermanentUpstreamError, UpstreamError
from leadd.providers.nominatim import NominatimGeocoder
from leadd.providers.overpass import OverpassClient, is_unreachable
from leadd.store import Store
from leadd.store.leads import ATTRIBUTIONS

__all__ = ["OsmGeocoder", "OsmProvider", "register_osm", "user_agent"]

log = logging.getLogger(__name__)

_PAGE_SIZE = 100
_UNREACHABLE_PAUSE_S = 300.0
_PUBLIC_HOSTS = ("overpass-api.de", "nominatim.openstreetmap.org")


def user_agent(contact: str | None) -> str:
    """Return the User-Agent for Overpass and Nominatim: leadd, its version and the operator's contact."""
    return f"leadd/{__version__} ({contact})" if contact else f"leadd/{__version__}"


class OsmGeocoder:
    """The offline gazetteer of imported extracts, then Nominatim."""

    name = "osm"
    calls_kind = "nominatim"  # the gazetteer makes no upstream call

    def __init__(self, store: Store, nominatim: NominatimGeocoder | None, google_configured: bool = False) -> None:
        self._store = store
        self._nominatim = nominatim
        self._google_configured = google_configured

    @property
    def miss_hint(self) -> str:
        if self._nominatim is not None:
            return "neither the imported OpenStreetMap extracts nor Nominatim know it; check the spelling or add the country"
        google = (
            'or search with Google ("provider": "places_new")'
            if self._google_configured
            else "or GOOGLE_PLACES_API_KEY to search with Google"
        )
        return (
            "without Nominatim only places in the imported OpenStreetMap extracts are known (the bundled one "
            f"covers central Helsinki); set LEADD_NOMINATIM_URL to look up other places, {google}"
        )

    async def geocode(self, text: str, *, region: str | None, language: str | None) -> tuple[Area | None, int]:
        area = await self._store.db.read(gazetteer.lookup_area, text)
        if area is not None or self._nominatim is None:
            return area, 0
        return await self._nominatim.geocode(text, region=region, language=language)


class OsmProvider:
    """Searches imported OpenStreetMap data or Overpass, by the coverage rule above."""

    name = "osm"
    source = "osm"
    attribution = ATTRIBUTIONS["osm"]

    def __init__(self, store: Store, overpass: OverpassClient | None) -> None:
        self._store = store
        self._overpass = overpass
        self._unreachable_until = 0.0

    async def data_state(self) -> tuple[str, str, bool]:
        """Dependency check for /health/detailed: what is imported (no data is not a failure)."""
        covered = await self._store.db.read(coverage)
        return "osm_data", covered.describe(), True

    async def search(self, spec: SearchSpec, area: Area | None, checkpoint: dict[str, Any] | None) -> AsyncIterator[Page]:
        terms = parse_query(spec.query)
        if spec.min_rating is not None:
            await self._warn("OpenStreetMap has no ratings, so min_rating leaves no place; search without it")
        if checkpoint and checkpoint.get("source") == "local":
            async for page in self._local(spec, terms, area, checkpoint):
                yield page
            return

        covered = await self._store.db.read(coverage)
        if area is None or covered.contains(area):
            if not covered.imports:
                raise _no_data()
            async for page in self._local(spec, terms, area, None):
                yield page
            return

        places, calls = await self._live(spec, terms, area, covered)
        if places is None:
            async for page in self._local(spec, terms, area, None):
                yield page
            return
        async for page in _pages(places, calls):
            yield page

    async def _live(
        self, spec: SearchSpec, terms: QueryTerms, area: Area, covered: Coverage
    ) -> tuple[list[Place] | None, int]:
        """Return Overpass's places and calls, or (None, 0) when the search should use imported data instead."""
        partial = covered.overlaps(area)
        if self._overpass is None:
            if not partial:
                raise _outside_coverage()
            await self._warn(
                "the area extends beyond the imported OpenStreetMap extracts and Overpass is disabled "
                "(LEADD_OVERPASS_URL); leads come only from the part the extracts cover"
            )
            return None, 0
        if partial and time.monotonic() < self._unreachable_until:
            await self._warn(
                "Overpass was unreachable a moment ago; leads come only from the part of the area "
                "the imported OpenStreetMap extracts cover"
            )
            return None, 0
        region = spec.region or area.country_code
        try:
            return await self._overpass.search(
                terms, area, limit=spec.max_results, region=region, retry_unreachable=not partial
            )
        except UpstreamError as exc:
            if is_unreachable(exc):
                self._unreachable_until = time.monotonic() + _UNREACHABLE_PAUSE_S
            if not partial:
                raise
            log.warning(
                "Overpass failed, searching the imported extracts instead: %s",
                exc.message,
                extra={"event": "overpass_fallback", "upstream_status": exc.status},
            )
            await self._warn(
                f"Overpass failed ({exc.message}); leads come only from the part of the area "
                "the imported OpenStreetMap extracts cover"
            )
            return None, 0

    async def _local(
        self, spec: SearchSpec, terms: QueryTerms, area: Area | None, checkpoint: dict[str, Any] | None
    ) -> AsyncIterator[Page]:
        offset = int(checkpoint.get("offset", 0)) if checkpoint else 0
        pages = int(checkpoint.get("pages_seen", 0)) if checkpoint else 0
        while True:
            size = min(_PAGE_SIZE, spec.max_results - offset)
            rows = await self._store.db.read(search_local, terms, area, spec.require, size, offset) if size > 0 else []
            offset += len(rows)
            pages += 1
            done = len(rows) < size or offset >= spec.max_results
            next_checkpoint = None if done else {"source": "local", "offset": offset, "pages_seen": pages}
            yield Page(
                places=[place_from_row(row) for row in rows],
                checkpoint=next_checkpoint,
                pages_seen=pages,
                places_seen=offset,
            )
            if done:
                return

    async def _warn(self, message: str) -> None:
        search_id = search_id_var.get()
        if search_id is not None:
            await self._store.add_warning(search_id, message)


async def _pages(places: list[Place], calls: int) -> AsyncIterator[Page]:
    """Yield Overpass's places in pages; a resumed search queries Overpass again (no checkpoint)."""
    pages = 0
    for start in range(0, max(len(places), 1), _PAGE_SIZE):
        chunk = places[start : start + _PAGE_SIZE]
        pages += 1
        yield Page(
            places=chunk,
            checkpoint=None,
            pages_seen=pages,
            places_seen=start + len(chunk),
            calls={"overpass": calls} if pages == 1 and calls else {},
        )


def _no_data() -> PermanentUpstreamError:
    return PermanentUpstreamError(
        "osm",
        "no OpenStreetMap data is imported and the search has no location",
        status="NO_DATA",
        user_message="no OpenStreetMap data is imported: give a location (Overpass needs an area), "
        "or import an extract with leadd import-osm FILE",
    )


def _outside_coverage() -> PermanentUpstreamError:
    return PermanentUpstreamError(
        "osm",
        "the area is outside the imported extracts and Overpass is disabled",
        status="OUTSIDE_COVERAGE",
        user_message="the area is outside the imported OpenStreetMap extracts and Overpass is disabled "
        "(LEADD_OVERPASS_URL is empty); import an extract that covers it with leadd import-osm FILE",
    )


def register_osm(providers: Providers, settings: Settings, store: Store) -> OsmProvider:
    """Build the osm provider and its geocoder from the settings and add them to ``providers``."""
    agent = user_agent(settings.osm_contact)

    overpass = None
    if settings.overpass_url:
        overpass = OverpassClient(
            providers.session,
            url=settings.overpass_url,
            user_agent=agent,
            query_timeout_s=settings.overpass_timeout_s,
            request_timeout_s=settings.upstream_timeout_s,
            retry=providers.retry,
        )

    nominatim = None
    if settings.nominatim_url:
        nominatim = NominatimGeocoder(
            providers.session,
            base_url=settings.nominatim_url,
            user_agent=agent,
            timeout_s=settings.upstream_timeout_s,
            retry=providers.retry,
        )

    public = [url for url in (settings.overpass_url, settings.nominatim_url) if url and any(h in url for h in _PUBLIC_HOSTS)]
    if public and not settings.osm_contact:
        log.warning(
            "the public Overpass and Nominatim servers ask for a contact in the User-Agent; set LEADD_OSM_CONTACT",
            extra={"event": "osm_contact_missing"},
        )

    provider = OsmProvider(store, overpass)
    states = {
        "overpass": "configured" if overpass else "disabled",
        "nominatim": "configured" if nominatim else "disabled",
    }
    geocoder = OsmGeocoder(store, nominatim, google_configured=settings.google_places_api_key is not None)
    providers.register("osm", provider, geocoder, states=states)
    return provider
