"""The interface every place source implements, and the values it passes."""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["Area", "Geocoder", "Page", "Place", "Provider", "SearchSpec"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Area:
    """A geocoded location: the viewport rectangle of the place asked for."""

    south: float
    west: float
    north: float
    east: float
    label: str | None = None
    country_code: str | None = None  # ISO 3166-1 alpha-2, helps parse national phone numbers

    def contains(self, latitude: float, longitude: float) -> bool:
        if not self.south <= latitude <= self.north:
            return False
        if self.west <= self.east:
            return self.west <= longitude <= self.east
        # The rectangle crosses the antimeridian.
        return longitude >= self.west or longitude <= self.east

    @property
    def center(self) -> tuple[float, float]:
        east = self.east if self.west <= self.east else self.east + 360
        longitude = (self.west + east) / 2
        if longitude > 180:
            longitude -= 360
        return (self.south + self.north) / 2, longitude

    @property
    def radius_m(self) -> float:
        """Distance from the center to a corner, in metres (haversine)."""
        latitude, longitude = self.center
        return _haversine_m(latitude, longitude, self.north, self.east)

    def to_json(self) -> dict[str, Any]:
        return {
            "south": self.south,
            "west": self.west,
            "north": self.north,
            "east": self.east,
            "label": self.label,
            "country_code": self.country_code,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Area:
        return cls(
            south=float(data["south"]),
            west=float(data["west"]),
            north=float(data["north"]),
            east=float(data["east"]),
            label=data.get("label"),
            country_code=data.get("country_code"),
        )


def _haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    radius = 6_371_000.0
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi = phi2 - phi1
    dlambda = math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlambda / 2) ** 2
    return 2 * radius * math.asin(math.sqrt(a))


@dataclass
class Place:
    """One business as a source returned it. Every field but the id may be missing."""

    source: str
    place_id: str
    name: str | None = None
    address: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    primary_type: str | None = None
    types: list[str] = field(default_factory=list)
    business_status: str | None = None
    maps_url: str | None = None
    phone_national: str | None = None
    phone_international: str | None = None
    website: str | None = None
    rating: float | None = None
    user_rating_count: int | None = None
    email: str | None = None
    opening_hours: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # source-specific fields


@dataclass(frozen=True)
class SearchSpec:
    """The search a provider runs, as the API layer validated it."""

    query: str
    location: str | None = None
    max_results: int = 60
    min_rating: float | None = None
    require: frozenset[str] = frozenset()
    language: str | None = None
    region: str | None = None

    def rating_ok(self, rating: float | None) -> bool:
        """Tell whether a place with ``rating`` passes ``min_rating`` (an unrated one does not)."""
        return self.min_rating is None or (rating is not None and rating >= self.min_rating)


@dataclass
class Page:
    """One upstream page and the progress of the search after it.

    ``pages_seen`` and ``places_seen`` count from the start of the current
    pass (a resumed run continues the counts; a run that had to start over
    begins again at zero). ``checkpoint`` is None after the last page.
    """

    places: list[Place]
    checkpoint: dict[str, Any] | None
    pages_seen: int
    places_seen: int
    calls: dict[str, int] = field(default_factory=dict)


class Geocoder(Protocol):
    """Turns location text into an Area. ``name`` keys its cache entries,
    ``calls_kind`` names its upstream calls in a search's usage, and
    ``miss_hint`` gives a user the reason a location may not be found."""

    name: str
    calls_kind: str
    miss_hint: str

    async def geocode(self, text: str, *, region: str | None, language: str | None) -> tuple[Area | None, int]:
        """Return the area for ``text`` (None when nothing matches) and the upstream calls made."""
        ...


class Provider(Protocol):
    """A place source. ``search`` yields pages until the source has no more or max_results is reached.

    ``checkpoint`` is the value of the last page a previous run stored; a
    provider resumes from it or, when it is no longer valid, starts over
    (the store upserts leads, so a restart never duplicates them).
    Raises TransientUpstreamError after its retries run out and
    PermanentUpstreamError at once.
    """

    name: str
    source: str
    attribution: str

    def search(
        self, spec: SearchSpec, area: Area | None, checkpoint: dict[str, Any] | None
    ) -> AsyncIterator[Page]: ...


def resume_point(checkpoint: dict[str, Any] | None) -> tuple[str | None, int, int]:
    """Return (page token, places seen, pages seen) stored by a page-token provider."""
    if not checkpoint or not checkpoint.get("page_token"):
        return None, 0, 0
    return str(checkpoint["page_token"]), int(checkpoint.get("places_seen", 0)), int(checkpoint.get("pages_seen", 0))


def restart_after_rejected_token(
    token: str | None, checkpoint: dict[str, Any] | None, rejected: bool, status: str | None
) -> bool:
    """Tell whether a resumed search should start over from page 1, and log it when so.

    True only for the first request of a run resumed from ``checkpoint``
    whose saved ``token`` the upstream ``rejected`` (tokens expire while a
    daemon is down). Any other rejection is the caller's to raise.
    """
    if token is None or not checkpoint or not rejected:
        return False
    log.info(
        "saved page token rejected, restarting the search from the first page",
        extra={"event": "page_token_restart", "upstream_status": status},
    )
    return True


def token_checkpoint(token: str | None, places_seen: int, pages_seen: int) -> dict[str, Any] | None:
    """Return the checkpoint for a page-token provider, None when there is no next page."""
    if token is None:
        return None
    return {"page_token": token, "places_seen": places_seen, "pages_seen": pages_seen}
