"""Location text to a search area, through the provider's geocoder and the store's cache."""

from __future__ import annotations

from dataclasses import dataclass

from leadd.providers import Providers
from leadd.providers.base import Area
from leadd.providers.errors import PermanentUpstreamError
from leadd.store import Store

__all__ = ["AreaResolver", "ResolvedArea", "location_not_found"]


@dataclass(frozen=True)
class ResolvedArea:
    area: Area | None  # None: the geocoder found nothing
    geocoder: str
    cached: bool
    calls: int  # upstream geocoding calls this resolution cost
    calls_kind: str  # how the calls count in a search's usage
    miss_hint: str  # why a miss can happen with this geocoder, and what to do

    def not_found_message(self, location: str) -> str:
        return f"the location {location!r} was not found: {self.miss_hint}"


def location_not_found(resolved: ResolvedArea, location: str) -> PermanentUpstreamError:
    return PermanentUpstreamError(
        "geocoding",
        f"no match for location {location!r}",
        status="ZERO_RESULTS",
        user_message=resolved.not_found_message(location),
    )


def cache_key(location: str, region: str | None, language: str | None) -> str:
    text = " ".join(location.lower().split())
    return f"{text}|{region or ''}|{language or ''}"


class AreaResolver:
    """Geocodes once per (geocoder, location, region, language); later lookups come from the store."""

    def __init__(self, store: Store, providers: Providers) -> None:
        self._store = store
        self._providers = providers

    async def resolve(
        self, provider: str, location: str, *, region: str | None, language: str | None
    ) -> ResolvedArea | None:
        """Return the area for ``location``, or None when ``provider`` has no geocoder.

        A miss is cached too, so a typo is not billed twice. Raises the
        geocoder's UpstreamError when the call fails.
        """
        geocoder = self._providers.geocoder_for(provider)
        if geocoder is None:
            return None
        key = cache_key(location, region, language)
        hit, area = await self._store.cached_area(geocoder.name, key)
        calls = 0
        if not hit:
            area, calls = await geocoder.geocode(location, region=region, language=language)
            await self._store.cache_area(geocoder.name, key, area)
        return ResolvedArea(
            area=area,
            geocoder=geocoder.name,
            cached=hit,
            calls=calls,
            calls_kind=geocoder.calls_kind,
            miss_hint=geocoder.miss_hint,
        )
