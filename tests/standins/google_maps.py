"""Stand-in for maps.googleapis.com: legacy Places (Text Search, Place Details) and Geocoding.

Bodies come from tests/fixtures/google-legacy and google-geocoding
(google-maps-services-java test resources). Text Search serves three real
pages in turn: "pizza in New York" (20 results), the Sydney pubs of a
Nearby Search (20 results, same result shape) and the single Google Sydney
result (no next page). Each next_page_token becomes valid only
``token_delay_s`` after its page was served; before that the answer is
INVALID_REQUEST, as Google's is. Geocoding answers every address with the
Sydney result, except addresses containing "nowhere" (ZERO_RESULTS).
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from tests.standins.base import StandIn
from tests.standins.google_places import load_fixture

__all__ = ["GoogleMapsStandIn"]

_PAGES = [
    "legacy_textsearch_page1.json",
    "legacy_nearbysearch_page1.json",
    "legacy_textsearch_single_with_contact.json",
]


class GoogleMapsStandIn(StandIn):
    name = "google_maps"

    def __init__(self, api_key: str = "AIzaStandInKey000000000000000000000000", **kwargs: Any) -> None:
        self.api_key = self._initial_api_key = api_key
        self.token_delay_s = 0.2
        self._token_issued: dict[str, tuple[float, int]] = {}
        super().__init__(**kwargs)

    def setup_routes(self) -> None:
        self.route("GET", "/maps/api/place/textsearch/json", "textsearch", self._text_search)
        self.route("GET", "/maps/api/place/details/json", "details", self._details)
        self.route("GET", "/maps/api/geocode/json", "geocode", self._geocode)

    def configure(self, **values: Any) -> None:
        if "token_delay_s" in values:
            self.token_delay_s = float(values.pop("token_delay_s"))
        super().configure(**values)

    def on_reset(self) -> None:
        self.api_key = self._initial_api_key
        self.token_delay_s = 0.2
        self._token_issued.clear()

    def _denied(self, request: web.Request) -> web.Response | None:
        if request.query.get("key") == self.api_key:
            return None
        return web.json_response(
            {"error_message": "The provided API key is invalid.", "html_attributions": [], "results": [], "status": "REQUEST_DENIED"}
        )

    @staticmethod
    def page_results(index: int) -> list[dict[str, Any]]:
        return load_fixture("google-legacy", _PAGES[index])["results"]

    @staticmethod
    def page_place_ids(index: int) -> list[str]:
        return [result["place_id"] for result in GoogleMapsStandIn.page_results(index)]

    async def _text_search(self, request: web.Request, body: Any) -> web.Response:
        denied = self._denied(request)
        if denied is not None:
            return denied
        token = request.query.get("pagetoken")
        index = 0
        if token:
            issued = self._token_issued.get(token)
            if issued is None or time.monotonic() - issued[0] < self.token_delay_s:
                return web.json_response({"html_attributions": [], "results": [], "status": "INVALID_REQUEST"})
            index = issued[1]
        page = load_fixture("google-legacy", _PAGES[index])
        next_token = page.get("next_page_token")
        if next_token:
            self._token_issued[next_token] = (time.monotonic(), index + 1)
        return web.json_response(page)

    async def _details(self, request: web.Request, body: Any) -> web.Response:
        denied = self._denied(request)
        if denied is not None:
            return denied
        return web.json_response(load_fixture("google-legacy", "legacy_place_details.json"))

    async def _geocode(self, request: web.Request, body: Any) -> web.Response:
        denied = self._denied(request)
        if denied is not None:
            return denied
        if "nowhere" in request.query.get("address", "").lower():
            return web.json_response({"results": [], "status": "ZERO_RESULTS"})
        return web.json_response(load_fixture("google-geocoding", "geocode_sydney.json"))
