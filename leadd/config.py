"""Settings from environment variables, validated before the daemon binds anything.

Under systemd the variables come from ``EnvironmentFile=``; in development a
``.env`` file in the working directory is read too (the environment wins).
``.env.example`` documents every variable.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = [
    "EX_CONFIG",
    "ConfigError",
    "ConfigProblem",
    "PlacesProvider",
    "Settings",
    "load_settings",
]

EX_CONFIG = 78  # sysexits.h: configuration error; the unit's RestartPreventExitStatus=78


class PlacesProvider(StrEnum):
    PLACES_NEW = "places_new"
    PLACES_LEGACY = "places_legacy"
    OSM = "osm"


class LogLevel(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


def _default_state_dir() -> Path:
    # systemd sets STATE_DIRECTORY for units with StateDirectory=.
    if os.environ.get("STATE_DIRECTORY"):
        return Path(os.environ["STATE_DIRECTORY"].split(":")[0])
    xdg = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(xdg) / "leadd"


def _env(name: str, *more: str) -> Any:
    return AliasChoices(name, *more) if more else name


class Settings(BaseSettings):
    """Every setting leadd reads, keyed by its environment variable."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=True,
        validate_default=True,
    )

    # Upstreams
    google_places_api_key: SecretStr | None = Field(
        None,
        validation_alias=_env("GOOGLE_PLACES_API_KEY"),
        description="a Google Maps Platform API key with Places API (New) and Geocoding API enabled",
    )
    places_provider: PlacesProvider | None = Field(
        None,
        validation_alias=_env("LEADD_PLACES_PROVIDER"),
        description=(
            "places_new, places_legacy or osm; when unset: places_new if "
            "GOOGLE_PLACES_API_KEY is set, otherwise osm"
        ),
    )
    google_places_base_url: str = Field(
        "https://places.googleapis.com",
        validation_alias=_env("LEADD_GOOGLE_PLACES_BASE_URL"),
        description="base URL of Places API (New)",
    )
    google_maps_base_url: str = Field(
        "https://maps.googleapis.com",
        validation_alias=_env("LEADD_GOOGLE_MAPS_BASE_URL"),
        description="base URL of the legacy Places and Geocoding APIs",
    )
    google_content_ttl_days: int = Field(
        30,
        ge=1,
        le=30,
        validation_alias=_env("LEADD_GOOGLE_CONTENT_TTL_DAYS"),
        description="days Google Places content is kept before it is purged, from 1 to 30",
    )
    google_legacy_page_token_delay_s: float = Field(
        2.0,
        ge=0,
        le=30,
        validation_alias=_env("LEADD_GOOGLE_LEGACY_PAGE_TOKEN_DELAY_S"),
        description="seconds to wait before using a legacy next_page_token (Google: about 2), from 0 to 30",
    )
    upstream_timeout_s: float = Field(
        10.0,
        gt=0,
        le=300,
        validation_alias=_env("LEADD_UPSTREAM_TIMEOUT_S"),
        description="timeout of one upstream request in seconds, above 0 and at most 300",
    )
    upstream_max_retries: int = Field(
        3,
        ge=0,
        le=10,
        validation_alias=_env("LEADD_UPSTREAM_MAX_RETRIES"),
        description="retries of a transient upstream failure, from 0 to 10",
    )
    upstream_backoff_s: float = Field(
        0.5,
        ge=0,
        le=60,
        validation_alias=_env("LEADD_UPSTREAM_BACKOFF_S"),
        description="first retry delay in seconds (doubles per retry, with jitter), from 0 to 60",
    )

    # OpenStreetMap (docs/osm.md)
    overpass_url: str | None = Field(
        "https://overpass-api.de/api/interpreter",
        validation_alias=_env("LEADD_OVERPASS_URL"),
        description="Overpass API interpreter URL for live searches outside imported extracts; empty disables them",
    )
    overpass_timeout_s: int = Field(
        25,
        ge=1,
        le=180,
        validation_alias=_env("LEADD_OVERPASS_TIMEOUT_S"),
        description="[timeout:N] of an Overpass query in seconds, from 1 to 180 (the server stops the query then)",
    )
    nominatim_url: str | None = Field(
        "https://nominatim.openstreetmap.org",
        validation_alias=_env("LEADD_NOMINATIM_URL"),
        description="Nominatim base URL for places the offline gazetteer does not know; empty disables it",
    )
    osm_contact: str | None = Field(
        None,
        max_length=200,
        validation_alias=_env("LEADD_OSM_CONTACT"),
        description="e-mail or URL added to the User-Agent of Overpass and Nominatim requests, as their usage policies ask",
    )
    osm_import_bundled: bool | None = Field(
        None,
        validation_alias=_env("LEADD_OSM_IMPORT_BUNDLED"),
        description=(
            "import the bundled Helsinki extract on start when the store has no OpenStreetMap leads: "
            "true, false, or unset for true when the default provider is osm"
        ),
    )

    # Lead scoring with an OpenAI-compatible model (docs/scoring.md)
    openai_api_key: SecretStr | None = Field(
        None,
        validation_alias=_env("OPENAI_API_KEY"),
        description="an OpenAI API key; with OPENAI_BASE_URL, the key of that server (if it needs one)",
    )
    openai_base_url: str | None = Field(
        None,
        validation_alias=_env("OPENAI_BASE_URL"),
        description="base URL of an OpenAI-compatible API, such as http://127.0.0.1:11434/v1 for Ollama",
    )
    openai_model: str = Field(
        "gpt-4o-mini",
        min_length=1,
        max_length=200,
        validation_alias=_env("LEADD_OPENAI_MODEL"),
        description="model name as the server knows it; it must support structured output (json_schema)",
    )
    openai_timeout_s: float = Field(
        60.0,
        gt=0,
        le=600,
        validation_alias=_env("LEADD_OPENAI_TIMEOUT_S"),
        description="timeout of one model request in seconds, above 0 and at most 600",
    )
    openai_max_retries: int = Field(
        2,
        ge=0,
        le=10,
        validation_alias=_env("LEADD_OPENAI_MAX_RETRIES"),
        description="retries of a failed model request (timeout, 429, 5xx), from 0 to 10",
    )
    openai_batch_size: int = Field(
        20,
        ge=10,
        le=100,
        validation_alias=_env("LEADD_OPENAI_BATCH_SIZE"),
        description="leads per model request, from 10 to 100",
    )
    openai_concurrency: int = Field(
        4,
        ge=1,
        le=64,
        validation_alias=_env("LEADD_OPENAI_CONCURRENCY"),
        description="model requests in flight at once across all searches, from 1 to 64",
    )
    openai_max_completion_tokens: int = Field(
        4096,
        ge=256,
        le=200_000,
        validation_alias=_env("LEADD_OPENAI_MAX_COMPLETION_TOKENS"),
        description="max_completion_tokens of one model request, from 256 to 200000",
    )
    openai_max_tokens_per_search: int = Field(
        100_000,
        ge=1000,
        le=100_000_000,
        validation_alias=_env("LEADD_OPENAI_MAX_TOKENS_PER_SEARCH"),
        description="prompt plus completion tokens one search may use for scoring, from 1000 to 100000000",
    )
    openai_price_per_million_prompt_tokens: float = Field(
        0.0,
        ge=0,
        le=10_000,
        validation_alias=_env("LEADD_OPENAI_PRICE_PER_MILLION_PROMPT_TOKENS"),
        description="price in USD of one million prompt tokens of the model, for the cost estimate",
    )
    openai_price_per_million_completion_tokens: float = Field(
        0.0,
        ge=0,
        le=10_000,
        validation_alias=_env("LEADD_OPENAI_PRICE_PER_MILLION_COMPLETION_TOKENS"),
        description="price in USD of one million completion tokens of the model, for the cost estimate",
    )

    # HTTP server
    host: str = Field(
        "127.0.0.1",
        min_length=1,
        validation_alias=_env("LEADD_HOST"),
        description="address to bind; a non-loopback address needs LEADD_API_TOKEN",
    )
    port: int = Field(
        5057,
        ge=1,
        le=65535,
        validation_alias=_env("LEADD_PORT"),
        description="TCP port to bind, from 1 to 65535",
    )
    api_token: SecretStr | None = Field(
        None,
        validation_alias=_env("LEADD_API_TOKEN"),
        description="bearer token for /v1/*, at least 16 characters (generate one with: openssl rand -hex 32)",
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        validation_alias=_env("LEADD_CORS_ORIGINS"),
        description="comma-separated origins allowed by CORS, such as https://crm.example.com",
    )
    shutdown_timeout_s: float = Field(
        20.0,
        ge=1,
        le=600,
        validation_alias=_env("LEADD_SHUTDOWN_TIMEOUT_S"),
        description="seconds in-flight requests get to finish on shutdown, from 1 to 600",
    )

    # Jobs and storage
    state_dir: Path = Field(
        default_factory=_default_state_dir,
        validation_alias=_env("LEADD_STATE_DIR"),
        description="folder for the SQLite store; must be writable",
    )
    max_concurrent_searches: int = Field(
        2,
        ge=1,
        le=64,
        validation_alias=_env("LEADD_MAX_CONCURRENT_SEARCHES"),
        description="searches run at the same time, from 1 to 64",
    )
    max_queued_searches: int = Field(
        100,
        ge=0,
        le=10000,
        validation_alias=_env("LEADD_MAX_QUEUED_SEARCHES"),
        description="searches waiting for a free worker before new ones get 429, from 0 (start at once or refuse) to 10000",
    )

    # Logging
    log_level: LogLevel = Field(
        LogLevel.INFO,
        validation_alias=_env("LEADD_LOG_LEVEL"),
        description="debug, info, warning or error",
    )
    log_file: Path | None = Field(
        None,
        validation_alias=_env("LEADD_LOG_FILE"),
        description="optional file that gets the same JSON lines as stderr",
    )

    @field_validator("places_provider", "log_level", mode="before")
    @classmethod
    def _lowercase(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("places_provider", "log_file", "api_token", "google_places_api_key", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("cors_origins")
    @classmethod
    def _check_origins(cls, origins: list[str]) -> list[str]:
        for origin in origins:
            if origin == "*":
                raise ValueError("'*' is not allowed: list each origin")
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
                raise ValueError(f"{origin!r} is not an origin like https://crm.example.com")
        return [origin.rstrip("/") for origin in origins]

    @field_validator("google_places_base_url", "google_maps_base_url")
    @classmethod
    def _check_base_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"{url!r} is not an http(s) URL")
        return url.rstrip("/")

    @field_validator("google_places_api_key")
    @classmethod
    def _check_google_key(cls, key: SecretStr | None) -> SecretStr | None:
        if key is not None and not key.get_secret_value().startswith("AIza"):
            raise ValueError("not a Google API key (those start with AIza); copy it from the Cloud console")
        return key

    @field_validator("api_token")
    @classmethod
    def _check_token(cls, token: SecretStr | None) -> SecretStr | None:
        if token is not None and len(token.get_secret_value()) < 16:
            raise ValueError("too short: use at least 16 characters")
        return token

    @field_validator("overpass_url", "nominatim_url", "osm_contact", "osm_import_bundled", mode="before")
    @classmethod
    def _osm_empty_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("overpass_url", "nominatim_url")
    @classmethod
    def _check_osm_url(cls, url: str | None) -> str | None:
        if url is None:
            return None
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"{url!r} is not an http(s) URL; set a URL or leave it empty to disable the service")
        return url.strip().rstrip("/")

    @field_validator("osm_contact")
    @classmethod
    def _check_osm_contact(cls, contact: str | None) -> str | None:
        if contact is not None and any(char in contact for char in "()\r\n"):
            raise ValueError("must not contain parentheses or line breaks (it goes into the User-Agent header)")
        return contact.strip() if contact is not None else None

    @field_validator("openai_api_key", "openai_base_url", mode="before")
    @classmethod
    def _openai_empty_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("openai_base_url")
    @classmethod
    def _check_openai_base_url(cls, url: str | None) -> str | None:
        if url is None:
            return None
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"{url!r} is not an http(s) URL such as http://127.0.0.1:11434/v1")
        return url.strip().rstrip("/")

    @property
    def scoring_configured(self) -> bool:
        """Tell whether leads can be scored: an OpenAI key, or the base URL of another server."""
        return self.openai_api_key is not None or self.openai_base_url is not None

    @property
    def default_provider(self) -> PlacesProvider:
        """Provider for searches that do not name one."""
        if self.places_provider is not None:
            return self.places_provider
        if self.google_places_api_key is not None:
            return PlacesProvider.PLACES_NEW
        return PlacesProvider.OSM

    @property
    def database_path(self) -> Path:
        return self.state_dir / "leadd.sqlite3"

    def secret_values(self) -> list[str]:
        """Return every configured secret, for log redaction."""
        values = []
        for name in SECRET_FIELDS:
            secret = getattr(self, name, None)
            if secret is not None:
                values.append(secret.get_secret_value())
        return values

    def describe(self) -> list[tuple[str, str]]:
        """Return (variable, shown value) pairs; secrets show only configured or missing."""
        rows = []
        for name, field in type(self).model_fields.items():
            variable = env_name(name)
            value = getattr(self, name)
            if name in SECRET_FIELDS:
                shown = "configured" if value is not None else "missing"
            elif value is None:
                # An empty live OpenStreetMap URL turns that service off.
                shown = "(disabled)" if name in _SERVICE_URL_FIELDS else "(unset)"
            elif isinstance(value, list):
                shown = ",".join(value) or "(none)"
            else:
                shown = str(value)
            rows.append((variable, shown))
        rows.append(("(default provider)", str(self.default_provider)))
        return rows


SECRET_FIELDS = frozenset({"google_places_api_key", "api_token", "openai_api_key"})
_SERVICE_URL_FIELDS = frozenset({"overpass_url", "nominatim_url"})


def secret_variables() -> list[str]:
    """Return the environment variables that hold secrets."""
    return sorted(env_name(name) for name in SECRET_FIELDS)


def env_name(field_name: str) -> str:
    alias = Settings.model_fields[field_name].validation_alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return str(alias)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ConfigProblem:
    variable: str
    message: str

    def __str__(self) -> str:
        return f"{self.variable}: {self.message}"


class ConfigError(Exception):
    """The configuration cannot be used; ``problems`` names each variable."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(problem) for problem in problems))

    def render(self) -> str:
        count = len(self.problems)
        lines = [f"configuration is invalid ({count} problem{'s' if count != 1 else ''}):"]
        lines += [f"  {problem}" for problem in self.problems]
        return "\n".join(lines)


def load_settings(env_file: str | Path | None = ".env", **overrides: Any) -> Settings:
    """Load and validate settings; raise ConfigError naming every invalid variable."""
    try:
        settings = Settings(_env_file=env_file, **overrides)  # type: ignore[call-arg]
    except ValidationError as exc:
        problems = _problems_from(exc)
        # Check the rest too, with the invalid fields at their defaults, so
        # one run lists every problem.
        invalid = {_field_name(error["loc"][0]) for error in exc.errors() if error.get("loc")}
        invalid.discard(None)
        defaults = {env_name(name): Settings.model_fields[name].get_default(call_default_factory=True) for name in invalid}
        try:
            partial = Settings(_env_file=env_file, **{**overrides, **defaults})  # type: ignore[call-arg]
        except ValidationError:
            raise ConfigError(problems) from None
        skip = {env_name(name) for name in invalid if name}
        problems += [problem for problem in _semantic_problems(partial) if problem.variable not in skip]
        raise ConfigError(problems) from None
    problems = _semantic_problems(settings)
    if problems:
        raise ConfigError(problems)
    return settings


def _semantic_problems(settings: Settings) -> list[ConfigProblem]:
    return _combination_problems(settings) + _check_state_dir(settings.state_dir)


def _combination_problems(settings: Settings) -> list[ConfigProblem]:
    problems = []
    if not is_loopback(settings.host) and settings.api_token is None:
        problems.append(ConfigProblem(
            "LEADD_API_TOKEN",
            f"missing, but LEADD_HOST={settings.host} is not a loopback address; "
            "set LEADD_API_TOKEN (openssl rand -hex 32) or bind 127.0.0.1",
        ))
    google = (PlacesProvider.PLACES_NEW, PlacesProvider.PLACES_LEGACY)
    if settings.places_provider in google and settings.google_places_api_key is None:
        problems.append(ConfigProblem(
            "GOOGLE_PLACES_API_KEY",
            f"missing, but LEADD_PLACES_PROVIDER={settings.places_provider} needs it; "
            "set the key, or unset LEADD_PLACES_PROVIDER to use OpenStreetMap",
        ))
    return problems


def unknown_variables(environ: dict[str, str] | None = None) -> list[str]:
    """Return warnings for LEADD_* variables leadd does not read (likely typos)."""
    environ = dict(os.environ if environ is None else environ)
    known = {env_name(name) for name in Settings.model_fields} | EXTRA_KNOWN_VARIABLES
    warnings = []
    for variable in sorted(environ):
        if variable.startswith("LEADD_") and variable not in known:
            close = difflib.get_close_matches(variable, known, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            warnings.append(f"{variable}: unknown variable, ignored{hint}")
    return warnings


# Read by other parts of leadd or by tests, not by Settings.
EXTRA_KNOWN_VARIABLES = {"LEADD_ENV_FILE"}


def _field_name(loc: Any) -> str | None:
    """Return the field a validation error is about; errors name it by its variable."""
    for name in Settings.model_fields:
        if loc in (name, env_name(name)):
            return name
    return None


def _problems_from(exc: ValidationError) -> list[ConfigProblem]:
    problems = []
    for error in exc.errors(include_url=False):
        field = _field_name(error["loc"][0]) if error.get("loc") else None
        if field is not None:
            problems.append(ConfigProblem(env_name(field), _describe_error(field, error)))
        else:
            problems.append(ConfigProblem("(settings)", str(error.get("msg", "invalid"))))
    return problems


def _describe_error(field: str, error: dict[str, Any]) -> str:
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    described = Settings.model_fields[field].description
    shown = ""
    if field not in SECRET_FIELDS and "input" in error and isinstance(error["input"], str | int | float):
        shown = f" (got {error['input']!r})"
    expected = f"; expected {described}" if described else ""
    return f"invalid{shown}: {message}{expected}"


def _check_state_dir(state_dir: Path) -> list[ConfigProblem]:
    """Check that ``state_dir`` is, or can be created as, a writable folder; create nothing.

    The store creates a missing folder when it opens, so check-config can
    run anywhere without leaving folders behind.
    """
    variable = env_name("state_dir")
    existing = state_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing != state_dir:
        if not existing.is_dir():
            return [ConfigProblem(variable, f"cannot create {state_dir}: {existing} is not a folder; point the variable elsewhere")]
        if not os.access(existing, os.W_OK | os.X_OK):
            return [ConfigProblem(variable, f"cannot create {state_dir}: {existing} is not writable by this user; create it or point the variable elsewhere")]
        return []
    if not state_dir.is_dir():
        return [ConfigProblem(variable, f"{state_dir} is not a folder; point the variable elsewhere")]
    if not os.access(state_dir, os.W_OK | os.X_OK):
        return [ConfigProblem(variable, f"{state_dir} is not writable by this user; fix its owner or mode")]
    return []
