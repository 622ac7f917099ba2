"""Bounded retries with exponential backoff and full jitter."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from leadd.providers.errors import TransientUpstreamError

__all__ = ["RetryPolicy", "call_with_retries"]

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait before retrying a transient failure.

    The n-th retry waits a random time in [d/2, d] with d = backoff_s * 2**n,
    capped at max_delay_s. A Retry-After from the upstream is honoured when
    it is at most max_delay_s; a longer one ends the retries at once.
    """

    max_retries: int = 3
    backoff_s: float = 0.5
    max_delay_s: float = 30.0

    def delay(self, retry: int, retry_after: float | None = None) -> float | None:
        """Return seconds to wait before retry number ``retry`` (0-based), or None to give up."""
        if retry >= self.max_retries:
            return None
        ceiling = min(self.backoff_s * (2**retry), self.max_delay_s)
        delay = random.uniform(ceiling / 2, ceiling)
        if retry_after is not None:
            if retry_after > self.max_delay_s:
                return None
            delay = max(delay, retry_after)
        return delay


async def call_with_retries(
    call: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    operation: str,
) -> T:
    """Await ``call()``; retry TransientUpstreamError per ``policy``.

    Raises the last TransientUpstreamError when retries run out, and any
    other exception (PermanentUpstreamError included) at once.
    """
    retry = 0
    while True:
        try:
            return await call()
        except TransientUpstreamError as exc:
            delay = policy.delay(retry, exc.retry_after)
            if delay is None:
                raise
            log.warning(
                "%s failed (%s), retry %d of %d in %.2f s",
                operation,
                exc.message,
                retry + 1,
                policy.max_retries,
                delay,
                extra={
                    "event": "upstream_retry",
                    "operation": operation,
                    "upstream_status": exc.status,
                    "retry": retry + 1,
                    "delay_s": round(delay, 3),
                },
            )
            await asyncio.sleep(delay)
            retry += 1
