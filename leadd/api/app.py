"""The aiohttp application: middlewares, routes and shared context."""

from __future__ import annotations

from aiohttp import web

from leadd.api import health, leads, locations, searches
from leadd.api.context import CONTEXT, ApiContext
from leadd.api.middleware import CORS_ORIGINS, auth_middleware, cors_preflight_middleware, request_middleware
from leadd.api.problems import MAX_BODY_KEY

__all__ = ["MAX_BODY_BYTES", "make_app"]

# The largest valid body (a search with a 2,000-character profile) is far
# below this; anything bigger gets 413 before it is parsed.
MAX_BODY_BYTES = 64 * 1024


def make_app(context: ApiContext) -> web.Application:
    settings = context.settings
    # Outermost first: the request id exists before any error is rendered,
    # and preflights pass before the token check. Middlewares that would do
    # nothing with these settings are left out: each costs every request.
    origins = frozenset(settings.cors_origins)
    middlewares = [request_middleware(origins, context.redactor)]
    if settings.cors_origins:
        middlewares.append(cors_preflight_middleware(settings.cors_origins))
    if settings.api_token is not None:
        middlewares.append(auth_middleware(settings.api_token.get_secret_value()))
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=middlewares)
    app[CONTEXT] = context
    app[MAX_BODY_KEY] = MAX_BODY_BYTES
    app[CORS_ORIGINS] = origins
    app.add_routes(health.routes)
    app.add_routes(searches.routes)
    app.add_routes(leads.routes)
    app.add_routes(locations.routes)
    return app
