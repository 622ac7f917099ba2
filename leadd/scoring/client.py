"""The OpenAI SDK behind one method: one Chat Completions request, its errors mapped to leadd's.

Importing openai 3.60 takes about 0.3 s after leadd's own modules (0.7 s
in a bare interpreter), so nothing here imports it at module level.
``start()`` imports it in a worker thread (the event loop keeps serving
meanwhile) and builds one ``AsyncOpenAI`` over the SDK's aiohttp transport
(``DefaultAioHttpClient``). The SDK's own retries are off
(``max_retries=0``): the scorer retries with leadd's policy, so every
attempt is counted, logged and charged to its search.
"""

from __future__ import annotations

import asyncio
import email.utils
import importlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from leadd.providers.errors import (
    MalformedResponse,
    PermanentUpstreamError,
    TransientUpstreamError,
    UpstreamTimeout,
)

__all__ = ["DEFAULT_BASE_URL", "NO_KEY", "ChatClient", "ChatResult"]

log = logging.getLogger(__name__)

UPSTREAM = "openai"
DEFAULT_BASE_URL = "https://api.openai.com/v1"

# The SDK requires a non-empty key. Local servers (Ollama, llama.cpp server,
# LM Studio, vLLM without --api-key) accept any value. A server that checks
# keys returns 401, and the error message then says to set OPENAI_API_KEY.
NO_KEY = "no-key-configured"


@dataclass(frozen=True)
class ChatResult:
    """The fields of one chat completion that the scorer uses."""

    content: str | None
    refusal: str | None
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    model: str | None


class ChatClient:
    """One ``AsyncOpenAI`` client, created on first use and shared by every search."""

    def __init__(self, *, api_key: str | None, base_url: str | None, timeout_s: float) -> None:
        self._api_key = api_key or NO_KEY
        self.base_url = base_url or DEFAULT_BASE_URL
        self._timeout_s = timeout_s
        self._sdk: Any = None
        self._client: Any = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Import the SDK in a thread and build the client; later calls return at once.

        Raises PermanentUpstreamError when the openai package is missing.
        """
        if self._client is not None:
            return
        async with self._lock:
            if self._client is not None:
                return
            started = time.monotonic()
            try:
                self._sdk, self._client = await asyncio.to_thread(self._build)
            except ImportError as exc:
                raise PermanentUpstreamError(
                    UPSTREAM,
                    f"cannot import the openai package: {exc}",
                    status="sdk_missing",
                    user_message="the openai package is not installed; reinstall leadd from requirements/runtime.lock",
                ) from exc
            log.info(
                "OpenAI SDK %s loaded in %.2f s",
                self._sdk.__version__,
                time.monotonic() - started,
                extra={"event": "scoring_client_ready", "sdk_version": self._sdk.__version__},
            )

    def _build(self) -> tuple[Any, Any]:
        sdk = importlib.import_module("openai")
        client = sdk.AsyncOpenAI(
            api_key=self._api_key,
            base_url=self.base_url,
            timeout=self._timeout_s,
            max_retries=0,
            http_client=sdk.DefaultAioHttpClient(timeout=self._timeout_s),
        )
        return sdk, client

    def response_format(self, model: type[Any]) -> dict[str, Any]:
        """Return the strict ``json_schema`` response format for a pydantic model (call after start())."""
        if self._sdk is None:
            raise RuntimeError("call start() before response_format()")
        lib = importlib.import_module("openai.lib")
        return dict(lib.type_to_response_format_param(model))

    async def create(
        self,
        *,
        model: str,
        messages: list[dict[str, str]],
        response_format: dict[str, Any],
        max_completion_tokens: int,
    ) -> ChatResult:
        """Send one ``chat.completions.create`` request.

        Raises UpstreamTimeout, TransientUpstreamError (connection errors, 429,
        408, 409 and 5xx, with the server's Retry-After), MalformedResponse (a
        body that is not a chat completion) or PermanentUpstreamError (other
        4xx, such as a rejected key or an unknown model).
        """
        await self.start()
        sdk = self._sdk
        try:
            completion = await self._client.chat.completions.create(
                model=model,
                messages=messages,
                response_format=response_format,
                max_completion_tokens=max_completion_tokens,
            )
        except sdk.APITimeoutError as exc:
            raise UpstreamTimeout(
                UPSTREAM,
                f"the model server at {self.base_url} timed out after {self._timeout_s:g} s",
                status="timeout",
            ) from exc
        except sdk.APIConnectionError as exc:
            cause = type(exc.__cause__).__name__ if exc.__cause__ else "connection error"
            raise TransientUpstreamError(
                UPSTREAM, f"cannot reach the model server at {self.base_url} ({cause})", status="unavailable"
            ) from exc
        except sdk.APIStatusError as exc:
            raise self._status_error(exc) from exc
        except (sdk.APIResponseValidationError, ValueError) as exc:
            raise MalformedResponse(
                UPSTREAM,
                f"the model server returned a body that is not valid JSON ({type(exc).__name__})",
                status="malformed",
            ) from exc
        if not isinstance(completion, sdk.types.chat.ChatCompletion) or not completion.choices:
            raise MalformedResponse(
                UPSTREAM, "the model server returned a body that is not a chat completion", status="malformed"
            )
        choice = completion.choices[0]
        usage = completion.usage
        return ChatResult(
            content=choice.message.content,
            refusal=getattr(choice.message, "refusal", None),
            finish_reason=choice.finish_reason,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            model=completion.model,
        )

    def _status_error(self, exc: Any) -> Exception:
        status = int(exc.status_code)
        detail = _error_message(exc.body) or f"HTTP {status}"
        message = f"the model server returned HTTP {status}: {detail}"
        code = _error_code(exc.body)
        if status == 429 and code == "insufficient_quota":
            return PermanentUpstreamError(
                UPSTREAM,
                message,
                status="insufficient_quota",
                http_status=status,
                user_message=f"{message}; the account has no quota left, check its plan and billing",
            )
        if status in (408, 409, 429) or status >= 500:
            return TransientUpstreamError(
                UPSTREAM,
                message,
                status="rate_limited" if status == 429 else f"http_{status}",
                http_status=status,
                retry_after=retry_after_s(exc.response.headers),
            )
        if status in (401, 403):
            hint = "check OPENAI_API_KEY (a local server without keys needs none, but OPENAI_BASE_URL must point at it)"
        elif status == 404:
            hint = f"check LEADD_OPENAI_MODEL and that OPENAI_BASE_URL ({self.base_url}) ends with the API's /v1 path"
        else:
            hint = "the model may not support structured output (response_format json_schema); check LEADD_OPENAI_MODEL"
        return PermanentUpstreamError(
            UPSTREAM, message, status=f"http_{status}", http_status=status, user_message=f"{message}; {hint}"
        )

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None


def _error_field(body: Any, name: str) -> str | None:
    # OpenAI's error body is {"error": {"message", "type", "param", "code"}};
    # the SDK passes the inner object, other servers send either shape.
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = body["error"]
    if isinstance(body, dict) and body.get(name) is not None:
        return str(body[name])[:300]
    return None


def _error_message(body: Any) -> str | None:
    if isinstance(body, str):
        return body[:300] or None
    return _error_field(body, "message")


def _error_code(body: Any) -> str | None:
    return _error_field(body, "code")


def retry_after_s(headers: Any) -> float | None:
    """Return the delay a response requests: retry-after-ms, else Retry-After in seconds or as an HTTP date."""
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) / divisor)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    parsed = email.utils.parsedate_tz(value)
    if parsed is None:
        return None
    return max(0.0, email.utils.mktime_tz(parsed) - time.time())
