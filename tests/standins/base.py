"""A stand-in upstream server on loopback, with fault injection and a request log.

Each stand-in runs its aiohttp app on 127.0.0.1 in a thread of its own, so a
synchronous test, a daemon in a subprocess and a benchmark can all use it.
Tests steer it with Python calls; processes that only have its URL use the
``/_standin/*`` control endpoints, which take the same values.

Faults are queued per route and used up one request at a time:

- ``status``: answer with ``status``, an optional JSON ``body`` and ``headers``
- ``delay``: wait ``seconds``, then answer normally (a timeout when it is
  longer than the client's timeout)
- ``malformed``: answer 200 with a body that is not JSON
- ``drop``: close the connection without an answer
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

__all__ = ["Fault", "RecordedRequest", "StandIn"]


@dataclass
class Fault:
    kind: str
    status: int = 500
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class RecordedRequest:
    route: str
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any
    at: float


class StandIn:
    """Base class: subclasses add routes in ``setup_routes`` through ``self.route``."""

    name = "standin"

    def __init__(self, latency_s: float = 0.0) -> None:
        self.latency_s = latency_s
        self._faults: dict[str, deque[Fault]] = {}
        self._requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.port: int | None = None
        self.app = web.Application(client_max_size=4 * 1024 * 1024)
        self.app.router.add_post("/_standin/faults", self._control_faults)
        self.app.router.add_get("/_standin/requests", self._control_requests)
        self.app.router.add_post("/_standin/reset", self._control_reset)
        self.app.router.add_post("/_standin/config", self._control_config)
        self.setup_routes()

    # Subclass interface

    def setup_routes(self) -> None:
        raise NotImplementedError

    def configure(self, **values: Any) -> None:
        """Change stand-in settings (subclasses accept their own names)."""
        if "latency_s" in values:
            self.latency_s = float(values.pop("latency_s"))
        if values:
            raise ValueError(f"unknown settings for {self.name}: {sorted(values)}")

    def route(self, method: str, path: str, name: str, handler: Any) -> None:
        """Register ``handler(request, body)`` behind the fault and latency layer."""

        async def wrapped(request: web.Request) -> web.StreamResponse:
            raw = await request.read()
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
            self._record(name, request, body)
            if self.latency_s:
                await asyncio.sleep(self.latency_s)
            fault = self._next_fault(name)
            if fault is not None:
                response = await self._apply(fault, request)
                if response is not None:
                    return response
            return await handler(request, body)

        self.app.router.add_route(method, path, wrapped)

    # Faults and the request log

    def add_fault(self, route: str, kind: str, count: int = 1, **params: Any) -> None:
        if kind not in ("status", "delay", "malformed", "drop"):
            raise ValueError(f"unknown fault kind {kind!r}")
        with self._lock:
            queue = self._faults.setdefault(route, deque())
            for _ in range(count):
                queue.append(Fault(kind=kind, **params))

    def _next_fault(self, route: str) -> Fault | None:
        with self._lock:
            queue = self._faults.get(route)
            return queue.popleft() if queue else None

    async def _apply(self, fault: Fault, request: web.Request) -> web.StreamResponse | None:
        if fault.kind == "delay":
            await asyncio.sleep(fault.seconds)
            return None
        if fault.kind == "malformed":
            return web.Response(status=200, text='{"places": [ {"id": "trunc', content_type="application/json")
        if fault.kind == "drop":
            transport = request.transport
            if transport is not None:
                transport.abort()
            return web.Response(status=500)  # never sent: the connection is gone
        body = fault.body
        text = json.dumps(body) if body is not None else ""
        return web.Response(status=fault.status, text=text, content_type="application/json", headers=fault.headers)

    def _record(self, route: str, request: web.Request, body: Any) -> None:
        record = RecordedRequest(
            route=route,
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers={key: value for key, value in request.headers.items()},
            json=body,
            at=time.monotonic(),
        )
        with self._lock:
            self._requests.append(record)

    def requests(self, route: str | None = None) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self._requests if route is None or r.route == route]

    def reset(self) -> None:
        with self._lock:
            self._faults.clear()
            self._requests.clear()
        self.latency_s = 0.0
        self.on_reset()

    def on_reset(self) -> None:
        """Subclasses restore their own state here."""

    # Control endpoints

    async def _control_faults(self, request: web.Request) -> web.Response:
        data = await request.json()
        self.add_fault(data.pop("route"), data.pop("kind"), int(data.pop("count", 1)), **data)
        return web.json_response({"ok": True})

    async def _control_requests(self, request: web.Request) -> web.Response:
        route = request.query.get("route")
        records = [record.__dict__ for record in self.requests(route)]
        return web.json_response(records)

    async def _control_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"ok": True})

    async def _control_config(self, request: web.Request) -> web.Response:
        self.configure(**await request.json())
        return web.json_response({"ok": True})

    # Lifecycle

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError(f"{self.name} is not started: call start() first")
        return f"http://127.0.0.1:{self.port}"

    def start(self, port: int = 0) -> StandIn:
        """Serve on 127.0.0.1 (a free port when 0) in a background thread."""
        ready = threading.Event()
        errors: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._start_site(port))
            except BaseException as exc:  # reported to the caller below
                errors.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())  # type: ignore[union-attr]
            loop.close()

        self._thread = threading.Thread(target=serve, name=f"standin-{self.name}", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError(f"{self.name} did not start within 10 s")
        if errors:
            raise errors[0]
        return self

    async def _start_site(self, port: int) -> None:
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop = None
        self._thread = None

    def __enter__(self) -> StandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
