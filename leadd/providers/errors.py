"""Upstream failures, split by what the caller should do about them.

``TransientUpstreamError`` is worth retrying (timeouts, 5xx, rate limits,
malformed bodies); ``PermanentUpstreamError`` is not (bad request, rejected
key, API not enabled) and fails the search with ``user_message``. The HTTP
layer maps both in one place (``leadd.api.problems``).
"""

from __future__ import annotations

__all__ = [
    "MalformedResponse",
    "PermanentUpstreamError",
    "ProviderNotConfigured",
    "TransientUpstreamError",
    "UpstreamError",
    "UpstreamTimeout",
]


class UpstreamError(Exception):
    """An upstream API call failed.

    ``upstream`` names the API (``places_new``, ``geocoding``...), ``status``
    is the upstream's own status (``RESOURCE_EXHAUSTED``, ``OVER_QUERY_LIMIT``,
    an HTTP code as text), and ``user_message`` is the message for users, with what to do about it.
    """

    def __init__(
        self,
        upstream: str,
        message: str,
        *,
        status: str | None = None,
        http_status: int | None = None,
        user_message: str | None = None,
    ) -> None:
        super().__init__(message)
        self.upstream = upstream
        self.message = message
        self.status = status
        self.http_status = http_status
        self.user_message = user_message or message

    @property
    def code(self) -> str:
        """Stable snake_case name of the failure, stored on a failed search."""
        return f"{self.upstream}_{(self.status or 'error').lower()}"


class TransientUpstreamError(UpstreamError):
    """A failure that may pass: retried with backoff, up to a bound."""

    def __init__(self, *args: object, retry_after: float | None = None, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.retry_after = retry_after


class UpstreamTimeout(TransientUpstreamError):
    """The upstream sent no response within the configured timeout."""


class MalformedResponse(TransientUpstreamError):
    """The upstream returned a body that is not the expected JSON."""


class PermanentUpstreamError(UpstreamError):
    """A failure that repeats on retry: the request or the credentials are wrong."""


class ProviderNotConfigured(Exception):
    """A search names a provider whose credentials are not configured."""

    def __init__(self, provider: str, missing: str) -> None:
        super().__init__(f"provider {provider} is not configured: set {missing}")
        self.provider = provider
        self.missing = missing
