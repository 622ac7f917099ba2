"""systemd integration: the sd_notify protocol, the watchdog task and the STATUS line.

leadd speaks sd_notify itself (see docs/architecture.md for why not the
``sdnotify`` package): one UTF-8 datagram per message to ``$NOTIFY_SOCKET``
(a path, or an abstract socket written ``@name``), over a non-blocking
socket, so a full or vanished socket never stalls the event loop. A failed
send is logged once and never raised.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable

__all__ = ["LoopMonitor", "Notifier"]

log = logging.getLogger(__name__)

_ENV_VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


class Notifier:
    """Sends sd_notify messages; does nothing when not started by systemd.

    Reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID once and removes
    them from the environment, so nothing leadd starts inherits them.
    """

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        values = {name: env.pop(name, None) for name in _ENV_VARIABLES}
        self.address = _socket_address(values["NOTIFY_SOCKET"])
        self.watchdog_usec = _watchdog_usec(values["WATCHDOG_USEC"], values["WATCHDOG_PID"])
        self._socket: socket.socket | None = None
        self._failures = 0
        self.sent = 0
        if self.address is not None:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)

    @property
    def enabled(self) -> bool:
        return self._socket is not None

    @property
    def watchdog_interval_s(self) -> float | None:
        """Seconds between WATCHDOG=1 pings (half of WatchdogSec=), or None when the watchdog is off."""
        return self.watchdog_usec / 2_000_000 if self.watchdog_usec else None

    def notify(self, *fields: str) -> bool:
        """Send ``fields`` (``KEY=value``) as one message; return whether it was sent."""
        if self._socket is None or self.address is None:
            return False
        message = "\n".join(fields).encode("utf-8")
        try:
            self._socket.sendto(message, self.address)
        except OSError as exc:
            self._failures += 1
            if self._failures == 1:
                # Logged once: a full or vanished socket would otherwise flood the log.
                log.warning(
                    "sd_notify to %s failed: %s; further failures are counted, not logged",
                    self.address,
                    exc,
                    extra={"event": "sd_notify_failed", "error": type(exc).__name__},
                )
            return False
        if self._failures:
            log.info(
                "sd_notify works again after %d failed messages",
                self._failures,
                extra={"event": "sd_notify_recovered", "failures": self._failures},
            )
            self._failures = 0
        self.sent += 1
        return True

    def ready(self, status: str) -> bool:
        return self.notify("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")

    def status(self, status: str) -> bool:
        return self.notify(f"STATUS={status}")

    def stopping(self, status: str, extend_s: float | None = None) -> bool:
        fields = ["STOPPING=1", f"STATUS={status}"]
        if extend_s:
            fields.append(f"EXTEND_TIMEOUT_USEC={int(extend_s * 1_000_000)}")
        return self.notify(*fields)

    def extend_timeout(self, seconds: float, status: str | None = None) -> bool:
        fields = [f"EXTEND_TIMEOUT_USEC={int(seconds * 1_000_000)}"]
        if status:
            fields.append(f"STATUS={status}")
        return self.notify(*fields)

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def _socket_address(value: str | None) -> str | bytes | None:
    if not value:
        return None
    if value.startswith("@"):
        # Abstract namespace: a leading NUL byte instead of '@'.
        return b"\0" + value[1:].encode("utf-8")
    if value.startswith("/"):
        return value
    log.warning("NOTIFY_SOCKET=%r is neither a path nor @abstract; not notifying", value, extra={"event": "sd_notify_bad_socket"})
    return None


def _watchdog_usec(usec: str | None, pid: str | None) -> int | None:
    if not usec:
        return None
    if pid and pid.strip() != str(os.getpid()):
        return None  # the watchdog is meant for another process
    try:
        value = int(usec)
    except ValueError:
        log.warning("WATCHDOG_USEC=%r is not a number; watchdog off", usec, extra={"event": "sd_watchdog_bad_usec"})
        return None
    return value if value > 0 else None


class LoopMonitor:
    """A task on the event loop that measures its own lag, pings the watchdog and refreshes STATUS.

    It wakes every ``tick_s``; the delay beyond that is the loop's lag. Every
    ``watchdog_interval_s`` it runs ``self_check`` and sends WATCHDOG=1 only
    when the check passes, so a blocked loop or an unwritable store stops
    the pings and systemd restarts leadd. STATUS is sent at most once per
    ``status_min_interval_s`` and only when it changed.
    """

    def __init__(
        self,
        notifier: Notifier,
        status: Callable[[], str],
        self_check: Callable[[], Awaitable[str | None]],
        *,
        tick_s: float = 0.1,
        status_min_interval_s: float = 1.0,
        samples: int = 3000,
    ) -> None:
        self._notifier = notifier
        self._status = status
        self._self_check = self_check
        self._tick_s = tick_s
        self._status_min_interval_s = status_min_interval_s
        self.lags_ms: deque[float] = deque(maxlen=samples)
        self.failing: str | None = None
        self._last_status: str | None = None
        self._last_status_at = 0.0
        self._last_ping_at = 0.0

    def lag_summary(self) -> dict[str, float]:
        """Return p50, p99 and max of the recent lag samples, in milliseconds."""
        if not self.lags_ms:
            return {"p50": 0.0, "p99": 0.0, "max": 0.0, "samples": 0}
        ordered = sorted(self.lags_ms)
        return {
            "p50": round(ordered[len(ordered) // 2], 3),
            "p99": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 3),
            "max": round(ordered[-1], 3),
            "samples": len(ordered),
        }

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self._notifier.watchdog_interval_s
        while True:
            before = loop.time()
            await asyncio.sleep(self._tick_s)
            self.lags_ms.append(max(0.0, (loop.time() - before - self._tick_s) * 1000))
            now = time.monotonic()
            if interval is not None and now - self._last_ping_at >= interval:
                self._last_ping_at = now
                await self._check_and_ping(interval)
            self._refresh_status(now)

    async def _check_and_ping(self, interval: float) -> None:
        try:
            problem = await asyncio.wait_for(self._self_check(), timeout=interval)
        except TimeoutError:
            problem = f"self-check took longer than {interval:.1f} s"
        if problem is None:
            if self.failing is not None:
                log.info("self-check passes again", extra={"event": "self_check_recovered"})
            self.failing = None
            self._notifier.notify("WATCHDOG=1")
            return
        if self.failing != problem:
            log.error(
                "self-check failed, withholding the watchdog ping: %s",
                problem,
                extra={"event": "self_check_failed", "problem": problem},
            )
        self.failing = problem

    def _refresh_status(self, now: float) -> None:
        if now - self._last_status_at < self._status_min_interval_s:
            return
        status = self._status()
        if status != self._last_status:
            self._notifier.status(status)
            self._last_status = status
            self._last_status_at = now
