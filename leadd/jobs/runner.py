"""One search, start to end: geocode, page through the provider, store, finish."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from typing import Any

from leadd.jobs.areas import AreaResolver, location_not_found
from leadd.logging import Redactor, search_id_var
from leadd.providers import Providers
from leadd.providers.base import Area, Place, SearchSpec
from leadd.providers.errors import ProviderNotConfigured, UpstreamError
from leadd.store import Store

__all__ = ["MAX_ATTEMPTS", "SearchRunner"]

log = logging.getLogger(__name__)

# A search that was interrupted this many times (each start resumes it) is
# failed instead: it may be what crashes the daemon.
MAX_ATTEMPTS = 5

# Called with a search's id once every page is stored and before the search
# is marked succeeded: the scoring stage.
AfterPlaces = Callable[[str], Awaitable[None]]


def spec_from_row(row: sqlite3.Row) -> SearchSpec:
    request = json.loads(row["request"])
    return SearchSpec(
        query=row["query"],
        location=row["location"],
        max_results=int(request.get("max_results", 60)),
        min_rating=request.get("min_rating"),
        require=frozenset(request.get("require") or ()),
        language=request.get("language"),
        region=request.get("region"),
    )


def matches(place: Place, spec: SearchSpec) -> bool:
    """Apply the search's own filters, which not every provider can apply upstream."""
    if not spec.rating_ok(place.rating):
        return False
    if "phone" in spec.require and not (place.phone_international or place.phone_national):
        return False
    if "website" in spec.require and not place.website:
        return False
    return True


class SearchRunner:
    """Runs searches; ``is_cancelled(id)`` distinguishes a user's cancel from a shutdown."""

    def __init__(
        self,
        store: Store,
        providers: Providers,
        redactor: Redactor,
        is_cancelled: Callable[[str], bool],
    ) -> None:
        self._store = store
        self._providers = providers
        self._redact = redactor
        self._is_cancelled = is_cancelled
        self._areas = AreaResolver(store, providers)
        self.after_places: list[AfterPlaces] = []
        self.last_error: str | None = None

    async def run(self, search_id: str) -> None:
        token = search_id_var.set(search_id)
        try:
            await self._run(search_id)
        finally:
            search_id_var.reset(token)

    async def _run(self, search_id: str) -> None:
        row = await self._store.start_attempt(search_id)
        if row is None:
            return  # cancelled while it was queued
        if row["attempts"] > MAX_ATTEMPTS:
            await self._fail(
                search_id,
                "too_many_attempts",
                f"the search was interrupted {MAX_ATTEMPTS} times (the daemon stopped or crashed "
                "while it ran); check the log for this search id, then submit it again",
            )
            return

        resumed = row["attempts"] > 1
        log.info(
            "search %s: %r near %r via %s",
            "resumed" if resumed else "started",
            row["query"],
            row["location"],
            row["provider"],
            extra={"event": "search_resumed" if resumed else "search_started", "attempt": row["attempts"]},
        )
        started = time.monotonic()
        try:
            if row["places_stored_at"] is None:
                stored = await self._fetch(search_id, row)
                await self._store.mark_places_stored(search_id)
            else:
                stored = row["leads_stored"]  # an earlier attempt stored every page
            for stage in self.after_places:
                await stage(search_id)
        except asyncio.CancelledError:
            if self._is_cancelled(search_id):
                log.info("search cancelled by the user", extra={"event": "search_cancelled"})
                return
            log.info("search interrupted by shutdown; it resumes on the next start", extra={"event": "search_interrupted"})
            raise
        except UpstreamError as exc:
            await self._fail(search_id, exc.code, exc.user_message)
            return
        except ProviderNotConfigured as exc:
            await self._fail(search_id, "provider_not_configured", str(exc))
            return
        except Exception:
            log.exception("search failed with an internal error", extra={"event": "search_internal_error"})
            await self._fail(search_id, "internal_error", f"internal error; the log has the details under search id {search_id}")
            return

        if await self._store.finish_search(search_id, "succeeded"):
            log.info(
                "search succeeded with %d leads in %.2f s",
                stored,
                time.monotonic() - started,
                extra={"event": "search_succeeded", "leads_stored": stored},
            )

    async def _fetch(self, search_id: str, row: sqlite3.Row) -> int:
        spec = spec_from_row(row)
        provider = self._providers.get(row["provider"])
        area = await self._resolve_area(search_id, row["provider"], spec)
        region = spec.region or (area.country_code if area else None)
        checkpoint: dict[str, Any] | None = json.loads(row["checkpoint"]) if row["checkpoint"] else None
        stored = row["leads_stored"]
        async for page in provider.search(spec, area, checkpoint):
            kept = [place for place in page.places if matches(place, spec)]
            stored = await self._store.record_page(search_id, page, kept, region)
            log.info(
                "page %d: %d places, %d kept, %d leads in the search",
                page.pages_seen,
                len(page.places),
                len(kept),
                stored,
                extra={"event": "search_page_stored", "page": page.pages_seen, "kept": len(kept)},
            )
        return stored

    async def _resolve_area(self, search_id: str, provider: str, spec: SearchSpec) -> Area | None:
        if not spec.location:
            return None
        resolved = await self._areas.resolve(provider, spec.location, region=spec.region, language=spec.language)
        if resolved is None:
            await self._store.add_warning(search_id, f"location ignored: provider {provider} has no geocoder")
            return None
        if resolved.calls:
            await self._store.add_usage(search_id, {resolved.calls_kind: resolved.calls})
        if resolved.area is None:
            raise location_not_found(resolved, spec.location)
        return resolved.area

    async def _fail(self, search_id: str, code: str, message: str) -> None:
        message = self._redact(message)
        self.last_error = message
        if await self._store.finish_search(search_id, "failed", code, message):
            log.warning("search failed: %s", message, extra={"event": "search_failed", "error_code": code})
