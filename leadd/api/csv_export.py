"""Lead lists as CSV, streamed in chunks so a large export uses little memory."""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from aiohttp import web

from leadd.api.middleware import prepare_streamed
from leadd.store import LeadQuery, Store

__all__ = ["CSV_COLUMNS", "stream_leads_csv", "wants_csv"]

log = logging.getLogger(__name__)

_CHUNK_ROWS = 500

# (header, how to read it from a lead as the API renders it)
CSV_COLUMNS: list[tuple[str, Callable[[dict[str, Any]], Any]]] = [
    ("id", lambda lead: lead["id"]),
    ("source", lambda lead: lead["source"]),
    ("place_id", lambda lead: lead["place_id"]),
    ("name", lambda lead: lead["name"]),
    ("address", lambda lead: lead["address"]),
    ("latitude", lambda lead: (lead["location"] or {}).get("latitude")),
    ("longitude", lambda lead: (lead["location"] or {}).get("longitude")),
    ("primary_type", lambda lead: lead["primary_type"]),
    ("types", lambda lead: ";".join(lead["types"])),
    ("business_status", lambda lead: lead["business_status"]),
    ("phone", lambda lead: lead["phone"]),
    ("phone_display", lambda lead: lead["phone_display"]),
    ("website", lambda lead: lead["website"]),
    ("website_domain", lambda lead: lead["website_domain"]),
    ("email", lambda lead: lead["email"]),
    ("opening_hours", lambda lead: lead["opening_hours"]),
    ("category", lambda lead: lead["category"]),
    ("rating", lambda lead: lead["rating"]),
    ("user_rating_count", lambda lead: lead["user_rating_count"]),
    ("maps_url", lambda lead: lead["maps_url"]),
    ("status", lambda lead: lead["status"]),
    ("notes", lambda lead: lead["notes"]),
    ("tags", lambda lead: ";".join(lead["tags"])),
    ("first_seen_at", lambda lead: lead["first_seen_at"]),
    ("last_seen_at", lambda lead: lead["last_seen_at"]),
    ("content_expired", lambda lead: "true" if lead["content_expired"] else "false"),
    ("score", lambda lead: lead["score"]),
    ("score_reasons", lambda lead: ";".join(lead["score_reasons"])),
    ("outreach", lambda lead: lead["outreach"]),
    ("scored_at", lambda lead: lead["scored_at"]),
    ("score_model", lambda lead: lead["score_model"]),
    ("score_error", lambda lead: (lead["score_error"] or {}).get("code")),
    ("attribution", lambda lead: lead["attribution"]),
]

# A text cell that starts with = + - @ would make a spreadsheet run it as a
# formula, and businesses, OpenStreetMap contributors, users and the model
# all write text that ends up here; such a cell gets a leading '. A phone
# number (a + and digits, spaces, brackets, dots, dashes) cannot run
# anything and is written as it is, so a CRM import reads it unchanged.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_PHONE = re.compile(r"^\+?[0-9 ().\-/]+$")


def wants_csv(request: web.Request, format_param: str | None) -> bool:
    """Tell whether to respond with CSV: ``format`` wins, else the Accept header's preference.

    CSV only when the client ranks text/csv above application/json (by
    q-value, then by order); JSON stays the default.
    """
    if format_param is not None:
        return format_param == "csv"
    ranks: dict[str, tuple[float, int]] = {}
    for position, item in enumerate(request.headers.get("Accept", "").split(",")):
        media_type, *parameters = (part.strip() for part in item.split(";"))
        quality = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        ranks.setdefault(media_type.lower(), (quality, -position))
    csv_rank = ranks.get("text/csv")
    if csv_rank is None or csv_rank[0] <= 0:
        return False
    json_rank = ranks.get("application/json")
    return json_rank is None or csv_rank > json_rank


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _PLAIN_PHONE.match(value):
        return "'" + value
    return value


async def stream_leads_csv(
    request: web.Request,
    store: Store,
    query: LeadQuery,
    filename: str,
    export_all: bool,
    byte_order_mark: bool = False,
) -> web.StreamResponse:
    """Write the leads matching ``query`` as CSV with a header row.

    With ``export_all`` the query's limit and offset are ignored and every
    matching lead is written. ``byte_order_mark`` starts the file with
    U+FEFF, which Excel needs to read it as UTF-8.
    """
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8; header=present",
            "Content-Disposition": f'attachment; filename="{filename}"',
        }
    )
    if request.method == "HEAD":
        # The headers alone: a chunked body, even an empty one, would be read
        # as the start of the next response on a kept-alive connection.
        await prepare_streamed(request, response)
        return response
    response.enable_chunked_encoding()
    await prepare_streamed(request, response)
    try:
        await _write_rows(response, store, query, export_all, byte_order_mark)
        await response.write_eof()
    except ConnectionError:
        # The client closed the connection (a cancelled download). aiohttp
        # logs the request and closes its side; this is no server error.
        log.info(
            "the client closed the connection during a CSV export",
            extra={"event": "csv_export_interrupted"},
        )
    return response


async def _write_rows(
    response: web.StreamResponse, store: Store, query: LeadQuery, export_all: bool, byte_order_mark: bool
) -> None:
    """Write the header row and the leads in chunks of _CHUNK_ROWS."""
    buffer = io.StringIO()
    if byte_order_mark:
        buffer.write("\ufeff")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([header for header, _ in CSV_COLUMNS])

    remaining = None if export_all else query.limit
    offset = 0 if export_all else query.offset
    while remaining is None or remaining > 0:
        size = _CHUNK_ROWS if remaining is None else min(_CHUNK_ROWS, remaining)
        leads, _ = await store.list_leads(replace(query, limit=size, offset=offset))
        for lead in leads:
            writer.writerow([_cell(read(lead)) for _, read in CSV_COLUMNS])
        await response.write(buffer.getvalue().encode("utf-8"))
        buffer.seek(0)
        buffer.truncate()
        offset += len(leads)
        if remaining is not None:
            remaining -= len(leads)
        if len(leads) < size:
            break
