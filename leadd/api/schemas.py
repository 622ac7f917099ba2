"""Request bodies and query parameters, validated with pydantic.

A validation failure becomes one 422 problem that lists every invalid field
(``pointer`` for body fields, ``parameter`` for query parameters).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, TypeVar

from aiohttp import web
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from leadd.api.problems import Problem
from leadd.config import PlacesProvider
from leadd.store.leads import LEAD_SORTS

__all__ = [
    "LeadListParams",
    "LeadPatch",
    "SearchCreate",
    "SearchListParams",
    "parse_body",
    "parse_query",
]

M = TypeVar("M", bound=BaseModel)

LEAD_STATUSES = ("new", "contacted", "qualified", "disqualified")
SEARCH_STATES = ("queued", "running", "succeeded", "failed", "cancelled")

# Google returns at most 60 places per query. Searches over OpenStreetMap
# (imported data or one Overpass query) may request more, up to one page of
# the lead list.
GOOGLE_MAX_RESULTS = 60
OSM_MAX_RESULTS = 500

Language = Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")]
Region = Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2}$")]
Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]


class SearchCreate(BaseModel):
    """Body of POST /v1/searches."""

    model_config = ConfigDict(extra="forbid", strict=True, str_strip_whitespace=True)

    query: str = Field(min_length=1, max_length=200)
    location: str | None = Field(None, min_length=1, max_length=200)
    max_results: int = Field(60, ge=1, le=OSM_MAX_RESULTS)
    min_rating: float | None = Field(None, ge=0, le=5, allow_inf_nan=False)
    require: list[Literal["phone", "website"]] = Field(default_factory=list, max_length=2)
    language: Language | None = None
    region: Region | None = None
    provider: PlacesProvider | None = None
    # The ideal-customer profile the leads are scored against (docs/scoring.md).
    profile: str | None = Field(None, min_length=1, max_length=2000)
    # Score the leads; unset means yes when a profile is given and a model is configured.
    score: bool | None = None

    @field_validator("require")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        return sorted(set(value))

    @field_validator("query")
    @classmethod
    def _has_words(cls, value: str) -> str:
        # "!!!" or an emoji alone matches nothing in a text index; without
        # this check a search over OpenStreetMap returned arbitrary leads.
        if not any(char.isalnum() for char in value):
            raise ValueError("must contain a letter or a digit, such as 'roofing contractors'")
        return value

    @model_validator(mode="before")
    @classmethod
    def _note_provider(cls, data: Any, info: ValidationInfo) -> Any:
        # max_results is validated before provider, so its cap reads the
        # requested provider from the validation context.
        if isinstance(info.context, dict) and isinstance(data, dict):
            info.context["requested_provider"] = data.get("provider")
        return data

    @field_validator("max_results")
    @classmethod
    def _cap_for_provider(cls, value: int, info: ValidationInfo) -> int:
        """Allow more than GOOGLE_MAX_RESULTS only for osm, named or as the default (``default_provider`` in the context)."""
        context = info.context if isinstance(info.context, dict) else {}
        provider = context.get("requested_provider") or context.get("default_provider")
        if value > GOOGLE_MAX_RESULTS and provider != PlacesProvider.OSM.value:
            raise ValueError(
                f"must be at most {GOOGLE_MAX_RESULTS} for Google providers (Google returns at most "
                f"{GOOGLE_MAX_RESULTS} places per query); provider osm allows up to {OSM_MAX_RESULTS}"
            )
        return value

    @field_validator("score")
    @classmethod
    def _score_needs_profile(cls, value: bool | None, info: ValidationInfo) -> bool | None:
        if value and not info.data.get("profile"):
            raise ValueError("scoring needs a profile: add profile (the ideal customer, up to 2,000 characters)")
        return value

    @field_validator("region")
    @classmethod
    def _upper(cls, value: str | None) -> str | None:
        return value.upper() if value else value

    @field_validator("provider", mode="before")
    @classmethod
    def _provider_from_text(cls, value: Any) -> Any:
        # strict mode does not turn JSON strings into enum members by itself.
        if isinstance(value, str):
            try:
                return PlacesProvider(value)
            except ValueError:
                raise ValueError(f"must be one of {', '.join(p.value for p in PlacesProvider)}") from None
        return value


class LeadPatch(BaseModel):
    """Body of PATCH /v1/leads/{id}: what a user adds to a lead."""

    model_config = ConfigDict(extra="forbid", strict=True)

    status: Literal["new", "contacted", "qualified", "disqualified"] | None = None
    notes: str | None = Field(None, max_length=5000)
    tags: list[Tag] | None = Field(None, max_length=20)

    @field_validator("tags")
    @classmethod
    def _unique_tags(cls, value: list[str] | None) -> list[str] | None:
        # In the order given, each tag once.
        return list(dict.fromkeys(value)) if value is not None else None


class QueryParams(BaseModel):
    """Query parameters: unknown ones are rejected, so a typo does not pass silently."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


# SQLite takes 64-bit integers; no list gets near this many leads.
MAX_OFFSET = 1_000_000_000


class _Page(QueryParams):
    limit: int = Field(100, ge=1, le=500)
    offset: int = Field(0, ge=0, le=MAX_OFFSET)


class SearchListParams(_Page):
    limit: int = Field(50, ge=1, le=500)
    state: Literal["queued", "running", "succeeded", "failed", "cancelled"] | None = None


class LeadListParams(_Page):
    sort: Literal[tuple(LEAD_SORTS)] | None = None  # type: ignore[valid-type]
    source: Literal["google", "osm"] | None = None
    q: str | None = Field(None, min_length=1, max_length=200)
    has_phone: bool | None = None
    has_website: bool | None = None
    min_rating: float | None = Field(None, ge=0, le=5, allow_inf_nan=False)
    min_score: int | None = Field(None, ge=0, le=100)
    status: Literal["new", "contacted", "qualified", "disqualified"] | None = None
    format: Literal["json", "csv"] | None = None
    bom: bool = False


async def parse_body(request: web.Request, model: type[M], validation_context: dict[str, Any] | None = None) -> M:
    """Read a JSON body into ``model``: 415 for another content type, 400 for bad JSON, 422 for bad fields.

    ``validation_context`` goes to pydantic's validators (SearchCreate reads default_provider).
    """
    if request.content_type != "application/json":
        raise Problem(
            415,
            f"send the body as application/json, not {request.content_type or 'no content type'}",
            code="unsupported_media_type",
        )
    raw = await request.read()
    try:
        data = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Problem(400, f"the body is not valid JSON: {exc}", code="malformed_json") from None
    except RecursionError:
        raise Problem(400, "the body is not valid JSON: it is nested too deeply", code="malformed_json") from None
    if not isinstance(data, dict):
        raise Problem(422, "the body must be a JSON object", code="invalid_fields", errors=[{"pointer": "#", "detail": "must be an object"}])
    try:
        return model.model_validate(data, context=validation_context)
    except ValidationError as exc:
        raise _invalid(exc, "pointer") from None


def _reject_constant(name: str) -> Any:
    # Python's json reads NaN, Infinity and -Infinity, which JSON does not have.
    raise ValueError(f"{name} is not a JSON value")


def parse_query(request: web.Request, model: type[M]) -> M:
    """Read query parameters into ``model``; a repeated parameter is invalid."""
    values: dict[str, Any] = {}
    repeated = []
    for key in request.query:
        all_values = request.query.getall(key)
        if len(all_values) > 1:
            repeated.append({"parameter": key, "detail": "given more than once"})
        values[key] = all_values[-1]
    try:
        parsed = model.model_validate(values)
    except ValidationError as exc:
        problem = _invalid(exc, "parameter")
        problem.errors = repeated + (problem.errors or [])
        raise problem from None
    if repeated:
        raise Problem(422, "some query parameters are invalid", code="invalid_fields", errors=repeated)
    return parsed


def _invalid(exc: ValidationError, kind: str) -> Problem:
    errors = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = [str(part) for part in error.get("loc", ())]
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        if error.get("type") == "extra_forbidden":
            message = "unknown field" if kind == "pointer" else "unknown parameter"
        where = "#/" + "/".join(loc) if kind == "pointer" else ".".join(loc)
        errors.append({kind: where, "detail": message})
    noun = "fields" if kind == "pointer" else "query parameters"
    names = ", ".join(entry[kind] for entry in errors)
    return Problem(422, f"invalid {noun}: {names}", code="invalid_fields", errors=errors)
