"""Nominatim: geocoding for places the offline gazetteer does not know.

GET {base}/search?q=...&format=jsonv2&limit=1&addressdetails=1, optionally
with countrycodes (the search's region) and accept-language. The first
result's ``boundingbox`` ([south, north, west, east] as strings) becomes the
search area and ``address.country_code`` its region.

Usage policy (https://operations.osmfoundation.org/policies/nominatim/): at
most one request per second from this process (``NOMINATIM_LIMITER``, shared
by every geocoder instance and counting retries), a descriptive User-Agent,
and results cached (the search runner stores them in geocode_cache).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import aiohttp

from leadd.providers.base import Area
from leadd.providers.errors import (
    MalformedResponse,
    PermanentUpstreamError,
    TransientUpstreamError,
    UpstreamTimeout,
)
from leadd.providers.retry import RetryPolicy, call_with_retries
from leadd.providers.values import retry_after_s

__all__ = ["NOMINATIM_LIMITER", "NominatimGeocoder", "RateLimiter", "parse_result"]

log = logging.getLogger(__name__)

_UPSTREAM = "nominatim"


class RateLimiter:
    """A limiter that spaces the start of calls at least ``min_interval_s`` apart, across coroutines."""

    def __init__(self, min_interval_s: float) -> None:
        self.min_interval_s = min_interval_s
        self._lock: asyncio.Lock | None = None
        self._next_start = 0.0

    async def wait(self) -> None:
        """Return when the next call may start; callers queue in order."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        loop = asyncio.get_running_loop()
        async with self._lock:
            delay = self._next_start - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            self._next_start = loop.time() + self.min_interval_s


# The policy's absolute maximum is one request per second.
NOMINATIM_LIMITER = RateLimiter(1.0)


class NominatimGeocoder:
    """A Geocoder (leadd.providers.base) over one Nominatim server."""

    name = "nominatim"
    calls_kind = "nominatim"
    miss_hint = "Nominatim found no match; check the spelling or add the country"

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        user_agent: str,
        timeout_s: float,
        retry: RetryPolicy,
        limiter: RateLimiter = NOMINATIM_LIMITER,
    ) -> None:
        self._session = session
        self.base_url = base_url
        self._user_agent = user_agent
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._retry = retry
        self._limiter = limiter

    async def geocode(self, text: str, *, region: str | None, language: str | None) -> tuple[Area | None, int]:
        """Return the area of the best match for ``text`` (None when nothing matches) and 1, the call that succeeded.

        Like the other geocoders, it counts only the successful call: usage
        shows what an upstream answered, not the retries before that.
        """
        params = {"q": text, "format": "jsonv2", "limit": "1", "addressdetails": "1"}
        if region:
            params["countrycodes"] = region.lower()
        if language:
            params["accept-language"] = language
        results = await call_with_retries(lambda: self._get(params), self._retry, operation="nominatim search")
        if not isinstance(results, list):
            raise MalformedResponse(_UPSTREAM, "Nominatim returned a body that is not a JSON array", status="MALFORMED")
        for result in results:
            area = parse_result(result)
            if area is not None:
                return area, 1
        return None, 1

    async def _get(self, params: dict[str, str]) -> Any:
        await self._limiter.wait()
        headers = {"User-Agent": self._user_agent, "Accept": "application/json"}
        url = f"{self.base_url}/search"
        try:
            async with self._session.get(url, params=params, headers=headers, timeout=self._timeout) as response:
                raw = await response.read()
                status = response.status
                retry_after = retry_after_s(response.headers.get("Retry-After"))
        except TimeoutError as exc:
            raise UpstreamTimeout(_UPSTREAM, f"Nominatim at {self.base_url} timed out", status="TIMEOUT") from exc
        except aiohttp.ClientError as exc:
            raise TransientUpstreamError(
                _UPSTREAM,
                f"cannot reach Nominatim at {self.base_url}: {type(exc).__name__}",
                status="UNREACHABLE",
                user_message=f"cannot reach Nominatim at {self.base_url} ({type(exc).__name__}); without it leadd "
                "finds only places named in imported extracts (leadd import-osm), or set LEADD_NOMINATIM_URL",
            ) from exc
        return _decode(status, raw, retry_after, self.base_url)


def _decode(status: int, raw: bytes, retry_after: float | None, base_url: str) -> Any:
    if status == 200:
        try:
            return json.loads(raw)
        except ValueError:
            raise MalformedResponse(_UPSTREAM, "Nominatim returned a body that is not JSON", status="MALFORMED") from None
    text = raw[:200].decode("utf-8", errors="replace").strip()
    message = f"Nominatim returned HTTP {status}" + (f": {text}" if text else "")
    if status == 429 or status >= 500:
        raise TransientUpstreamError(_UPSTREAM, message, status=str(status), http_status=status, retry_after=retry_after)
    if status in (401, 403):
        user_message = (
            f"{message}. Nominatim blocks clients that break its usage policy; set LEADD_OSM_CONTACT "
            "to an e-mail address, or point LEADD_NOMINATIM_URL at your own server"
        )
    else:
        user_message = f"{message}; check LEADD_NOMINATIM_URL ({base_url})"
    raise PermanentUpstreamError(_UPSTREAM, message, status=str(status), http_status=status, user_message=user_message)


def _coordinate(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number


def parse_result(result: Any) -> Area | None:
    """Turn one jsonv2 search result into an Area; None when it has no usable bounding box."""
    if not isinstance(result, dict):
        return None
    box = result.get("boundingbox")
    if not isinstance(box, list) or len(box) != 4:
        return None
    south, north, west, east = (_coordinate(value) for value in box)
    if south is None or north is None or west is None or east is None or south > north:
        return None
    address = result.get("address") if isinstance(result.get("address"), dict) else {}
    country = address.get("country_code")
    label = result.get("display_name")
    return Area(
        south=south,
        west=west,
        north=north,
        east=east,
        label=label if isinstance(label, str) else None,
        country_code=country.upper() if isinstance(country, str) and len(country) == 2 else None,
    )
