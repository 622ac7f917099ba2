"""The daemon's lifecycle, in one place and in order.

Start: store (open, migrate) -> upstream providers -> search workers -> bind
-> ready. Stop: stop accepting -> let in-flight requests finish within
LEADD_SHUTDOWN_TIMEOUT_S -> stop workers (their searches stay resumable) ->
close upstream clients -> close the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from aiohttp import web

from leadd import __version__
from leadd.api.app import make_app
from leadd.api.context import ApiContext
from leadd.config import EX_CONFIG, Settings
from leadd.jobs import JobManager
from leadd.jobs.runner import SearchRunner
from leadd.logging import JsonAccessLogger, Redactor
from leadd.osm.bundled import import_bundled_if_empty
from leadd.providers import Providers
from leadd.providers.osm import register_osm
from leadd.release import release_id
from leadd.scoring import Scorer
from leadd.store import Store, StoreError, StorePathError
from leadd.systemd import LoopMonitor, Notifier

__all__ = ["Daemon", "StartupError"]

log = logging.getLogger(__name__)

# How often the retention purge of Google content runs.
_PURGE_INTERVAL_S = 3600.0

# Extra start-up time asked of systemd (EXTEND_TIMEOUT_USEC) per migration.
_MIGRATION_EXTEND_S = 120.0
# ... and for the first-start import of the bundled OpenStreetMap extract
# (under a second on a 2-core machine; see docs/benchmarks.md).
_OSM_IMPORT_EXTEND_S = 60.0


class StartupError(Exception):
    """The daemon cannot start; the message names what failed and what to check."""

    def __init__(self, message: str, exit_status: int = 1) -> None:
        super().__init__(message)
        # EX_CONFIG (78) for a setting that cannot work, which systemd does not restart.
        self.exit_status = exit_status


class Daemon:
    def __init__(self, settings: Settings, redactor: Redactor, notifier: Notifier | None = None) -> None:
        self.settings = settings
        self.redactor = redactor
        self.notifier = notifier or Notifier(environ={})
        self.monitor: LoopMonitor | None = None
        self.store: Store | None = None
        self.providers: Providers | None = None
        self.jobs: JobManager | None = None
        self.scorer: Scorer | None = None
        self.context: ApiContext | None = None
        self._runner: web.AppRunner | None = None
        self._background: list[asyncio.Task[None]] = []
        self._stop = asyncio.Event()

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self) -> int:
        """Start, serve until SIGTERM or SIGINT, stop; return the exit status."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.request_stop)
        try:
            await self.start()
        except StartupError as exc:
            log.error("start-up failed: %s", exc, extra={"event": "startup_failed", "exit_status": exc.exit_status})
            await self.stop()
            return exc.exit_status
        await self._stop.wait()
        await self.stop()
        return 0

    async def start(self) -> None:
        settings = self.settings
        self._progress("opening store")
        self.store = Store(settings.database_path)
        try:
            await self.store.open(on_migration=self._on_migration)
        except StorePathError as exc:
            raise StartupError(f"{exc}; set LEADD_STATE_DIR to a folder this user can write", EX_CONFIG) from exc
        except StoreError as exc:
            raise StartupError(f"{exc}; check LEADD_STATE_DIR and the file's owner") from exc
        # Before the workers start, so that the first search finds the data.
        await import_bundled_if_empty(settings, self.store, lambda stage: self._progress(stage, _OSM_IMPORT_EXTEND_S))

        self._progress("starting providers")
        self.providers = await Providers.start(settings)
        osm = register_osm(self.providers, settings, self.store)
        self.jobs = JobManager(self.store, settings.max_concurrent_searches)
        runner = SearchRunner(self.store, self.providers, self.redactor, self.jobs.is_cancelled)
        self.jobs.attach(runner)
        # Scoring is a stage of each search; it imports the OpenAI SDK only after binding.
        self.scorer = Scorer.from_settings(settings, self.store, self.redactor)
        runner.after_places.append(self.scorer.score_search)
        self.context = ApiContext(
            settings=settings,
            store=self.store,
            jobs=self.jobs,
            providers=self.providers,
            version=__version__,
            redactor=self.redactor,
        )
        self.context.dependency_checks.append(self.scorer.dependency_check)
        self.context.dependency_checks.append(osm.data_state)

        self._progress("starting workers")
        await self.jobs.start()

        self._progress("binding")
        await self._bind()
        self._background.append(asyncio.create_task(self._purge_loop(), name="leadd-purge"))
        self._background.append(asyncio.create_task(self.scorer.warm_up(), name="leadd-scoring-warm-up"))
        self.monitor = LoopMonitor(self.notifier, self.status_line, self._self_check)
        self.context.loop_monitor = self.monitor
        self._background.append(asyncio.create_task(self.monitor.run(), name="leadd-monitor"))
        # READY=1 only now: configuration valid, store open and migrated,
        # workers running, port bound.
        self.notifier.ready(self.status_line())
        log.info(
            "leadd %s serving on http://%s:%d",
            __version__,
            settings.host,
            settings.port,
            extra={
                "event": "daemon_ready",
                "version": __version__,
                "release": release_id(),
                "host": settings.host,
                "port": settings.port,
                "default_provider": settings.default_provider.value,
                "providers": self.providers.configured(),
                "dependencies": self.providers.dependency_states(),
                "auth": "token" if settings.api_token else "none (loopback only)",
                "database": str(settings.database_path),
                "schema_version": self.store.db.schema_version,
            },
        )

    async def _bind(self) -> None:
        assert self.context is not None
        app = make_app(self.context)
        self._runner = web.AppRunner(
            app,
            access_log_class=JsonAccessLogger.using(self.redactor),
            access_log=logging.getLogger("leadd.access"),
            shutdown_timeout=self.settings.shutdown_timeout_s,
            handle_signals=False,
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.host, self.settings.port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            raise StartupError(
                f"cannot bind {self.settings.host}:{self.settings.port}: {exc.strerror}; "
                "is another leadd running? Set LEADD_HOST or LEADD_PORT"
            ) from exc

    def status_line(self) -> str:
        """Return the one-line state systemctl status shows."""
        jobs = self.jobs.queue_state() if self.jobs else {"running": 0, "queued": 0}
        runner = self.jobs.runner if self.jobs else None
        last_error = (runner.last_error if runner else None) or "none"
        line = (
            f"serving {self.settings.host}:{self.settings.port}; "
            f"{jobs['running']} running, {jobs['queued']} queued; last error: {last_error[:120]}"
        )
        if self.monitor is not None and self.monitor.failing:
            line += f"; self-check failing: {self.monitor.failing}"
        return line

    async def _self_check(self) -> str | None:
        """Return None when the store takes writes, else what failed (the watchdog ping is withheld)."""
        assert self.store is not None
        try:
            await self.store.check_writable()
        except Exception as exc:  # any failure means the store cannot do its job
            return f"store not writable: {exc}"
        return None

    def _on_migration(self, version: int, name: str) -> None:
        # Runs in the store's writer thread; sending a datagram is thread-safe.
        self._progress(f"migrating store to {version:04d}_{name}", _MIGRATION_EXTEND_S)

    async def stop(self) -> None:
        log.info("stopping", extra={"event": "daemon_stopping"})
        # The drain may take up to the shutdown timeout; ask systemd for that much more.
        self.notifier.stopping("stopping: draining requests", extend_s=self.settings.shutdown_timeout_s + 10)
        if self._runner is not None:
            # Stops listening, then waits for in-flight requests up to the shutdown timeout.
            await self._runner.cleanup()
            self._runner = None
        if self.jobs is not None:
            await self.jobs.stop()
        if self.scorer is not None:
            await self.scorer.close()
        for task in self._background:
            task.cancel()
        for task in self._background:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._background = []
        if self.providers is not None:
            await self.providers.close()
        if self.store is not None:
            await self.store.close()
        log.info("stopped", extra={"event": "daemon_stopped"})
        self.notifier.close()

    def _progress(self, stage: str, extend_s: float | None = None) -> None:
        """Show a start-up stage as the STATUS line; ask systemd for ``extend_s`` more seconds for a long one."""
        if extend_s is None:
            self.notifier.status(stage)
        else:
            self.notifier.extend_timeout(extend_s, stage)

    async def _purge_loop(self) -> None:
        assert self.store is not None
        while True:
            try:
                purged = await self.store.purge_google_content(self.settings.google_content_ttl_days)
            except Exception as exc:  # the loop must survive a failed round
                log.error("retention purge failed: %s", exc, extra={"event": "purge_failed"})
            else:
                if purged:
                    log.info(
                        "purged Google content of %d leads older than %d days",
                        purged,
                        self.settings.google_content_ttl_days,
                        extra={"event": "google_content_purged", "leads": purged},
                    )
            await asyncio.sleep(_PURGE_INTERVAL_S)
