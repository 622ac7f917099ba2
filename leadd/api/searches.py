"""/v1/searches: submit, list, show, cancel, and list a search's leads."""

from __future__ import annotations

import hashlib
import json
import re

from aiohttp import web

from leadd.api.context import CONTEXT
from leadd.api.leads import lead_list_response, page_body
from leadd.api.problems import Problem
from leadd.api.schemas import SearchCreate, SearchListParams, parse_body, parse_query
from leadd.store import IdempotencyConflict, QueueFull, SearchRecord
from leadd.store.searches import TERMINAL_STATES

__all__ = ["routes"]

routes = web.RouteTableDef()

_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
_SEARCH_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def _search_id(request: web.Request) -> str:
    search_id = request.match_info["search_id"]
    if not _SEARCH_ID.match(search_id):
        raise Problem(404, f"no search with id {search_id!r}", code="search_not_found")
    return search_id


def _not_found(search_id: str) -> Problem:
    return Problem(404, f"no search with id {search_id!r}", code="search_not_found")


def _json(data: object, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(data, status=status, headers=headers, dumps=lambda value: json.dumps(value, ensure_ascii=False))


@routes.post("/v1/searches")
async def create_search(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    key = request.headers.get("Idempotency-Key")
    if key is not None and not _IDEMPOTENCY_KEY.match(key):
        raise Problem(
            422,
            "Idempotency-Key must be 1 to 255 visible ASCII characters, such as a UUID",
            code="invalid_fields",
            errors=[{"header": "Idempotency-Key", "detail": "must be 1 to 255 visible ASCII characters"}],
        )
    body = await parse_body(
        request, SearchCreate, validation_context={"default_provider": context.settings.default_provider.value}
    )
    provider = body.provider or context.settings.default_provider
    context.providers.ensure_configured(provider.value)

    request_fields = body.model_dump(mode="json", exclude={"query", "location", "provider"})
    fingerprint = json.dumps(body.model_dump(mode="json") | {"provider": provider.value}, sort_keys=True)
    record = SearchRecord(
        provider=provider.value,
        query=body.query,
        location=body.location,
        request=request_fields,
        idempotency_key=key,
        request_hash=hashlib.sha256(fingerprint.encode()).hexdigest(),
    )
    try:
        search, created = await context.store.create_search(
            record, context.settings.max_queued_searches, context.settings.max_concurrent_searches
        )
    except QueueFull as exc:
        retry_after = context.jobs.retry_after_s()
        raise Problem(
            429,
            f"{exc.queued} searches are already queued; retry after {retry_after} s",
            code="queue_full",
            headers={"Retry-After": str(retry_after)},
        ) from None
    except IdempotencyConflict as exc:
        raise Problem(
            422,
            f"{exc}; use a new Idempotency-Key for a different search",
            code="idempotency_key_reused",
            errors=[{"header": "Idempotency-Key", "detail": "already used with another request body"}],
        ) from None

    headers = {"Location": f"/v1/searches/{search['id']}"}
    if created:
        context.jobs.submit(search["id"])
    else:
        headers["Idempotent-Replayed"] = "true"
    return _json(search, status=202, headers=headers)


@routes.get("/v1/searches")
async def list_searches(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    params = parse_query(request, SearchListParams)
    items, total = await context.store.list_searches(params.state, params.limit, params.offset)
    return _json(page_body(request, items, total, params.limit, params.offset))


@routes.get("/v1/searches/{search_id}")
async def get_search(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    search_id = _search_id(request)
    search = await context.store.get_search(search_id)
    if search is None:
        raise _not_found(search_id)
    return _json(search)


@routes.delete("/v1/searches/{search_id}")
async def cancel_search(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    search_id = _search_id(request)
    search = await context.jobs.cancel(search_id)
    if search is None:
        raise _not_found(search_id)
    if search["state"] in TERMINAL_STATES and search["state"] != "cancelled":
        raise Problem(
            409,
            f"search {search_id} already {search['state']}; only queued or running searches can be cancelled",
            code="search_finished",
        )
    return _json(search)


@routes.get("/v1/searches/{search_id}/leads")
async def search_leads(request: web.Request) -> web.StreamResponse:
    context = request.app[CONTEXT]
    search_id = _search_id(request)
    if await context.store.get_search_row(search_id) is None:
        raise _not_found(search_id)
    return await lead_list_response(request, search_id=search_id)
