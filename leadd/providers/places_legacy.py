"""Legacy Places API through the googlemaps client: Text Search plus Place Details.

For Cloud projects that still have the legacy API. Text Search returns no
phone or website, so each result costs one Place Details call for them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from leadd.providers.base import (
    Area,
    Page,
    Place,
    SearchSpec,
    restart_after_rejected_token,
    resume_point,
    token_checkpoint,
)
from leadd.providers.errors import PermanentUpstreamError
from leadd.providers.google_maps import GoogleMapsClient
from leadd.providers.values import integer_or_none, number_or_none, text_or_none

__all__ = ["PlacesLegacyProvider", "parse_legacy_place"]

log = logging.getLogger(__name__)

_DETAIL_FIELDS = [
    "business_status",
    "formatted_phone_number",
    "international_phone_number",
    "url",
    "website",
]
_UPSTREAM = "places_legacy"
_API = "Places API (legacy)"


class PlacesLegacyProvider:
    name = "places_legacy"
    source = "google"
    attribution = "Google Maps"

    def __init__(
        self,
        client: GoogleMapsClient,
        *,
        page_token_delay_s: float = 2.0,
        page_token_attempts: int = 4,
        details_concurrency: int = 4,
    ) -> None:
        self._client = client
        # A next_page_token becomes valid about 2 s after it is issued;
        # until then Google answers INVALID_REQUEST.
        self._page_token_delay_s = page_token_delay_s
        self._page_token_attempts = page_token_attempts
        self._details_limit = asyncio.Semaphore(details_concurrency)

    async def search(
        self, spec: SearchSpec, area: Area | None, checkpoint: dict[str, Any] | None
    ) -> AsyncIterator[Page]:
        token, seen, pages = resume_point(checkpoint)

        while seen < spec.max_results:
            calls: dict[str, int] = {}
            try:
                data = await self._text_search(spec, area, token, calls)
            except PermanentUpstreamError as exc:
                # Legacy tokens expire within minutes of being issued.
                if not restart_after_rejected_token(token, checkpoint, rejected=exc.status == "INVALID_REQUEST", status=exc.status):
                    raise
                checkpoint, token, seen, pages = None, None, 0, 0
                continue
            checkpoint = None
            returned = [place for place in map(parse_legacy_place, data.get("results") or []) if place is not None]
            # Legacy Text Search only biases by a circle; keep the rectangle exact.
            places = [place for place in returned if _inside(place, area)][: spec.max_results - seen]
            seen += len(places)
            pages += 1
            await self._add_details(places, spec, calls)
            token = data.get("next_page_token") or None
            if seen >= spec.max_results or not returned:
                # An empty page also ends the search, so a misbehaving
                # upstream cannot keep it paging forever.
                token = None
            yield Page(places, token_checkpoint(token, seen, pages), pages, seen, calls)
            if token is None:
                return

    async def _text_search(
        self, spec: SearchSpec, area: Area | None, token: str | None, calls: dict[str, int]
    ) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"query": spec.query, "language": spec.language, "region": spec.region}
        if area is not None:
            latitude, longitude = area.center
            kwargs["location"] = (latitude, longitude)
            kwargs["radius"] = min(50_000, max(1, round(area.radius_m)))
        if token is None:
            result = await self._client.call(
                _UPSTREAM, _API, lambda client: client.places(**kwargs), operation="places_legacy text search"
            )
            calls["places_text_search"] = calls.get("places_text_search", 0) + 1
            return result

        for attempt in range(1, self._page_token_attempts + 1):
            await asyncio.sleep(self._page_token_delay_s)
            try:
                result = await self._client.call(
                    _UPSTREAM,
                    _API,
                    lambda client: client.places(page_token=token, **kwargs),
                    operation="places_legacy next page",
                )
            except PermanentUpstreamError as exc:
                if exc.status != "INVALID_REQUEST" or attempt == self._page_token_attempts:
                    raise
                log.info(
                    "page token not valid yet, attempt %d of %d",
                    attempt,
                    self._page_token_attempts,
                    extra={"event": "page_token_not_ready", "attempt": attempt},
                )
                continue
            calls["places_text_search"] = calls.get("places_text_search", 0) + 1
            return result
        raise AssertionError("unreachable: the loop returns or raises")

    async def _add_details(self, places: list[Place], spec: SearchSpec, calls: dict[str, int]) -> None:
        """Fetch the contact fields of ``places``; each Place Details call is billed.

        Places that the search's ``min_rating`` drops anyway are skipped: the
        rating comes with the text search.
        """

        async def fill(place: Place) -> None:
            async with self._details_limit:
                data = await self._client.call(
                    _UPSTREAM,
                    _API,
                    lambda client: client.place(
                        place.place_id, fields=_DETAIL_FIELDS, language=spec.language, reviews_sort=None
                    ),
                    operation="places_legacy place details",
                )
            calls["place_details"] = calls.get("place_details", 0) + 1
            details = data.get("result") if isinstance(data, dict) else None
            if isinstance(details, dict):
                place.phone_national = text_or_none(details.get("formatted_phone_number")) or place.phone_national
                place.phone_international = text_or_none(details.get("international_phone_number")) or place.phone_international
                place.website = text_or_none(details.get("website")) or place.website
                place.maps_url = text_or_none(details.get("url")) or place.maps_url
                place.business_status = text_or_none(details.get("business_status")) or place.business_status

        await asyncio.gather(*(fill(place) for place in places if spec.rating_ok(place.rating)))


def _inside(place: Place, area: Area | None) -> bool:
    if area is None or place.latitude is None or place.longitude is None:
        return True
    return area.contains(place.latitude, place.longitude)


def parse_legacy_place(raw: Any) -> Place | None:
    """Turn one Text Search result into a Place; every field is optional."""
    if not isinstance(raw, dict):
        return None
    place_id = text_or_none(raw.get("place_id"))
    if place_id is None:
        return None
    location = (raw.get("geometry") or {}).get("location") if isinstance(raw.get("geometry"), dict) else None
    location = location if isinstance(location, dict) else {}
    types = raw.get("types")
    types = [item for item in types if isinstance(item, str)] if isinstance(types, list) else []
    return Place(
        source="google",
        place_id=place_id,
        name=text_or_none(raw.get("name")),
        address=text_or_none(raw.get("formatted_address")) or text_or_none(raw.get("vicinity")),
        latitude=number_or_none(location.get("lat")),
        longitude=number_or_none(location.get("lng")),
        primary_type=types[0] if types else None,
        types=types,
        business_status=text_or_none(raw.get("business_status")),
        phone_national=text_or_none(raw.get("formatted_phone_number")),
        phone_international=text_or_none(raw.get("international_phone_number")),
        website=text_or_none(raw.get("website")),
        rating=number_or_none(raw.get("rating")),
        user_rating_count=integer_or_none(raw.get("user_ratings_total")),
    )
