"""The state the HTTP handlers share: settings, store, jobs and providers."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from leadd.config import Settings
from leadd.logging import Redactor
from leadd.store import Store

if TYPE_CHECKING:
    from leadd.jobs import JobManager
    from leadd.providers import Providers

__all__ = ["CONTEXT", "ApiContext"]

# Returns (dependency name, state, usable): a check that reports False makes
# /health/detailed return 503.
DependencyCheck = Callable[[], Awaitable[tuple[str, str, bool]]]


@dataclass
class ApiContext:
    settings: Settings
    store: Store
    jobs: JobManager
    providers: Providers
    version: str
    # Removes secrets from text; the daemon's, shared with the log handlers.
    redactor: Redactor = field(default_factory=Redactor)
    started_at: float = field(default_factory=time.monotonic)
    dependency_checks: list[DependencyCheck] = field(default_factory=list)
    loop_monitor: Any = None  # leadd.systemd.LoopMonitor once the daemon is ready


CONTEXT = web.AppKey("context", ApiContext)
