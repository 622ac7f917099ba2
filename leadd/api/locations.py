"""/v1/geocode: check how a location resolves before paying for a search."""

from __future__ import annotations

from aiohttp import web
from pydantic import Field

from leadd.api.context import CONTEXT
from leadd.api.problems import Problem
from leadd.api.schemas import Language, QueryParams, Region, parse_query
from leadd.config import PlacesProvider
from leadd.jobs.areas import AreaResolver

__all__ = ["routes"]

routes = web.RouteTableDef()


class GeocodeParams(QueryParams):
    location: str = Field(min_length=1, max_length=200)
    provider: PlacesProvider | None = None
    region: Region | None = None
    language: Language | None = None


@routes.get("/v1/geocode")
async def geocode(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    params = parse_query(request, GeocodeParams)
    provider = (params.provider or context.settings.default_provider).value
    context.providers.ensure_configured(provider)
    region = params.region.upper() if params.region else None
    resolved = await AreaResolver(context.store, context.providers).resolve(
        provider, params.location, region=region, language=params.language
    )
    if resolved is None:
        raise Problem(422, f"provider {provider} does not geocode locations", code="no_geocoder")
    if resolved.area is None:
        raise Problem(
            404,
            resolved.not_found_message(params.location),
            code="location_not_found",
        )
    return web.json_response(
        {
            "location": params.location,
            "provider": provider,
            "geocoder": resolved.geocoder,
            "cached": resolved.cached,
            "area": resolved.area.to_json(),
        }
    )
