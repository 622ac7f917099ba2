"""Google Places API (New): Text Search over aiohttp.

POST {base}/v1/places:searchText with an explicit field mask (Google bills by
the fields asked for), 20 places per page, following nextPageToken until it
is absent or max_results is reached (Google stops at 60 per query).
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from leadd.providers.base import (
    Area,
    Page,
    Place,
    SearchSpec,
    restart_after_rejected_token,
    resume_point,
    token_checkpoint,
)
from leadd.providers.errors import (
    MalformedResponse,
    PermanentUpstreamError,
    TransientUpstreamError,
    UpstreamTimeout,
)
from leadd.providers.retry import RetryPolicy, call_with_retries
from leadd.providers.values import integer_or_none, number_or_none, retry_after_s, text_or_none

__all__ = ["FIELD_MASK", "PlacesNewProvider", "parse_place"]

_PLACE_FIELDS = (
    "id",
    "displayName",
    "formattedAddress",
    "location",
    "types",
    "primaryType",
    "businessStatus",
    "googleMapsUri",
    "nationalPhoneNumber",
    "internationalPhoneNumber",
    "websiteUri",
    "rating",
    "userRatingCount",
)
FIELD_MASK = ",".join([f"places.{name}" for name in _PLACE_FIELDS] + ["nextPageToken"])

_PAGE_SIZE = 20
_UPSTREAM = "places_new"

_PERMISSION_HINT = (
    "Google rejected the request for Places API (New). Check that the API key "
    "is valid, that Places API (New) is enabled for its Cloud project "
    "(APIs & Services > Library > Places API (New)), that billing is on, and "
    "that the key's API restrictions allow it."
)


class PlacesNewProvider:
    name = "places_new"
    source = "google"
    attribution = "Google Maps"

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        api_key: str,
        base_url: str,
        timeout_s: float,
        retry: RetryPolicy,
    ) -> None:
        self._session = session
        self._api_key = api_key
        self._url = f"{base_url}/v1/places:searchText"
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._retry = retry

    async def search(
        self, spec: SearchSpec, area: Area | None, checkpoint: dict[str, Any] | None
    ) -> AsyncIterator[Page]:
        token, seen, pages = resume_point(checkpoint)
        body = self._request_body(spec, area)

        while seen < spec.max_results:
            try:
                data = await self._fetch_page(body, token)
            except PermanentUpstreamError as exc:
                if not restart_after_rejected_token(token, checkpoint, rejected=exc.http_status == 400, status=exc.status):
                    raise
                checkpoint, token, seen, pages = None, None, 0, 0
                continue
            checkpoint = None
            places = [place for place in map(parse_place, data.get("places") or []) if place is not None]
            places = places[: spec.max_results - seen]
            seen += len(places)
            pages += 1
            token = data.get("nextPageToken") or None
            if seen >= spec.max_results or not places:
                # An empty page also ends the search, so a misbehaving
                # upstream cannot keep it paging forever.
                token = None
            yield Page(
                places=places,
                checkpoint=token_checkpoint(token, seen, pages),
                pages_seen=pages,
                places_seen=seen,
                calls={"places_text_search": 1},
            )
            if token is None:
                return

    def _request_body(self, spec: SearchSpec, area: Area | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "textQuery": spec.query,
            "pageSize": min(_PAGE_SIZE, spec.max_results),
            # Plumbers and roofers often have no storefront, so no address.
            "includePureServiceAreaBusinesses": True,
        }
        if spec.language:
            body["languageCode"] = spec.language
        if spec.region:
            body["regionCode"] = spec.region
        if spec.min_rating is not None:
            # The API accepts multiples of 0.5; round down and filter exactly afterwards.
            body["minRating"] = math.floor(spec.min_rating * 2) / 2
        if area is not None:
            body["locationRestriction"] = {
                "rectangle": {
                    "low": {"latitude": area.south, "longitude": area.west},
                    "high": {"latitude": area.north, "longitude": area.east},
                }
            }
        return body

    async def _fetch_page(self, body: dict[str, Any], token: str | None) -> dict[str, Any]:
        request = dict(body, pageToken=token) if token else body
        return await call_with_retries(
            lambda: self._post(request), self._retry, operation="places_new text search"
        )

    async def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        headers = {
            "X-Goog-Api-Key": self._api_key,
            "X-Goog-FieldMask": FIELD_MASK,
            "Content-Type": "application/json",
        }
        try:
            async with self._session.post(self._url, json=body, headers=headers, timeout=self._timeout) as response:
                raw = await response.read()
                status = response.status
                retry_after = retry_after_s(response.headers.get("Retry-After"))
        except TimeoutError as exc:
            raise UpstreamTimeout(_UPSTREAM, "Places API (New) timed out", status="TIMEOUT") from exc
        except aiohttp.ClientError as exc:
            raise TransientUpstreamError(
                _UPSTREAM, f"cannot reach Places API (New): {type(exc).__name__}", status="UNAVAILABLE"
            ) from exc
        return _decode(status, raw, retry_after)


def _decode(status: int, raw: bytes, retry_after: float | None) -> dict[str, Any]:
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        data = None
    if status == 200:
        if not isinstance(data, dict):
            raise MalformedResponse(_UPSTREAM, "Places API (New) returned a body that is not a JSON object", status="MALFORMED")
        return data

    error = data.get("error") if isinstance(data, dict) else None
    error = error if isinstance(error, dict) else {}
    google_status = str(error.get("status") or status)
    google_message = str(error.get("message") or "").strip()
    # A body without Google's error object (a proxy's page) leaves only the HTTP status.
    message = f"Places API (New) returned HTTP {status}"
    if google_status != str(status):
        message += f" {google_status}"
    if google_message:
        message += f": {google_message}"
    if status == 429 or status >= 500:
        raise TransientUpstreamError(_UPSTREAM, message, status=google_status, http_status=status, retry_after=retry_after)
    user_message = message
    if status in (401, 403):
        user_message = f"{_PERMISSION_HINT} ({google_status}: {google_message or 'no message'})"
    elif status == 400:
        user_message = f"Google rejected the search request as invalid ({google_status}: {google_message or 'no message'})"
    elif status == 404:
        user_message = f"{message}; check LEADD_GOOGLE_PLACES_BASE_URL"
    raise PermanentUpstreamError(_UPSTREAM, message, status=google_status, http_status=status, user_message=user_message)


def parse_place(raw: Any) -> Place | None:
    """Turn one element of ``places`` into a Place; every field is optional.

    Returns None for an element without an id (it cannot be stored).
    """
    if not isinstance(raw, dict):
        return None
    place_id = raw.get("id") or _id_from_name(raw.get("name"))
    if not isinstance(place_id, str) or not place_id:
        return None
    display_name = raw.get("displayName")
    location = raw.get("location") if isinstance(raw.get("location"), dict) else {}
    types = raw.get("types")
    return Place(
        source="google",
        place_id=place_id,
        name=text_or_none(display_name.get("text")) if isinstance(display_name, dict) else None,
        address=text_or_none(raw.get("formattedAddress")),
        latitude=number_or_none(location.get("latitude")),
        longitude=number_or_none(location.get("longitude")),
        primary_type=text_or_none(raw.get("primaryType")),
        types=[item for item in types if isinstance(item, str)] if isinstance(types, list) else [],
        business_status=text_or_none(raw.get("businessStatus")),
        maps_url=text_or_none(raw.get("googleMapsUri")),
        phone_national=text_or_none(raw.get("nationalPhoneNumber")),
        phone_international=text_or_none(raw.get("internationalPhoneNumber")),
        website=text_or_none(raw.get("websiteUri")),
        rating=number_or_none(raw.get("rating")),
        user_rating_count=integer_or_none(raw.get("userRatingCount")),
    )


def _id_from_name(name: Any) -> str | None:
    # The resource name is "places/PLACE_ID".
    if isinstance(name, str) and name.startswith("places/"):
        return name.removeprefix("places/")
    return None
