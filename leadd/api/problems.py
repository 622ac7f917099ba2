"""Errors as RFC 9457 problem details (application/problem+json).

Every error the API returns goes through here: the handlers raise Problem,
and ``error_response`` maps aiohttp's own HTTP errors (404, 405, 413) and
upstream or unexpected exceptions. A 500 carries only the request id.
"""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from typing import Any

from aiohttp import web

from leadd.logging import REQUEST_ID_KEY
from leadd.providers.errors import ProviderNotConfigured, UpstreamError

__all__ = ["PROBLEM_CONTENT_TYPE", "Problem", "error_response", "problem_response"]

log = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"

class Problem(Exception):
    """An error response: status, a short title, a detail with what to do, a stable code."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        code: str,
        title: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title or HTTPStatus(status).phrase
        self.detail = detail
        self.code = code
        self.errors = errors
        self.headers = headers or {}
        self.extensions = extensions


def problem_response(problem: Problem, request_id: str | None) -> web.Response:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
        "code": problem.code,
        "request_id": request_id,
    }
    if problem.errors is not None:
        body["errors"] = problem.errors
    body.update(problem.extensions)
    return web.Response(
        status=problem.status,
        text=json.dumps(body, ensure_ascii=False),
        content_type=PROBLEM_CONTENT_TYPE,
        headers=problem.headers,
    )


def _from_http_exception(exc: web.HTTPException, request: web.Request) -> Problem:
    status = exc.status
    headers: dict[str, str] = {}
    if status == 404:
        return Problem(404, f"no resource at {request.rel_url.path}; see /openapi.yaml for the API", code="not_found")
    if status == 405:
        allow = exc.headers.get("Allow", "")
        headers["Allow"] = allow
        return Problem(
            405,
            f"{request.method} is not allowed on {request.rel_url.path}; allowed: {allow or 'none'}",
            code="method_not_allowed",
            headers=headers,
        )
    if status == 413:
        limit = request.app.get(MAX_BODY_KEY)
        return Problem(413, f"the request body is larger than the limit of {limit} bytes", code="body_too_large")
    detail = exc.text or HTTPStatus(status).phrase
    return Problem(status, detail, code=HTTPStatus(status).phrase.lower().replace(" ", "_"))


MAX_BODY_KEY = web.AppKey("max_body_bytes", int)


def error_response(request: web.Request, exc: Exception) -> web.Response | None:
    """Map an exception raised while handling ``request`` to a problem response.

    Returns None for aiohttp's non-error HTTP exceptions (redirects), which
    the caller re-raises.
    """
    request_id = request.get(REQUEST_ID_KEY)
    if isinstance(exc, Problem):
        return problem_response(exc, request_id)
    if isinstance(exc, UpstreamError):
        # An upstream call made while handling the request (geocoding) failed after its retries.
        return problem_response(Problem(502, exc.user_message, code=exc.code, upstream=exc.upstream), request_id)
    if isinstance(exc, ProviderNotConfigured):
        return problem_response(
            Problem(503, str(exc), code="provider_not_configured", provider=exc.provider), request_id
        )
    if isinstance(exc, web.HTTPException):
        return problem_response(_from_http_exception(exc, request), request_id) if exc.status >= 400 else None
    # The traceback goes to the log under the request id; the client gets only the id.
    log.error(
        "unhandled error in %s %s",
        request.method,
        request.rel_url.path,
        exc_info=exc,
        extra={"event": "http_internal_error", "request_id": request_id},
    )
    return problem_response(
        Problem(500, f"internal error; the log has the details under request id {request_id}", code="internal_error"),
        request_id,
    )
