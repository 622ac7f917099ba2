"""Request id, CORS and bearer-token middlewares."""

from __future__ import annotations

import asyncio
import hmac
import itertools
import re
import secrets
from collections.abc import Awaitable, Callable

from aiohttp import web

from leadd.api.problems import Problem, error_response, problem_response
from leadd.logging import request_id_var

__all__ = ["auth_middleware", "cors_preflight_middleware", "request_middleware", "response_headers"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]

REQUEST_ID_HEADER = "X-Request-ID"
# A client-sent id is echoed only when it is short and plain, so it cannot
# forge log lines or headers.
_CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")

# Generated ids: 64 random bits per process plus a counter, 32 hex digits
# like a UUID's, without a random-number syscall on every request.
_ID_PREFIX = secrets.token_hex(8)
_ID_COUNTER = itertools.count(1)

_PROTECTED_PREFIX = "/v1/"
_CORS_METHODS = "GET, POST, PATCH, DELETE, OPTIONS"
_CORS_HEADERS = "Authorization, Content-Type, Idempotency-Key, X-Request-ID, Accept"
_CORS_EXPOSE = "X-Request-ID, Location, Retry-After, Content-Disposition"


@web.middleware
async def request_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give the request its id, then turn any exception into a problem response.

    One middleware for both keeps the per-request cost to a single layer.
    """
    sent = request.headers.get(REQUEST_ID_HEADER, "")
    request["request_id"] = sent if _CLIENT_REQUEST_ID.match(sent) else f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"
    token = request_id_var.set(request["request_id"])
    try:
        return await handler(request)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        response = error_response(request, exc)
        if response is None:
            raise
        return response
    finally:
        request_id_var.reset(token)


def response_headers(allowed_origins: list[str]) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    """Return an on_response_prepare hook adding X-Request-ID and CORS headers.

    A hook, not a middleware, because streamed responses (CSV) send their
    headers before the handler returns.
    """
    allowed = frozenset(allowed_origins)

    async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
        request_id = request.get("request_id")
        if request_id:
            response.headers[REQUEST_ID_HEADER] = request_id
        origin = request.headers.get("Origin")
        if origin in allowed:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Expose-Headers"] = _CORS_EXPOSE
        if allowed:
            response.headers.add("Vary", "Origin")

    return add_headers


def cors_preflight_middleware(allowed_origins: list[str]) -> Middleware:
    """Respond to CORS preflight requests; only listed origins get the allow headers."""
    allowed = frozenset(allowed_origins)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method != "OPTIONS" or "Access-Control-Request-Method" not in request.headers:
            return await handler(request)
        response = web.Response(status=204)
        if request.headers.get("Origin") in allowed:
            response.headers["Access-Control-Allow-Methods"] = _CORS_METHODS
            response.headers["Access-Control-Allow-Headers"] = _CORS_HEADERS
            response.headers["Access-Control-Max-Age"] = "600"
        return response

    return middleware


def auth_middleware(token: str | None) -> Middleware:
    """Require ``Authorization: Bearer <token>`` on /v1/* when a token is configured."""
    expected = token.encode() if token else None

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if expected is None or not request.path.startswith(_PROTECTED_PREFIX):
            return await handler(request)
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        challenge = {"WWW-Authenticate": 'Bearer realm="leadd"'}
        if scheme.lower() != "bearer" or not credentials:
            return problem_response(
                Problem(401, "send the API token as 'Authorization: Bearer <token>'", code="unauthorized", headers=challenge),
                request.get("request_id"),
            )
        if not hmac.compare_digest(credentials.strip().encode(), expected):
            challenge["WWW-Authenticate"] += ', error="invalid_token"'
            return problem_response(
                Problem(401, "the API token is not valid; check LEADD_API_TOKEN", code="invalid_token", headers=challenge),
                request.get("request_id"),
            )
        return await handler(request)

    return middleware
