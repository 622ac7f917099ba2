"""The model's output: pydantic models for the JSON schema it must follow, and a per-entry parser.

The request sends the JSON schema of ``ScoreOutput`` in strict mode (built
by the SDK's ``type_to_response_format_param``). The output is then checked
entry by entry rather than as a whole, so one bad entry marks only its own
lead. Servers that ignore ``strict`` (many local ones) are held to the same
rules this way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from leadd.scoring.client import ChatResult
from leadd.store.scores import LeadAssessment, LeadScoreError

__all__ = [
    "MAX_OUTREACH",
    "MAX_REASONS",
    "CompletionOutcome",
    "LeadEntry",
    "ParsedOutput",
    "ScoreOutput",
    "parse_output",
    "read_completion",
]

MAX_REASONS = 3
MAX_REASON_LENGTH = 120
MAX_OUTREACH = 300


class LeadEntry(BaseModel):
    """One lead's assessment in the model's output."""

    # Extra keys are ignored when reading; the schema sent still forbids them.
    model_config = ConfigDict(extra="ignore")

    lead_id: int = Field(description="The lead's id, exactly as given in the data.")
    score: int = Field(ge=0, le=100, description="Fit with the ideal customer profile, from 0 (none) to 100 (ideal).")
    reasons: list[str] = Field(
        max_length=MAX_REASONS,
        description="At most three short reasons for the score, each under 100 characters.",
    )
    outreach: str = Field(
        description="One opening line for a first call or e-mail, at most 300 characters, no line breaks.",
    )

    @field_validator("reasons", mode="before")
    @classmethod
    def _trim_reasons(cls, value: Any) -> Any:
        # A server without strict mode may send more or longer reasons; keep the first three, cut.
        if not isinstance(value, list):
            return value
        reasons = [" ".join(item.split())[:MAX_REASON_LENGTH] for item in value if isinstance(item, str)]
        return [reason for reason in reasons if reason][:MAX_REASONS]

    @field_validator("outreach", mode="before")
    @classmethod
    def _one_line(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        line = " ".join(value.split())
        if len(line) > MAX_OUTREACH:
            line = line[: MAX_OUTREACH - 1].rsplit(" ", 1)[0] + "…"
        return line


class ScoreOutput(BaseModel):
    """The whole output for one batch: one entry per lead the request sent."""

    model_config = ConfigDict(extra="ignore")

    leads: list[LeadEntry] = Field(description="One entry per lead in the data, keyed by lead_id.")


@dataclass
class ParsedOutput:
    """An output split by lead: valid assessments, invalid entries, and what was dropped."""

    assessments: dict[int, LeadAssessment] = field(default_factory=dict)
    invalid: dict[int, str] = field(default_factory=dict)
    unknown_ids: list[Any] = field(default_factory=list)
    duplicates: int = 0
    error: str | None = None  # set when the output as a whole is unusable

    def missing(self, sent: list[int]) -> list[int]:
        """Return the ids sent that have neither an assessment nor an invalid entry."""
        return [lead_id for lead_id in sent if lead_id not in self.assessments and lead_id not in self.invalid]


def _lead_id(entry: Any) -> int | None:
    if not isinstance(entry, dict):
        return None
    value = entry.get("lead_id")
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False, include_input=False)[:3]:
        where = ".".join(str(part) for part in error.get("loc", ())) or "entry"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "the entry does not match the schema (" + "; ".join(parts) + ")"


def parse_output(content: str, sent: list[int]) -> ParsedOutput:
    """Split a model's JSON output into per-lead results.

    Entries for ids that were not sent are dropped into ``unknown_ids``; a
    second entry for the same id is ignored. When the content is not a JSON
    object with a ``leads`` array, ``error`` contains the reason and nothing else is set.
    """
    parsed = ParsedOutput()
    try:
        data = json.loads(content)
    except ValueError as exc:
        parsed.error = f"the output is not valid JSON ({exc.msg} at character {exc.pos})"
        return parsed
    if not isinstance(data, dict) or not isinstance(data.get("leads"), list):
        keys = ", ".join(sorted(data)[:5]) if isinstance(data, dict) else type(data).__name__
        parsed.error = f"the output does not match the schema: expected an object with a leads array, got {keys}"
        return parsed

    expected = set(sent)
    for entry in data["leads"]:
        lead_id = _lead_id(entry)
        if lead_id is None or lead_id not in expected:
            parsed.unknown_ids.append(entry.get("lead_id") if isinstance(entry, dict) else None)
            continue
        if lead_id in parsed.assessments or lead_id in parsed.invalid:
            parsed.duplicates += 1
            continue
        try:
            checked = LeadEntry.model_validate(entry)
        except ValidationError as exc:
            parsed.invalid[lead_id] = _describe(exc)
            continue
        parsed.assessments[lead_id] = LeadAssessment(
            lead_id=lead_id, score=checked.score, reasons=checked.reasons, outreach=checked.outreach
        )
    return parsed


@dataclass
class CompletionOutcome:
    """One completion as per-lead results, and why it was rejected when it was."""

    assessments: list[LeadAssessment] = field(default_factory=list)
    errors: list[LeadScoreError] = field(default_factory=list)
    missing_ids: list[int] = field(default_factory=list)
    unknown_ids: list[Any] = field(default_factory=list)
    duplicates: int = 0
    rejected: str | None = None  # the error code when the whole completion gave no scores


def _whole_output_error(result: ChatResult) -> tuple[str, str] | None:
    """Return (code, detail) when a completion as a whole gives no scores."""
    if result.refusal:
        return "refusal", f"the model refused: {result.refusal[:200]}"
    if result.finish_reason == "length":
        return "length", (
            "the output was cut off at the token limit (finish_reason length); lower LEADD_OPENAI_BATCH_SIZE "
            "or raise LEADD_OPENAI_MAX_COMPLETION_TOKENS"
        )
    if result.finish_reason == "content_filter":
        return "content_filter", "the model server's content filter stopped the output (finish_reason content_filter)"
    if not result.content:
        return "invalid_output", "the completion had no content"
    return None


def read_completion(result: ChatResult, sent: list[int]) -> CompletionOutcome:
    """Turn one chat completion for the leads ``sent`` into per-lead results.

    A refusal, a ``length`` or ``content_filter`` finish, or content that is
    not the expected JSON gives every lead sent the same error. Otherwise
    each lead gets its assessment or its own ``invalid_output`` error, and
    the leads the output left out are in ``missing_ids``.
    """
    whole = _whole_output_error(result)
    if whole is None:
        parsed = parse_output(result.content or "", sent)
        whole = ("invalid_output", parsed.error) if parsed.error is not None else None
    if whole is not None:
        code, detail = whole
        return CompletionOutcome(errors=[LeadScoreError(lead_id, code, detail) for lead_id in sent], rejected=code)
    return CompletionOutcome(
        assessments=list(parsed.assessments.values()),
        errors=[LeadScoreError(lead_id, "invalid_output", detail) for lead_id, detail in parsed.invalid.items()],
        missing_ids=parsed.missing(sent),
        unknown_ids=parsed.unknown_ids,
        duplicates=parsed.duplicates,
    )
