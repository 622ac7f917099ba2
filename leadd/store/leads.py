"""Leads in SQLite: upserts from search pages, filtered lists, user edits and the retention purge."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from leadd.providers.base import Page, Place
from leadd.store.normalize import phone_e164, text_words, website_domain
from leadd.store.scores import LATEST_SCORE_JOIN, SCORE_COLUMNS, SCORE_SORTS, lead_score_json, search_score_join

__all__ = [
    "ATTRIBUTIONS",
    "GOOGLE_CONTENT_COLUMNS",
    "LEAD_SORTS",
    "LeadQuery",
    "lead_to_json",
    "record_page",
]

# Shown with every lead, as each source's terms require.
ATTRIBUTIONS = {
    "google": "Google Maps",
    "osm": "© OpenStreetMap contributors",
}

# Place content Google allows to keep only briefly; the purge clears these
# and keeps the place id, the timestamps and everything the user added.
GOOGLE_CONTENT_COLUMNS = (
    "name",
    "address",
    "latitude",
    "longitude",
    "primary_type",
    "types",
    "business_status",
    "maps_url",
    "phone",
    "phone_display",
    "website",
    "website_domain",
    "rating",
    "user_rating_count",
    "email",
    "opening_hours",
)

# sort parameter -> ORDER BY; every order ends with the id so pages are stable.
LEAD_SORTS = {
    "-last_seen_at": "leads.last_seen_at DESC, leads.id DESC",
    "last_seen_at": "leads.last_seen_at ASC, leads.id ASC",
    "-first_seen_at": "leads.first_seen_at DESC, leads.id DESC",
    "first_seen_at": "leads.first_seen_at ASC, leads.id ASC",
    "name": "leads.name IS NULL, leads.name COLLATE NOCASE ASC, leads.id ASC",
    "-name": "leads.name IS NULL, leads.name COLLATE NOCASE DESC, leads.id DESC",
    "-rating": "leads.rating IS NULL, leads.rating DESC, leads.user_rating_count DESC, leads.id ASC",
    "rating": "leads.rating IS NULL, leads.rating ASC, leads.id ASC",
    "position": "search_leads.position ASC, leads.id ASC",
    **SCORE_SORTS,
}

_UPSERT = """
INSERT INTO leads (
    source, place_id, name, address, latitude, longitude, primary_type, types,
    business_status, maps_url, phone, phone_display, website, website_domain,
    rating, user_rating_count, email, opening_hours, category, keywords, osm_tags,
    content_fetched_at, first_seen_at, last_seen_at
) VALUES (
    :source, :place_id, :name, :address, :latitude, :longitude, :primary_type, :types,
    :business_status, :maps_url, :phone, :phone_display, :website, :website_domain,
    :rating, :user_rating_count, :email, :opening_hours, :category, :keywords, :osm_tags,
    :now, :now, :now
)
ON CONFLICT (source, place_id) DO UPDATE SET
    name = COALESCE(excluded.name, leads.name),
    address = COALESCE(excluded.address, leads.address),
    latitude = COALESCE(excluded.latitude, leads.latitude),
    longitude = COALESCE(excluded.longitude, leads.longitude),
    primary_type = COALESCE(excluded.primary_type, leads.primary_type),
    types = COALESCE(excluded.types, leads.types),
    business_status = COALESCE(excluded.business_status, leads.business_status),
    maps_url = COALESCE(excluded.maps_url, leads.maps_url),
    phone = COALESCE(excluded.phone, leads.phone),
    phone_display = COALESCE(excluded.phone_display, leads.phone_display),
    website = COALESCE(excluded.website, leads.website),
    website_domain = COALESCE(excluded.website_domain, leads.website_domain),
    rating = COALESCE(excluded.rating, leads.rating),
    user_rating_count = COALESCE(excluded.user_rating_count, leads.user_rating_count),
    email = COALESCE(excluded.email, leads.email),
    opening_hours = COALESCE(excluded.opening_hours, leads.opening_hours),
    category = COALESCE(excluded.category, leads.category),
    keywords = COALESCE(excluded.keywords, leads.keywords),
    osm_tags = COALESCE(excluded.osm_tags, leads.osm_tags),
    content_fetched_at = excluded.content_fetched_at,
    content_purged_at = NULL,
    last_seen_at = excluded.last_seen_at
RETURNING id
"""


def place_content(place: Place, region: str | None) -> dict[str, Any]:
    """Return the lead columns a source fills for ``place``, normalised (phone, website domain)."""
    return {
        "name": place.name,
        "address": place.address,
        "latitude": place.latitude,
        "longitude": place.longitude,
        "primary_type": place.primary_type,
        "types": json.dumps(place.types) if place.types else None,
        "business_status": place.business_status,
        "maps_url": place.maps_url,
        "phone": phone_e164(place.phone_international, place.phone_national, region),
        "phone_display": place.phone_international or place.phone_national,
        "website": place.website,
        "website_domain": website_domain(place.website),
        "rating": place.rating,
        "user_rating_count": place.user_rating_count,
        "email": place.email,
        "opening_hours": place.opening_hours,
        # OpenStreetMap places carry these in extra (leadd.osm.tags.place_from_element).
        "category": place.extra.get("category"),
        "keywords": place.extra.get("keywords"),
        "osm_tags": json.dumps(place.extra["osm_tags"], ensure_ascii=False, sort_keys=True)
        if place.extra.get("osm_tags")
        else None,
    }


def _place_row(place: Place, region: str | None, now: str) -> dict[str, Any]:
    return {"source": place.source, "place_id": place.place_id, **place_content(place, region), "now": now}


def upsert_place(conn: sqlite3.Connection, place: Place, region: str | None, now: str) -> int:
    """Insert or refresh one place by (source, place id); return the lead id."""
    return conn.execute(_UPSERT, _place_row(place, region, now)).fetchone()[0]


def record_page(
    conn: sqlite3.Connection,
    search_id: str,
    page: Page,
    kept: Iterable[Place],
    region: str | None,
    now: str,
) -> int:
    """Store a page's kept places, link them to the search and save its progress.

    Runs in one transaction with the checkpoint, so a crash leaves either the
    whole page and its checkpoint or neither. Returns leads linked so far.
    """
    next_position = conn.execute(
        "SELECT COALESCE(MAX(position), 0) FROM search_leads WHERE search_id = ?", (search_id,)
    ).fetchone()[0]
    for place in kept:
        lead_id = upsert_place(conn, place, region, now)
        cursor = conn.execute(
            "INSERT OR IGNORE INTO search_leads (search_id, lead_id, position, found_at) VALUES (?, ?, ?, ?)",
            (search_id, lead_id, next_position + 1, now),
        )
        next_position += cursor.rowcount
    stored = conn.execute("SELECT COUNT(*) FROM search_leads WHERE search_id = ?", (search_id,)).fetchone()[0]
    conn.execute(
        "UPDATE searches SET pages_fetched = ?, places_found = ?, leads_stored = ?, checkpoint = ?,"
        " updated_at = ? WHERE id = ?",
        (
            page.pages_seen,
            page.places_seen,
            stored,
            json.dumps(page.checkpoint) if page.checkpoint is not None else None,
            now,
            search_id,
        ),
    )
    return stored


@dataclass
class LeadQuery:
    """Filters, order and page of a lead list; the API validates the values."""

    search_id: str | None = None
    source: str | None = None
    text: str | None = None
    has_phone: bool | None = None
    has_website: bool | None = None
    min_rating: float | None = None
    min_score: int | None = None
    status: str | None = None
    sort: str = "-last_seen_at"
    limit: int = 100
    offset: int = 0
    extra_where: list[str] = field(default_factory=list)
    extra_params: list[Any] = field(default_factory=list)

    def where(self) -> tuple[str, str, list[Any]]:
        """Return (join, where, params) for this query."""
        join = ""
        clauses: list[str] = []
        params: list[Any] = []
        if self.search_id is not None:
            join = "JOIN search_leads ON search_leads.lead_id = leads.id AND search_leads.search_id = ?"
            params.append(self.search_id)
        # The score a lead shows: its search's profile and model, else its latest (leadd.store.scores).
        score_join, score_params = search_score_join(self.search_id) if self.search_id else (LATEST_SCORE_JOIN, [])
        join = f"{join} {score_join}"
        params += score_params
        if self.source is not None:
            clauses.append("leads.source = ?")
            params.append(self.source)
        if self.text:
            # LIKE finds the text inside names and addresses, ignoring the
            # case of ASCII letters only. The full-text index adds names whose
            # words start with the text's words in any case or accent
            # ("kamp" finds "Hotel Kämp").
            pattern = "%" + self.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            text_clause = "leads.name LIKE ? ESCAPE '\\' OR leads.address LIKE ? ESCAPE '\\'"
            params += [pattern, pattern]
            words = text_words(self.text)
            if words:
                text_clause += " OR leads.id IN (SELECT rowid FROM leads_fts WHERE leads_fts MATCH ?)"
                params.append(" AND ".join(f'name : "{word}" *' for word in words))
            clauses.append(f"({text_clause})")
        if self.has_phone is not None:
            clauses.append("leads.phone IS NOT NULL" if self.has_phone else "leads.phone IS NULL")
        if self.has_website is not None:
            clauses.append("leads.website IS NOT NULL" if self.has_website else "leads.website IS NULL")
        if self.min_rating is not None:
            clauses.append("leads.rating >= ?")
            params.append(self.min_rating)
        if self.min_score is not None:
            clauses.append("lead_score.score >= ?")
            params.append(self.min_score)
        if self.status is not None:
            clauses.append("leads.status = ?")
            params.append(self.status)
        clauses += self.extra_where
        params += self.extra_params
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        return join, where, params


_LEAD_COLUMNS = (
    "leads.*, (SELECT json_group_array(search_id) FROM search_leads AS links"
    " WHERE links.lead_id = leads.id) AS search_ids, " + SCORE_COLUMNS
)


def list_leads(conn: sqlite3.Connection, query: LeadQuery) -> tuple[list[sqlite3.Row], int]:
    join, where, params = query.where()
    total = conn.execute(f"SELECT COUNT(*) FROM leads {join} {where}", params).fetchone()[0]
    rows = conn.execute(
        f"SELECT {_LEAD_COLUMNS} FROM leads {join} {where} ORDER BY {LEAD_SORTS[query.sort]} LIMIT ? OFFSET ?",
        [*params, query.limit, query.offset],
    ).fetchall()
    return rows, total


def get_lead(conn: sqlite3.Connection, lead_id: int) -> sqlite3.Row | None:
    return conn.execute(f"SELECT {_LEAD_COLUMNS} FROM leads {LATEST_SCORE_JOIN} WHERE leads.id = ?", (lead_id,)).fetchone()


def update_lead(conn: sqlite3.Connection, lead_id: int, changes: dict[str, Any]) -> sqlite3.Row | None:
    """Apply user edits (status, notes, tags) and return the lead, or None when it does not exist."""
    allowed = {"status", "notes", "tags"}
    assignments = []
    params: list[Any] = []
    for column, value in changes.items():
        if column not in allowed:
            raise ValueError(f"{column} is not a user-editable lead field")
        assignments.append(f"{column} = ?")
        params.append(json.dumps(value) if column == "tags" else value)
    if assignments:
        conn.execute(f"UPDATE leads SET {', '.join(assignments)} WHERE id = ?", [*params, lead_id])
    return get_lead(conn, lead_id)


def purge_google_content(conn: sqlite3.Connection, fetched_before: str, now: str) -> int:
    """Clear Google content fetched before ``fetched_before``; return the number of leads purged."""
    assignments = ", ".join(f"{column} = NULL" for column in GOOGLE_CONTENT_COLUMNS)
    cursor = conn.execute(
        f"UPDATE leads SET {assignments}, content_purged_at = ?"
        " WHERE source = 'google' AND content_purged_at IS NULL AND content_fetched_at < ?",
        (now, fetched_before),
    )
    conn.execute("DELETE FROM geocode_cache WHERE provider = 'google' AND fetched_at < ?", (fetched_before,))
    # Scores, reasons and outreach lines were written from that content, so they go with it.
    conn.execute("DELETE FROM lead_scores WHERE lead_id IN (SELECT id FROM leads WHERE content_purged_at = ?)", (now,))
    return cursor.rowcount


def lead_to_json(row: sqlite3.Row) -> dict[str, Any]:
    """Render a lead row as the API shows it."""
    location = None
    if row["latitude"] is not None and row["longitude"] is not None:
        location = {"latitude": row["latitude"], "longitude": row["longitude"]}
    keys = row.keys()
    return {
        "id": row["id"],
        "source": row["source"],
        "place_id": row["place_id"],
        "name": row["name"],
        "address": row["address"],
        "location": location,
        "primary_type": row["primary_type"],
        "types": json.loads(row["types"]) if row["types"] else [],
        "business_status": row["business_status"],
        "maps_url": row["maps_url"],
        "phone": row["phone"],
        "phone_display": row["phone_display"],
        "website": row["website"],
        "website_domain": row["website_domain"],
        "email": row["email"],
        "opening_hours": row["opening_hours"],
        "category": row["category"],
        "rating": row["rating"],
        "user_rating_count": row["user_rating_count"],
        "first_seen_at": row["first_seen_at"],
        "last_seen_at": row["last_seen_at"],
        "content_expired": row["content_purged_at"] is not None,
        "status": row["status"],
        "notes": row["notes"],
        "tags": json.loads(row["tags"] or "[]"),
        "search_ids": json.loads(row["search_ids"]) if "search_ids" in keys and row["search_ids"] else [],
        **lead_score_json(row),
        "attribution": ATTRIBUTIONS.get(row["source"]),
    }
