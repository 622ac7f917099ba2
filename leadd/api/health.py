"""Health endpoints: /health for load balancers, /health/detailed for operators."""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
import sqlite3
import time
from importlib import resources

from aiohttp import web

from leadd.api.context import CONTEXT
from leadd.release import release_id
from leadd.store import StoreError

__all__ = ["routes"]

log = logging.getLogger(__name__)

routes = web.RouteTableDef()

# Modules imported only when first needed; /health/detailed checks that they
# are installed without importing them.
_LAZY_MODULES = ("googlemaps", "phonenumbers", "openai", "osmium")


def _timestamp(second: int | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))


@functools.lru_cache(maxsize=2)
def _health_body(second: int, version: str) -> bytes:
    # Load balancers poll this endpoint; its body changes once a second.
    return json.dumps({"ok": True, "timestamp": _timestamp(second), "version": version, "release": release_id()}).encode()


@routes.get("/health")
async def health(request: web.Request) -> web.Response:
    body = _health_body(int(time.time()), request.app[CONTEXT].version)
    return web.Response(body=body, content_type="application/json")


@routes.get("/health/detailed")
async def health_detailed(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    usable = True

    try:
        await context.store.check_readable()
        database = "ok"
    except (StoreError, sqlite3.Error) as exc:
        log.error("database check failed: %s", exc, extra={"event": "health_database_error"})
        database = "error"
        usable = False

    missing = [name for name in _LAZY_MODULES if importlib.util.find_spec(name) is None]
    dependencies: dict[str, str] = {
        "database": database,
        "python_modules": "ok" if not missing else "error",
    }
    dependencies.update(context.providers.dependency_states())
    for check in context.dependency_checks:
        name, state, ok = await check()
        dependencies[name] = state
        usable = usable and ok
    if missing:
        usable = False

    body = {
        "api": "ok" if usable else "degraded",
        "timestamp": _timestamp(),
        "version": context.version,
        "release": release_id(),
        "uptime_s": round(time.monotonic() - context.started_at, 3),
        "dependencies": dependencies,
        "default_provider": context.settings.default_provider.value,
        "queue": context.jobs.queue_state(),
    }
    if context.loop_monitor is not None:
        body["event_loop_lag_ms"] = context.loop_monitor.lag_summary()
        if context.loop_monitor.failing:
            body["self_check"] = context.loop_monitor.failing
    if missing:
        body["missing_modules"] = missing
    return web.json_response(body, status=200 if usable else 503)


@routes.get("/openapi.yaml")
async def openapi(request: web.Request) -> web.Response:
    text = resources.files("leadd.api").joinpath("openapi.yaml").read_text("utf-8")
    return web.Response(text=text, content_type="application/yaml")
