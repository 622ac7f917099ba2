"""Stand-in for Nominatim's search endpoint: GET /search?q=...&format=jsonv2.

Bodies come from tests/fixtures/nominatim (real jsonv2 responses recorded by
other projects' test suites). A query equal to a recorded one, ignoring case
and spaces, gets that body cut to ``limit``. Any other query gets ``[]``,
which is what Nominatim returns when nothing matches. Like the real server
for this endpoint's other formats, it answers 400 unless format=jsonv2.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.standins.base import StandIn

__all__ = ["NominatimStandIn", "RECORDED_QUERIES"]

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "nominatim"

# The q each fixture was recorded for (tests/fixtures/SOURCES.md).
RECORDED_QUERIES = {
    "frankfurt, germany": "nominatim_search_jsonv2_frankfurt_germany.json",
    "ottawa, ontario": "nominatim_search_jsonv2_ottawa_ontario.json",
}


def load_body(query: str) -> list[dict[str, Any]]:
    """Return the recorded body for ``query`` (a key of RECORDED_QUERIES)."""
    return json.loads((FIXTURES / RECORDED_QUERIES[query]).read_text("utf-8"))


def _normalise(query: str) -> str:
    return " ".join(query.lower().split())


class NominatimStandIn(StandIn):
    name = "nominatim"

    def setup_routes(self) -> None:
        self.route("GET", "/search", "search", self._search)

    async def _search(self, request: web.Request, body: Any) -> web.Response:
        if request.query.get("format") != "jsonv2":
            return web.Response(status=400, text="this stand-in answers format=jsonv2 only", content_type="text/plain")
        query = _normalise(request.query.get("q", ""))
        results = load_body(query) if query in RECORDED_QUERIES else []
        try:
            limit = int(request.query.get("limit", "10"))
        except ValueError:
            limit = 10
        return web.json_response(results[: max(limit, 0)])
