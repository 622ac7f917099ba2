"""Overpass API: live OpenStreetMap searches for areas outside the imported extracts.

One POST to the interpreter per search, with the area as the global
``[bbox:...]`` and the server-side ``[timeout:N]`` from LEADD_OVERPASS_TIMEOUT_S.
The query selects named elements that carry one of the tags the search
words map to, or whose name contains every word (case-insensitive, with
common diacritics allowed), and returns tags and centres only.

Usage policy (https://wiki.openstreetmap.org/wiki/Overpass_API): at most one
query of this process runs at a time, every request sends a descriptive
User-Agent, and 429 (rate limited) and 504 (server busy) are retried with
exponential backoff, honouring Retry-After. A query the server stopped
(``remark: runtime error``) is not retried: the same query would stop again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from typing import Any

import aiohttp

from leadd.osm import tags as osm_tags
from leadd.osm.vocabulary import QueryTerms
from leadd.providers.base import Area, Place
from leadd.providers.errors import (
    MalformedResponse,
    PermanentUpstreamError,
    TransientUpstreamError,
    UpstreamTimeout,
)
from leadd.providers.retry import RetryPolicy, call_with_retries
from leadd.providers.values import retry_after_s

__all__ = ["OverpassClient", "OverpassUnreachable", "build_query", "is_unreachable"]

log = logging.getLogger(__name__)

_UPSTREAM = "overpass"

# Max elements one query requests (out ... N).
_MAX_ELEMENTS = 1000

# Letters a name may carry with a diacritic that the normalised search word
# lost: "cafe" must still match "Café".
_DIACRITICS = {
    "a": "aàáâãäåā", "c": "cçčć", "e": "eèéêëēě", "i": "iìíîïī", "n": "nñń", "o": "oòóôõöøō",
    "s": "sšś", "u": "uùúûüū", "y": "yýÿ", "z": "zžźż",
}


class OverpassUnreachable(TransientUpstreamError):
    """No connection to the Overpass server (DNS, refused, network down)."""


def _name_pattern(word: str) -> str:
    """Return a POSIX extended regular expression for ``word`` that also matches its accented forms.

    Search words contain only letters and digits (leadd.osm.vocabulary), so
    nothing needs escaping. Alternations rather than bracket expressions keep
    multi-byte letters whole whatever the server's locale, and list the
    capitals because case-insensitive matching may cover ASCII only.
    """
    parts = []
    for char in word:
        variants = _DIACRITICS.get(char)
        if variants is None:
            parts.append(char)
        else:
            parts.append("(" + "|".join(variants + variants[1:].upper()) + ")")
    return "".join(parts)


def build_query(terms: QueryTerms, area: Area, timeout_s: int, limit: int) -> str:
    """Return the Overpass QL for a search; raises PermanentUpstreamError for an area across the antimeridian."""
    if area.west > area.east:
        raise PermanentUpstreamError(
            _UPSTREAM,
            "the area crosses the antimeridian",
            status="UNSUPPORTED_AREA",
            user_message="Overpass searches cannot cover an area across the 180th meridian; search each side on its own",
        )
    statements = []
    for tag in terms.tags:
        key, _, value = tag.partition("=")
        statements.append(f'  nwr["{key}"="{value}"]["name"];')
    if terms.words:
        name_filters = "".join(f'["name"~"{_name_pattern(word)}",i]' for word in terms.words)
        statements += [f'  nwr["{key}"]{name_filters};' for key in osm_tags.BUSINESS_KEYS]
    bbox = f"{area.south:.7f},{area.west:.7f},{area.north:.7f},{area.east:.7f}"
    return "\n".join(
        [f"[out:json][timeout:{timeout_s}][bbox:{bbox}];", "(", *statements, ");", f"out tags center {limit};"]
    )


class OverpassClient:
    """Runs leadd's search queries against one Overpass interpreter URL."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        url: str,
        user_agent: str,
        query_timeout_s: int,
        request_timeout_s: float,
        retry: RetryPolicy,
    ) -> None:
        self._session = session
        self.url = url
        self._user_agent = user_agent
        self._query_timeout_s = query_timeout_s
        # The server may work for the whole [timeout:N] before it answers.
        # Connecting (DNS included) gets only the usual upstream timeout, so
        # an offline machine falls back to imported data quickly.
        self._timeout = aiohttp.ClientTimeout(total=query_timeout_s + request_timeout_s, connect=request_timeout_s)
        self._retry = retry
        self._one_at_a_time = asyncio.Semaphore(1)

    async def search(
        self, terms: QueryTerms, area: Area, *, limit: int, region: str | None, retry_unreachable: bool = True
    ) -> tuple[list[Place], int]:
        """Return the named business places matching ``terms`` in ``area`` (tag matches first) and 1, the query that succeeded.

        With ``retry_unreachable`` False, a failed connection raises
        OverpassUnreachable at once, so a caller with another source does
        not wait for the retries.
        """
        # Ask for more than needed: Overpass cuts by element id, before leadd
        # drops non-businesses and puts tag matches first.
        query = build_query(terms, area, self._query_timeout_s, min(max(2 * limit, 100), _MAX_ELEMENTS))
        async def attempt() -> dict[str, Any]:
            try:
                return await self._post(query)
            except OverpassUnreachable as exc:
                if retry_unreachable:
                    raise
                raise _no_retry(exc) from exc

        data = await call_with_retries(attempt, self._retry, operation="overpass query")
        places = _places(data.get("elements"), terms, area, region)
        return places[:limit], 1

    async def _post(self, query: str) -> dict[str, Any]:
        headers = {"User-Agent": self._user_agent, "Accept": "application/json"}
        async with self._one_at_a_time:
            try:
                async with self._session.post(
                    self.url, data={"data": query}, headers=headers, timeout=self._timeout
                ) as response:
                    raw = await response.read()
                    status = response.status
                    retry_after = retry_after_s(response.headers.get("Retry-After"))
            except TimeoutError as exc:
                raise UpstreamTimeout(_UPSTREAM, f"Overpass at {self.url} timed out", status="TIMEOUT") from exc
            except aiohttp.ClientConnectorError as exc:  # DNS failures included
                raise OverpassUnreachable(
                    _UPSTREAM, f"cannot reach Overpass at {self.url}: {type(exc).__name__}", status="UNREACHABLE"
                ) from exc
            except aiohttp.ClientError as exc:
                raise TransientUpstreamError(
                    _UPSTREAM, f"Overpass request to {self.url} failed: {type(exc).__name__}", status="UNAVAILABLE"
                ) from exc
        return _decode(status, raw, retry_after, self.url)


class _UnreachableNoRetry(PermanentUpstreamError):
    """OverpassUnreachable when the caller asked not to retry it."""


def _no_retry(exc: OverpassUnreachable) -> PermanentUpstreamError:
    return _UnreachableNoRetry(_UPSTREAM, exc.message, status=exc.status, user_message=exc.user_message)


def is_unreachable(exc: Exception) -> bool:
    """Tell whether a search failed because no connection to Overpass could be made."""
    return isinstance(exc, OverpassUnreachable | _UnreachableNoRetry)


def _decode(status: int, raw: bytes, retry_after: float | None, url: str) -> dict[str, Any]:
    if status == 200:
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        if not isinstance(data, dict) or not isinstance(data.get("elements"), list):
            raise MalformedResponse(_UPSTREAM, "Overpass returned a body without an elements list", status="MALFORMED")
        remark = data.get("remark")
        if isinstance(remark, str) and "runtime error" in remark:
            raise PermanentUpstreamError(
                _UPSTREAM,
                f"Overpass stopped the query: {remark}",
                status="RUNTIME_ERROR",
                user_message=f"Overpass stopped the query ({remark.strip()}); search a smaller area, "
                "or raise LEADD_OVERPASS_TIMEOUT_S",
            )
        return data

    text = raw[:300].decode("utf-8", errors="replace").strip()
    message = f"Overpass returned HTTP {status}" + (f": {text}" if text else "")
    if status == 429:
        raise TransientUpstreamError(_UPSTREAM, message, status="RATE_LIMITED", http_status=429, retry_after=retry_after)
    if status == 504:
        raise TransientUpstreamError(_UPSTREAM, message, status="GATEWAY_TIMEOUT", http_status=504, retry_after=retry_after)
    if status >= 500:
        raise TransientUpstreamError(_UPSTREAM, message, status=str(status), http_status=status, retry_after=retry_after)
    hint = "check LEADD_OVERPASS_URL" if status in (403, 404) else "the query was rejected"
    raise PermanentUpstreamError(
        _UPSTREAM, message, status=str(status), http_status=status, user_message=f"{message} ({hint}; URL {url})"
    )


def _places(elements: Any, terms: QueryTerms, area: Area, region: str | None) -> list[Place]:
    """Turn Overpass elements into business places, tag matches first, then by distance to the centre."""
    wanted = set(terms.tags)
    center_lat, center_lon = area.center
    ranked: list[tuple[int, float, Place]] = []
    for element in elements if isinstance(elements, list) else []:
        if not isinstance(element, dict):
            continue
        kind, element_id, element_tags = element.get("type"), element.get("id"), element.get("tags")
        if kind not in ("node", "way", "relation") or not isinstance(element_id, int) or not isinstance(element_tags, dict):
            continue
        element_tags = {str(key): str(value) for key, value in element_tags.items()}
        pairs = osm_tags.lead_tags(kind, element_tags)
        point = element if kind == "node" else element.get("center")
        latitude = point.get("lat") if isinstance(point, dict) else None
        longitude = point.get("lon") if isinstance(point, dict) else None
        if not pairs or not isinstance(latitude, int | float) or not isinstance(longitude, int | float):
            continue
        place_region = osm_tags.element_region(element_tags, region)
        place = osm_tags.place_from_element(
            kind, element_id, element_tags, float(latitude), float(longitude), place_region, pairs=pairs
        )
        tag_match = 0 if any(f"{key}={value}" in wanted for key, value in pairs) else 1
        distance = math.hypot(latitude - center_lat, (longitude - center_lon) * math.cos(math.radians(center_lat)))
        ranked.append((tag_match, distance, place))
    ranked.sort(key=lambda item: (item[0], item[1]))
    return [place for _, _, place in ranked]
