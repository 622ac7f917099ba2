"""Stand-in for Places API (New) Text Search: POST /v1/places:searchText.

Bodies come from tests/fixtures/google-places-new (Google's documentation
examples). Two kinds of answers:

- a query containing "pizza" replays the documented two-page example
  (page 1 and page 2 bodies verbatim, then ``{}``);
- any other query pages through a catalogue of ``catalogue_size`` places
  (60 by default, Google's cap) built from the documented place objects.
  The documentation has only 19 of them, so places past the 19th are copies
  with ``-N`` added to the id and `` #N`` to the name.

Like the real API, it requires X-Goog-FieldMask and returns only the masked
fields, checks X-Goog-Api-Key (403 PERMISSION_DENIED otherwise), and
answers 400 INVALID_ARGUMENT for an unknown or expired page token.
"""

from __future__ import annotations

import copy
import json
import secrets
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.standins.base import StandIn

__all__ = ["PlacesNewStandIn"]

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
_SEARCH_FIXTURES = [
    "google_places_new_searchtext_fieldmask_star_phones.json",
    "google_places_new_searchtext_types_websiteuri.json",
    "google_places_new_searchtext_vegetarian_sydney.json",
    "google_places_new_searchtext_pricelevel.json",
    "google_places_new_searchtext_future_opening.json",
    "google_places_new_searchtext_page1_nextpagetoken.json",
    "google_places_new_searchtext_page2_nextpagetoken.json",
]


def load_fixture(*parts: str) -> Any:
    return json.loads((FIXTURES.joinpath(*parts)).read_text("utf-8"))


def _error(code: int, status: str, message: str) -> dict[str, Any]:
    # The google.rpc error shape of the fixtures in google-errors/.
    return {"error": {"code": code, "message": message, "status": status}}


class PlacesNewStandIn(StandIn):
    name = "places_new"

    def __init__(self, api_key: str = "AIzaStandInKey000000000000000000000000", **kwargs: Any) -> None:
        self.api_key = self._initial_api_key = api_key
        self.catalogue_size = 60
        self._tokens: dict[str, tuple[str, int]] = {}
        self._base_places = self._load_base_places()
        super().__init__(**kwargs)

    def setup_routes(self) -> None:
        self.route("POST", "/v1/places:searchText", "search_text", self._search_text)

    def configure(self, **values: Any) -> None:
        if "catalogue_size" in values:
            self.catalogue_size = int(values.pop("catalogue_size"))
        if "api_key" in values:
            self.api_key = str(values.pop("api_key"))
        super().configure(**values)

    def on_reset(self) -> None:
        self.api_key = self._initial_api_key
        self.catalogue_size = 60
        self._tokens.clear()

    def expire_tokens(self) -> None:
        """Forget every issued page token, as after Google's token lifetime."""
        self._tokens.clear()

    @staticmethod
    def _load_base_places() -> list[dict[str, Any]]:
        places = []
        for name in _SEARCH_FIXTURES:
            places += load_fixture("google-places-new", name)["places"]
        for index, place in enumerate(places):
            # Documentation examples with a narrow mask have no id; give them
            # a stable one so they can be stored.
            place.setdefault("id", f"StandInDocExample{index:02d}")
        return places

    def catalogue_place(self, index: int) -> dict[str, Any]:
        base = self._base_places[index % len(self._base_places)]
        place = copy.deepcopy(base)
        round_ = index // len(self._base_places)
        if round_:
            place["id"] = f"{base['id']}-{round_}"
            if "displayName" in place:
                place["displayName"]["text"] += f" #{round_}"
        return place

    def catalogue_ids(self, size: int | None = None) -> list[str]:
        return [self.catalogue_place(index)["id"] for index in range(size or self.catalogue_size)]

    async def _search_text(self, request: web.Request, body: Any) -> web.Response:
        if request.headers.get("X-Goog-Api-Key") != self.api_key:
            return web.json_response(load_fixture("google-errors", "google_error_403_permission_denied.json"), status=403)
        mask = request.headers.get("X-Goog-FieldMask")
        if not mask:
            return web.json_response(
                _error(400, "INVALID_ARGUMENT", "FieldMask is a required parameter. See how to provide it in the Places API documentation."),
                status=400,
            )
        if not isinstance(body, dict) or not body.get("textQuery"):
            return web.json_response(_error(400, "INVALID_ARGUMENT", "Empty text_query."), status=400)

        query = body["textQuery"]
        token = body.get("pageToken")
        if "pizza" in query.lower():
            return web.json_response(self._recorded_page(token))

        offset = 0
        if token:
            issued = self._tokens.get(token)
            if issued is None or issued[0] != query:
                return web.json_response(_error(400, "INVALID_ARGUMENT", "Invalid page token."), status=400)
            offset = issued[1]
        size = max(1, min(20, int(body.get("pageSize") or 20)))
        end = min(offset + size, self.catalogue_size)
        places = [self._masked(self.catalogue_place(index), mask) for index in range(offset, end)]
        answer: dict[str, Any] = {"places": places} if places else {}
        if end < self.catalogue_size and "nextPageToken" in mask.split(","):
            next_token = secrets.token_urlsafe(24)
            self._tokens[next_token] = (query, end)
            answer["nextPageToken"] = next_token
        return web.json_response(answer)

    def _recorded_page(self, token: str | None) -> dict[str, Any]:
        page1 = load_fixture("google-places-new", "google_places_new_searchtext_page1_nextpagetoken.json")
        page2 = load_fixture("google-places-new", "google_places_new_searchtext_page2_nextpagetoken.json")
        if token is None:
            return page1
        if token == page1["nextPageToken"]:
            return page2
        return {}

    @staticmethod
    def _masked(place: dict[str, Any], mask: str) -> dict[str, Any]:
        fields = [item.strip() for item in mask.split(",")]
        if "*" in fields or "places" in fields:
            return place
        wanted = {item.removeprefix("places.") for item in fields if item.startswith("places.")}
        return {key: value for key, value in place.items() if key in wanted}

