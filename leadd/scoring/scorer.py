"""Scoring a search's leads: cache, batches, concurrency, token budget and failure handling.

``Scorer.score_search`` is a stage of the search job: the runner calls it
after every page is stored and before the search is marked succeeded. It
returns normally whatever the model server does. A scoring failure shows on
the search's ``scoring`` object and in its warnings, never as a failed
search. Only cancellation (a user's cancel or a shutdown) propagates.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections import Counter
from typing import Any

from leadd.config import Settings
from leadd.logging import Redactor
from leadd.providers.errors import UpstreamError
from leadd.providers.retry import RetryPolicy, call_with_retries
from leadd.scoring.client import ChatClient, ChatResult
from leadd.scoring.prompt import build_messages, estimate_tokens, has_content, lead_payload
from leadd.scoring.schema import CompletionOutcome, ScoreOutput, read_completion
from leadd.store import Store
from leadd.store.scores import (
    BUDGET_EXHAUSTED,
    DONE,
    FAILED,
    LeadAssessment,
    LeadScoreError,
    ScoreStore,
    UsageDelta,
)

__all__ = ["NOT_CONFIGURED_WARNING", "Scorer", "profile_hash", "split_batches"]

log = logging.getLogger(__name__)

NOT_CONFIGURED_WARNING = (
    "scoring is off: the search has a profile but no model is configured; set OPENAI_API_KEY "
    "(or OPENAI_BASE_URL for a local server) and submit the search again"
)

# A Retry-After longer than this ends the retries of a model request at once.
_MAX_RETRY_DELAY_S = 60.0


def profile_hash(profile: str) -> str:
    """Return the cache key of a profile: SHA-256 of its text with whitespace runs made one space."""
    return hashlib.sha256(" ".join(profile.split()).encode("utf-8")).hexdigest()


def split_batches(items: list[Any], batch_size: int) -> list[list[Any]]:
    """Split ``items`` into the fewest batches of at most ``batch_size``, their sizes differing by at most one.

    Even sizes keep every batch as full as possible (25 leads at 20 per batch
    go as 13 and 12, not 20 and 5), which shortens the slowest request.
    """
    if not items:
        return []
    count = -(-len(items) // batch_size)
    size, extra = divmod(len(items), count)
    batches, start = [], 0
    for index in range(count):
        end = start + size + (1 if index < extra else 0)
        batches.append(items[start:end])
        start = end
    return batches


class Scorer:
    """Scores searches' leads against their profile with one shared model client."""

    def __init__(self, settings: Settings, store: Store, redactor: Redactor, client: ChatClient | None) -> None:
        self.settings = settings
        self.client = client
        self.store = store
        self.scores = ScoreStore(store.db)
        self.redact = redactor
        # Daemon-wide: every search's batches share these request slots.
        self.slots = asyncio.Semaphore(settings.openai_concurrency)
        self.retry = RetryPolicy(
            max_retries=settings.openai_max_retries,
            backoff_s=settings.upstream_backoff_s,
            max_delay_s=_MAX_RETRY_DELAY_S,
        )

    @classmethod
    def from_settings(cls, settings: Settings, store: Store, redactor: Redactor) -> Scorer:
        if not settings.scoring_configured:
            log.info(
                "lead scoring is off: set OPENAI_API_KEY, or OPENAI_BASE_URL for a local server",
                extra={"event": "scoring_off"},
            )
            return cls(settings, store, redactor, None)
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
        client = ChatClient(api_key=key, base_url=settings.openai_base_url, timeout_s=settings.openai_timeout_s)
        log.info(
            "lead scoring with %s at %s",
            settings.openai_model,
            client.base_url,
            extra={"event": "scoring_configured", "model": settings.openai_model, "base_url": client.base_url},
        )
        return cls(settings, store, redactor, client)

    @property
    def configured(self) -> bool:
        return self.client is not None

    async def dependency_check(self) -> tuple[str, str, bool]:
        """Report ``openai`` for /health/detailed; missing scoring never makes leadd unusable."""
        return "openai", "configured" if self.configured else "missing", True

    async def warm_up(self) -> None:
        """Load the SDK before the first search needs it; a failure is logged and retried on first use."""
        if self.client is None:
            return
        try:
            await self.client.start()
        except UpstreamError as exc:
            log.error("cannot load the OpenAI SDK: %s", exc.message, extra={"event": "scoring_client_failed"})

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()

    async def score_search(self, search_id: str) -> None:
        """Score the leads of a search that has a profile; return when scoring ended, however it ended."""
        row = await self.scores.search_row(search_id)
        if row is None:
            return
        request = json.loads(row["request"])
        profile = request.get("profile")
        if not profile or request.get("score") is False:
            await self.scores.set_off(search_id)
            return
        if self.client is None:
            await self.scores.set_off(search_id)
            await self.store.add_warning(search_id, NOT_CONFIGURED_WARNING)
            log.warning(
                "search has a profile, but scoring is not configured",
                extra={"event": "scoring_not_configured"},
            )
            return
        try:
            await _ScoringJob(self, self.client, search_id, profile).run()
        except Exception:
            # A bug in scoring must not fail a search whose leads are stored.
            log.exception("scoring failed with an internal error", extra={"event": "scoring_internal_error"})
            message = f"internal error while scoring; the log has the details under search id {search_id}"
            await self.scores.finish(search_id, FAILED, {"code": "internal_error", "message": message})
            await self.store.add_warning(search_id, f"scoring failed: {message}")


class _ScoringJob:
    """The scoring of one search: its budget, its batches and how it ended."""

    def __init__(self, scorer: Scorer, client: ChatClient, search_id: str, profile: str) -> None:
        self.scorer = scorer
        self.settings = scorer.settings
        self.client = client
        self.search_id = search_id
        self.profile = profile
        self.profile_hash = profile_hash(profile)
        self.model = scorer.settings.openai_model
        self.budget = scorer.settings.openai_max_tokens_per_search
        self.used_tokens = 0
        self.reserved_tokens = 0
        self.budget_stopped = False
        self.failure: UpstreamError | None = None
        self.response_format: dict[str, Any] = {}

    async def run(self) -> None:
        target = await self.scorer.scores.start(self.search_id, self.profile_hash, self.model)
        self.used_tokens = target.scoring.get("prompt_tokens", 0) + target.scoring.get("completion_tokens", 0)
        payloads = [(row, lead_payload(row)) for row in target.to_score]
        empty = [
            LeadScoreError(row["id"], "insufficient_data", "the lead has no name, website or type to score")
            for row, payload in payloads
            if not has_content(payload)
        ]
        scorable = [payload for _, payload in payloads if has_content(payload)]
        batches = split_batches(scorable, self.settings.openai_batch_size)
        log.info(
            "scoring %d leads in %d batches with %s (%d already scored)",
            len(scorable),
            len(batches),
            self.model,
            target.scoring["leads_scored"],
            extra={
                "event": "scoring_started",
                "model": self.model,
                "batches": len(batches),
                "leads_cached": target.cached,
            },
        )
        started = time.monotonic()
        if empty:
            await self._record([], empty, UsageDelta())
        if batches:
            try:
                await self.client.start()
                self.response_format = self.client.response_format(ScoreOutput)
            except UpstreamError as exc:
                self.failure = exc
            else:
                async with asyncio.TaskGroup() as group:
                    for batch in batches:
                        group.create_task(self._run_batch(batch))
        await self._finish(time.monotonic() - started)

    async def _finish(self, seconds: float) -> None:
        scores, store = self.scorer.scores, self.scorer.store
        if self.failure is not None:
            code = self.failure.code
            message = self.scorer.redact(self.failure.user_message)
            totals = await scores.finish(self.search_id, FAILED, {"code": code, "message": message})
            await store.add_warning(self.search_id, f"scoring failed: {message}; the leads were kept, some unscored")
            log.warning("scoring failed: %s", message, extra={"event": "scoring_failed", "error_code": code})
        elif self.budget_stopped:
            totals = await scores.finish(self.search_id, BUDGET_EXHAUSTED)
            await store.add_warning(
                self.search_id,
                f"scoring stopped at the token budget ({self.budget} tokens, LEADD_OPENAI_MAX_TOKENS_PER_SEARCH) "
                f"with {totals.get('leads_scored', 0)} of {totals.get('leads_total', 0)} leads scored; "
                "submit the search again to score the rest (scored leads are not sent again)",
            )
            log.warning(
                "scoring stopped at the token budget after %d tokens",
                self.used_tokens,
                extra={"event": "scoring_budget_exhausted", "tokens": self.used_tokens, "budget": self.budget},
            )
        else:
            totals = await scores.finish(self.search_id, DONE)
        if totals.get("leads_failed"):
            await store.add_warning(
                self.search_id,
                f"{totals['leads_failed']} leads have no score; each shows why in score_error",
            )
        log.info(
            "scoring ended: %d of %d leads scored, %d failed, %d requests, %d tokens in %.2f s",
            totals.get("leads_scored", 0),
            totals.get("leads_total", 0),
            totals.get("leads_failed", 0),
            totals.get("requests", 0),
            self.used_tokens,
            seconds,
            extra={"event": "scoring_finished", "requests": totals.get("requests", 0), "tokens": self.used_tokens},
        )

    def _reserve(self, estimate: int) -> bool:
        """Claim budget for one request; False (and stop) once the budget is reached.

        A request starts while the tokens used plus the estimates of requests
        in flight stay below the budget, so the total can pass the budget by
        at most the requests in flight.
        """
        if self.used_tokens + self.reserved_tokens >= self.budget:
            self.budget_stopped = True
            return False
        self.reserved_tokens += estimate
        return True

    async def _run_batch(self, batch: list[dict[str, Any]]) -> None:
        async with self.scorer.slots:
            missing = await self._ask(batch, retry_of_missing=False)
            if missing:
                # Asked once more, alone, so a long batch cannot hide them again.
                await self._ask(missing, retry_of_missing=True)

    async def _ask(self, batch: list[dict[str, Any]], retry_of_missing: bool) -> list[dict[str, Any]]:
        """Send one batch, store the results, and return the leads the output left out."""
        if self.failure is not None:
            return []
        messages = build_messages(self.profile, batch)
        estimate = estimate_tokens(messages, len(batch))
        if not self._reserve(estimate):
            return []
        attempts = 0

        async def attempt() -> ChatResult:
            nonlocal attempts
            attempts += 1
            return await self.client.create(
                model=self.model,
                messages=messages,
                response_format=self.response_format,
                max_completion_tokens=self.settings.openai_max_completion_tokens,
            )

        started = time.monotonic()
        try:
            result = await call_with_retries(attempt, self.scorer.retry, operation="openai chat completion")
        except UpstreamError as exc:
            if self.failure is None:
                self.failure = exc
            await self._record([], [], UsageDelta(requests=attempts))
            return []
        finally:
            self.reserved_tokens -= estimate

        usage = self._usage(result, attempts)
        self.used_tokens += usage.tokens
        outcome = read_completion(result, [lead["id"] for lead in batch])
        self._log_outcome(outcome, len(batch))
        if retry_of_missing:
            detail = "the model's output had no entry for this lead, also when requested again in a smaller batch"
            outcome.errors += [
                LeadScoreError(lead_id, "missing_from_output", detail) for lead_id in outcome.missing_ids
            ]
            outcome.missing_ids = []
        await self._record(outcome.assessments, outcome.errors, usage)
        log.info(
            "batch of %d leads: %d scored, %d failed, %d missing in %.2f s",
            len(batch),
            len(outcome.assessments),
            len(outcome.errors),
            len(outcome.missing_ids),
            time.monotonic() - started,
            extra={
                "event": "scoring_batch_completed",
                "leads": len(batch),
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "finish_reason": result.finish_reason,
            },
        )
        left_out = set(outcome.missing_ids)
        return [lead for lead in batch if lead["id"] in left_out]

    def _usage(self, result: ChatResult, attempts: int) -> UsageDelta:
        settings = self.settings
        cost = (
            result.prompt_tokens * settings.openai_price_per_million_prompt_tokens
            + result.completion_tokens * settings.openai_price_per_million_completion_tokens
        ) / 1_000_000
        return UsageDelta(
            requests=attempts,
            prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
            estimated_cost_usd=cost,
        )

    @staticmethod
    def _log_outcome(outcome: CompletionOutcome, leads: int) -> None:
        if outcome.rejected is not None:
            log.warning(
                "model output for %d leads rejected (%s): %s",
                leads,
                outcome.rejected,
                outcome.errors[0].detail,
                extra={"event": "scoring_output_rejected", "reason": outcome.rejected, "leads": leads},
            )
        if outcome.unknown_ids or outcome.duplicates:
            log.warning(
                "dropped %d output entries for ids that were not sent and %d repeated entries",
                len(outcome.unknown_ids),
                outcome.duplicates,
                extra={
                    "event": "scoring_entries_dropped",
                    "unknown_ids": [str(item)[:40] for item in outcome.unknown_ids[:10]],
                },
            )

    async def _record(self, assessments: list[LeadAssessment], errors: list[LeadScoreError], usage: UsageDelta) -> None:
        if errors:
            counts = Counter(error.code for error in errors)
            log.warning(
                "%d leads got no score: %s",
                len(errors),
                ", ".join(f"{code} {count}" for code, count in sorted(counts.items())),
                extra={"event": "scoring_lead_errors", "codes": dict(counts)},
            )
        await self.scorer.scores.record(self.search_id, self.profile_hash, self.model, assessments, errors, usage)
