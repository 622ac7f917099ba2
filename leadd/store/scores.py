"""Lead scores in SQLite: the per-(lead, profile, model) cache and each search's scoring state.

A score row is keyed by (lead, profile hash, model), so every search with
the same profile and model reuses it. A row with ``error`` set records why a
lead got no score; it is not a cache hit, so a later search requests a score again.

Which score a lead list shows:

- a search's leads (``/v1/searches/{id}/leads``) show the score for that
  search's profile and model, or none when the search has no profile;
- every other lead view (``/v1/leads``, ``/v1/leads/{id}``) shows the lead's
  most recent score, whatever its profile; a lead with only errors shows the
  most recent error.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from leadd.store.db import Database

__all__ = [
    "LATEST_SCORE_JOIN",
    "SCORE_COLUMNS",
    "SCORE_SORTS",
    "SCORING_STATES",
    "LeadAssessment",
    "LeadScoreError",
    "ScoreStore",
    "lead_score_json",
    "scoring_json",
    "search_score_join",
]

OFF, PENDING, RUNNING, DONE, BUDGET_EXHAUSTED, FAILED, STOPPED = (
    "off",
    "pending",
    "running",
    "done",
    "budget_exhausted",
    "failed",
    "stopped",
)
SCORING_STATES = (OFF, PENDING, RUNNING, DONE, BUDGET_EXHAUSTED, FAILED, STOPPED)

# The lead list's score columns, read from the alias ``lead_score``.
SCORE_COLUMNS = (
    "lead_score.score AS score, lead_score.reasons AS score_reasons, lead_score.outreach AS outreach,"
    " lead_score.scored_at AS scored_at, lead_score.model AS score_model,"
    " lead_score.error AS score_error, lead_score.error_detail AS score_error_detail"
)

# The lead's most recent score; a lead with only errors gets its most recent error.
LATEST_SCORE_JOIN = (
    "LEFT JOIN lead_scores AS lead_score ON lead_score.id = ("
    "SELECT latest.id FROM lead_scores AS latest WHERE latest.lead_id = leads.id"
    " ORDER BY latest.score IS NULL, latest.scored_at DESC, latest.id DESC LIMIT 1)"
)

# sort parameter -> ORDER BY; unscored leads come last in both directions.
SCORE_SORTS = {
    "-score": "lead_score.score IS NULL, lead_score.score DESC, leads.id ASC",
    "score": "lead_score.score IS NULL, lead_score.score ASC, leads.id ASC",
}


def search_score_join(search_id: str) -> tuple[str, list[Any]]:
    """Return (join, params) for the score under a search's own profile and model."""
    join = (
        "LEFT JOIN lead_scores AS lead_score ON lead_score.lead_id = leads.id"
        " AND lead_score.profile_hash = (SELECT profile_hash FROM searches WHERE id = ?)"
        " AND lead_score.model = (SELECT score_model FROM searches WHERE id = ?)"
    )
    return join, [search_id, search_id]


def lead_score_json(row: sqlite3.Row) -> dict[str, Any]:
    """Render the score fields of a lead row; all None when the row has no score columns."""
    keys = row.keys()
    if "score_model" not in keys or row["score_model"] is None:
        return {
            "score": None,
            "score_reasons": [],
            "outreach": None,
            "scored_at": None,
            "score_model": None,
            "score_error": None,
        }
    error = None
    if row["score_error"]:
        error = {"code": row["score_error"], "message": row["score_error_detail"] or row["score_error"]}
    return {
        "score": row["score"],
        "score_reasons": json.loads(row["score_reasons"] or "[]"),
        "outreach": row["outreach"],
        "scored_at": row["scored_at"],
        "score_model": row["score_model"],
        "score_error": error,
    }


def scoring_json(row: sqlite3.Row) -> dict[str, Any]:
    """Render a search row's ``scoring`` object (see docs/scoring.md for each state)."""
    data = json.loads(row["scoring"] or "{}") if "scoring" in row.keys() else {}
    state = row["scoring_state"] if "scoring_state" in row.keys() else None
    if state is None:
        request = json.loads(row["request"] or "{}")
        state = PENDING if request.get("profile") and request.get("score") is not False else OFF
    if row["state"] in ("failed", "cancelled") and state in (PENDING, RUNNING):
        state = STOPPED  # the search ended before its scoring could finish
    return {
        "state": state,
        "model": row["score_model"] if "score_model" in row.keys() else None,
        "leads_total": data.get("leads_total", 0),
        "leads_scored": data.get("leads_scored", 0),
        "leads_cached": data.get("leads_cached", 0),
        "leads_failed": data.get("leads_failed", 0),
        "usage": {
            "requests": data.get("requests", 0),
            "prompt_tokens": data.get("prompt_tokens", 0),
            "completion_tokens": data.get("completion_tokens", 0),
            "estimated_cost_usd": round(data.get("estimated_cost_usd", 0.0), 6),
        },
        "error": data.get("error"),
    }


@dataclass(frozen=True)
class LeadAssessment:
    """A model's valid assessment of one lead."""

    lead_id: int
    score: int
    reasons: list[str]
    outreach: str


@dataclass(frozen=True)
class LeadScoreError:
    """Why a lead got no score: ``code`` is refusal, length, content_filter, invalid_output..."""

    lead_id: int
    code: str
    detail: str


@dataclass
class UsageDelta:
    """Model usage of one or more requests, added to a search's totals."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    estimated_cost_usd: float = 0.0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class ScoringTarget:
    """A search's leads for one profile and model, split by what the cache holds."""

    scoring: dict[str, Any]
    to_score: list[sqlite3.Row] = field(default_factory=list)
    cached: int = 0


_SEARCH_LEADS = """
SELECT leads.id, leads.name, leads.address, leads.primary_type, leads.types, leads.website,
       leads.rating, leads.user_rating_count, leads.business_status, leads.phone IS NOT NULL AS has_phone,
       lead_score.score AS score, lead_score.search_id AS scored_by
FROM search_leads
JOIN leads ON leads.id = search_leads.lead_id
LEFT JOIN lead_scores AS lead_score ON lead_score.lead_id = leads.id
     AND lead_score.profile_hash = ? AND lead_score.model = ?
WHERE search_leads.search_id = ?
ORDER BY search_leads.position, leads.id
"""

_UPSERT_SCORE = """
INSERT INTO lead_scores (
    lead_id, profile_hash, model, score, reasons, outreach, error, error_detail, search_id, scored_at
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (lead_id, profile_hash, model) DO UPDATE SET
    score = excluded.score,
    reasons = excluded.reasons,
    outreach = excluded.outreach,
    error = excluded.error,
    error_detail = excluded.error_detail,
    search_id = excluded.search_id,
    scored_at = excluded.scored_at
WHERE lead_scores.score IS NULL
"""


def _load_scoring(conn: sqlite3.Connection, search_id: str) -> dict[str, Any]:
    row = conn.execute("SELECT scoring FROM searches WHERE id = ?", (search_id,)).fetchone()
    return json.loads(row[0] or "{}") if row is not None else {}


def _save_scoring(conn: sqlite3.Connection, search_id: str, scoring: dict[str, Any], now: str) -> None:
    conn.execute(
        "UPDATE searches SET scoring = ?, updated_at = ? WHERE id = ?",
        (json.dumps(scoring, sort_keys=True), now, search_id),
    )


def _count_results(conn: sqlite3.Connection, search_id: str, profile_hash: str, model: str) -> tuple[int, int]:
    """Return (leads with a score, leads with an error) of a search under one profile and model."""
    row = conn.execute(
        "SELECT COUNT(lead_score.score), COUNT(lead_score.error) FROM search_leads"
        " JOIN lead_scores AS lead_score ON lead_score.lead_id = search_leads.lead_id"
        " AND lead_score.profile_hash = ? AND lead_score.model = ?"
        " WHERE search_leads.search_id = ?",
        (profile_hash, model, search_id),
    ).fetchone()
    return int(row[0]), int(row[1])


def start_scoring(
    conn: sqlite3.Connection, search_id: str, profile_hash: str, model: str, now: str
) -> ScoringTarget:
    """Mark a search's scoring as running and return the leads that still need a model call.

    Usage totals from an earlier attempt of the same search are kept, so a
    resumed search goes on counting and its budget covers every attempt.
    ``leads_cached`` counts leads scored by other searches and is set on the
    first attempt only.
    """
    rows = conn.execute(_SEARCH_LEADS, (profile_hash, model, search_id)).fetchall()
    scoring = _load_scoring(conn, search_id)
    cached = sum(1 for row in rows if row["score"] is not None and row["scored_by"] != search_id)
    scoring.setdefault("leads_cached", cached)
    scoring["leads_total"] = len(rows)
    scoring["leads_scored"], scoring["leads_failed"] = _count_results(conn, search_id, profile_hash, model)
    scoring.pop("error", None)
    conn.execute(
        "UPDATE searches SET profile_hash = ?, score_model = ?, scoring_state = ? WHERE id = ?",
        (profile_hash, model, RUNNING, search_id),
    )
    _save_scoring(conn, search_id, scoring, now)
    return ScoringTarget(scoring=scoring, to_score=[row for row in rows if row["score"] is None], cached=cached)


def record_scores(
    conn: sqlite3.Connection,
    search_id: str,
    profile_hash: str,
    model: str,
    assessments: Iterable[LeadAssessment],
    errors: Iterable[LeadScoreError],
    usage: UsageDelta,
    now: str,
) -> dict[str, Any]:
    """Store one completion's scores and errors and add its usage to the search; return the scoring totals.

    A stored score is never replaced by an error or by a second score.
    """
    for item in assessments:
        reasons = json.dumps(item.reasons)
        conn.execute(
            _UPSERT_SCORE,
            (item.lead_id, profile_hash, model, item.score, reasons, item.outreach, None, None, search_id, now),
        )
    for error in errors:
        conn.execute(
            _UPSERT_SCORE,
            (error.lead_id, profile_hash, model, None, "[]", None, error.code, error.detail, search_id, now),
        )
    scoring = _load_scoring(conn, search_id)
    scoring["requests"] = scoring.get("requests", 0) + usage.requests
    scoring["prompt_tokens"] = scoring.get("prompt_tokens", 0) + usage.prompt_tokens
    scoring["completion_tokens"] = scoring.get("completion_tokens", 0) + usage.completion_tokens
    scoring["estimated_cost_usd"] = scoring.get("estimated_cost_usd", 0.0) + usage.estimated_cost_usd
    scoring["leads_scored"], scoring["leads_failed"] = _count_results(conn, search_id, profile_hash, model)
    _save_scoring(conn, search_id, scoring, now)
    return scoring


def finish_scoring(
    conn: sqlite3.Connection, search_id: str, state: str, error: dict[str, str] | None, now: str
) -> dict[str, Any]:
    """Set the final scoring state (and error) of a search; return its scoring totals."""
    scoring = _load_scoring(conn, search_id)
    if error is not None:
        scoring["error"] = error
    else:
        scoring.pop("error", None)
    conn.execute("UPDATE searches SET scoring_state = ? WHERE id = ?", (state, search_id))
    _save_scoring(conn, search_id, scoring, now)
    return scoring


class ScoreStore:
    """Async access to scores and scoring state, over the store's writer and reader threads."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def search_row(self, search_id: str) -> sqlite3.Row | None:
        return await self._db.read(
            lambda conn: conn.execute("SELECT * FROM searches WHERE id = ?", (search_id,)).fetchone()
        )

    async def start(self, search_id: str, profile_hash: str, model: str) -> ScoringTarget:
        return await self._db.write(start_scoring, search_id, profile_hash, model, _now())

    async def record(
        self,
        search_id: str,
        profile_hash: str,
        model: str,
        assessments: list[LeadAssessment],
        errors: list[LeadScoreError],
        usage: UsageDelta,
    ) -> dict[str, Any]:
        return await self._db.write(record_scores, search_id, profile_hash, model, assessments, errors, usage, _now())

    async def finish(self, search_id: str, state: str, error: dict[str, str] | None = None) -> dict[str, Any]:
        return await self._db.write(finish_scoring, search_id, state, error, _now())

    async def set_off(self, search_id: str) -> None:
        await self._db.write(
            lambda conn: conn.execute("UPDATE searches SET scoring_state = ? WHERE id = ?", (OFF, search_id))
        )


def _now() -> str:
    # leadd.store imports this module, so its clock is imported at call time.
    from leadd.store import utc_now

    return utc_now()
