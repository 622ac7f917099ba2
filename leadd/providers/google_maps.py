"""The ``googlemaps`` client, shared by Geocoding and legacy Places.

The client is synchronous (requests), so every call runs on a small thread
pool of its own, never on the event loop. Its built-in retries are bounded:
``retry_timeout`` caps its 5xx retries at the upstream timeout and
``retry_over_query_limit=False`` hands OVER_QUERY_LIMIT to leadd's own
backoff (the client would otherwise retry it for up to 60 s).
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from leadd.providers.base import Area
from leadd.providers.errors import (
    MalformedResponse,
    PermanentUpstreamError,
    TransientUpstreamError,
    UpstreamTimeout,
)
from leadd.providers.retry import RetryPolicy, call_with_retries

__all__ = ["GoogleGeocoder", "GoogleMapsClient"]

T = TypeVar("T")

# Legacy statuses that pass with time; every other non-OK status is permanent.
_TRANSIENT_STATUSES = {"OVER_QUERY_LIMIT", "UNKNOWN_ERROR", "RESOURCE_EXHAUSTED"}

_DENIED_HINT = (
    "Google denied the request (REQUEST_DENIED). Check that the API key is "
    "valid, that billing is on, and that the {api} is enabled for its Cloud "
    "project and allowed by the key's API restrictions."
)


class GoogleMapsClient:
    """Runs googlemaps calls off the event loop and maps their errors."""

    def __init__(self, *, api_key: str, base_url: str, timeout_s: float, retry: RetryPolicy, threads: int = 4) -> None:
        self._api_key = api_key
        self._base_url = base_url
        self._timeout_s = timeout_s
        self.retry = retry
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="leadd-googlemaps")
        self._client: Any = None

    def _get_client(self) -> Any:
        # Imported on first use: googlemaps pulls in requests, which start-up does not need.
        if self._client is None:
            import googlemaps

            self._client = googlemaps.Client(
                key=self._api_key,
                timeout=self._timeout_s,
                retry_timeout=max(1, math.ceil(self._timeout_s)),
                retry_over_query_limit=False,
                base_url=self._base_url,
            )
        return self._client

    async def call(self, upstream: str, api: str, fn: Callable[[Any], T], *, operation: str) -> T:
        """Run ``fn(client)`` in the thread pool with leadd's retry policy.

        ``api`` names the Google API for messages ("Geocoding API").
        Raises TransientUpstreamError when retries run out and
        PermanentUpstreamError at once.
        """
        loop = asyncio.get_running_loop()

        async def attempt() -> T:
            return await loop.run_in_executor(self._executor, self._call_mapped, upstream, api, fn)

        return await call_with_retries(attempt, self.retry, operation=operation)

    def _call_mapped(self, upstream: str, api: str, fn: Callable[[Any], T]) -> T:
        import googlemaps.exceptions as gm_errors
        import requests

        try:
            return fn(self._get_client())
        except gm_errors.Timeout as exc:
            raise UpstreamTimeout(upstream, f"{api} timed out", status="TIMEOUT") from exc
        except gm_errors.HTTPError as exc:
            message = f"{api} returned HTTP {exc.status_code}"
            if exc.status_code == 429 or exc.status_code >= 500:
                raise TransientUpstreamError(upstream, message, status=str(exc.status_code), http_status=exc.status_code) from exc
            raise PermanentUpstreamError(upstream, message, status=str(exc.status_code), http_status=exc.status_code) from exc
        except gm_errors.TransportError as exc:
            raise TransientUpstreamError(upstream, f"cannot reach the {api}: {type(exc.base_exception).__name__}", status="UNAVAILABLE") from exc
        except gm_errors.ApiError as exc:
            raise _api_error(upstream, api, exc.status, exc.message) from exc
        except (requests.exceptions.JSONDecodeError, json.JSONDecodeError, KeyError) as exc:
            raise MalformedResponse(upstream, f"{api} returned a body that is not the expected JSON", status="MALFORMED") from exc
        except ValueError as exc:
            # googlemaps.Client() rejects a key that is not shaped like a Google key.
            raise PermanentUpstreamError(upstream, f"the {api} client rejected its settings: {exc}", status="CLIENT_CONFIG") from exc

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self._client is not None:
            self._client.session.close()


def _api_error(upstream: str, api: str, status: str, message: str | None) -> Exception:
    text = f"{api} returned {status}" + (f": {message}" if message else "")
    if status in _TRANSIENT_STATUSES:
        return TransientUpstreamError(upstream, text, status=status)
    user_message = text
    if status == "REQUEST_DENIED":
        user_message = _DENIED_HINT.format(api=api) + (f" ({message})" if message else "")
    return PermanentUpstreamError(upstream, text, status=status, user_message=user_message)


class GoogleGeocoder:
    """Geocoding through googlemaps: the first result's viewport becomes the search area."""

    name = "google"
    calls_kind = "geocoding"  # billed by Google
    miss_hint = "Google's Geocoding API found no match; check the spelling or add the region or country"

    def __init__(self, client: GoogleMapsClient) -> None:
        self._client = client

    async def geocode(self, text: str, *, region: str | None, language: str | None) -> tuple[Area | None, int]:
        results = await self._client.call(
            "geocoding",
            "Geocoding API",
            lambda client: client.geocode(text, region=region, language=language),
            operation="geocoding",
        )
        return area_from_geocode(results, text), 1


def area_from_geocode(results: Any, text: str) -> Area | None:
    """Read the first usable viewport (or bounds) of a Geocoding result list."""
    if not isinstance(results, list):
        return None
    for result in results:
        if not isinstance(result, dict):
            continue
        geometry = result.get("geometry") or {}
        box = geometry.get("viewport") or geometry.get("bounds")
        try:
            northeast, southwest = box["northeast"], box["southwest"]
            area = Area(
                south=float(southwest["lat"]),
                west=float(southwest["lng"]),
                north=float(northeast["lat"]),
                east=float(northeast["lng"]),
                label=result.get("formatted_address") or text,
                country_code=_country_code(result.get("address_components")),
            )
        except (KeyError, TypeError, ValueError):
            continue
        return area
    return None


def _country_code(components: Any) -> str | None:
    if not isinstance(components, list):
        return None
    for component in components:
        if isinstance(component, dict) and "country" in (component.get("types") or []):
            code = component.get("short_name")
            if isinstance(code, str) and len(code) == 2:
                return code.upper()
    return None
