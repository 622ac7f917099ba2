"""/v1/leads: list (JSON or CSV), show, and user edits."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from leadd.api.context import CONTEXT
from leadd.api.csv_export import stream_leads_csv, wants_csv
from leadd.api.problems import Problem
from leadd.api.schemas import LeadListParams, LeadPatch, parse_body, parse_query
from leadd.store import LeadQuery

__all__ = ["lead_list_response", "page_body", "routes"]

routes = web.RouteTableDef()


def page_body(request: web.Request, items: list[dict[str, Any]], total: int, limit: int, offset: int) -> dict[str, Any]:
    """Wrap one page of a list with its total and the URL of the next page (None on the last)."""
    next_url = None
    if offset + len(items) < total:
        next_url = str(request.rel_url.update_query(offset=offset + len(items), limit=limit))
    return {"items": items, "total": total, "limit": limit, "offset": offset, "next": next_url}


def _json(data: object) -> web.Response:
    return web.json_response(data, dumps=lambda value: json.dumps(value, ensure_ascii=False))


async def lead_list_response(request: web.Request, search_id: str | None = None) -> web.StreamResponse:
    """Respond to a lead list request for all leads or one search's, as JSON or CSV."""
    context = request.app[CONTEXT]
    params = parse_query(request, LeadListParams)
    query = LeadQuery(
        search_id=search_id,
        source=params.source,
        text=params.q,
        has_phone=params.has_phone,
        has_website=params.has_website,
        min_rating=params.min_rating,
        min_score=params.min_score,
        status=params.status,
        sort=params.sort or ("position" if search_id else "-last_seen_at"),
        limit=params.limit,
        offset=params.offset,
    )
    if query.sort == "position" and search_id is None:
        raise Problem(
            422,
            "sort=position needs a search: use /v1/searches/{id}/leads",
            code="invalid_fields",
            errors=[{"parameter": "sort", "detail": "position is only valid for a search's leads"}],
        )
    if wants_csv(request, params.format):
        day = datetime.now(UTC).strftime("%Y%m%d")
        scope = f"search-{search_id[:8]}" if search_id else "all"
        export_all = "limit" not in request.query and "offset" not in request.query
        return await stream_leads_csv(
            request, context.store, query, f"leads-{scope}-{day}.csv", export_all, byte_order_mark=params.bom
        )
    items, total = await context.store.list_leads(query)
    return _json(page_body(request, items, total, query.limit, query.offset))


def _lead_id(request: web.Request) -> int:
    raw = request.match_info["lead_id"]
    if not raw.isdigit() or len(raw) > 18:
        raise Problem(404, f"no lead with id {raw!r}", code="lead_not_found")
    return int(raw)


@routes.get("/v1/leads")
async def list_leads(request: web.Request) -> web.StreamResponse:
    return await lead_list_response(request)


@routes.get("/v1/leads/{lead_id}")
async def get_lead(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    lead_id = _lead_id(request)
    lead = await context.store.get_lead(lead_id)
    if lead is None:
        raise Problem(404, f"no lead with id {lead_id}", code="lead_not_found")
    return _json(lead)


@routes.patch("/v1/leads/{lead_id}")
async def update_lead(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    lead_id = _lead_id(request)
    patch = await parse_body(request, LeadPatch)
    changes = patch.model_dump(exclude_unset=True)
    if "status" in changes and changes["status"] is None:
        raise Problem(422, "status cannot be null", code="invalid_fields", errors=[{"pointer": "#/status", "detail": "cannot be null"}])
    if changes.get("tags") is None and "tags" in changes:
        changes["tags"] = []
    lead = await context.store.update_lead(lead_id, changes)
    if lead is None:
        raise Problem(404, f"no lead with id {lead_id}", code="lead_not_found")
    return _json(lead)
