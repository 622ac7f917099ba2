"""The search worker pool: a queue, at most N searches at once, cancel and resume."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from leadd.jobs.runner import SearchRunner
from leadd.store import Store

__all__ = ["JobManager"]

log = logging.getLogger(__name__)

# Retry-After for a full queue before any search has finished.
_DEFAULT_RETRY_AFTER_S = 30


class JobManager:
    """Runs queued searches on ``max_concurrent`` workers.

    Searches live in the store; the in-memory queue holds only their ids, so
    ``start()`` rebuilds it from the store after a restart and every queued
    or running search is resumed.
    """

    def __init__(self, store: Store, max_concurrent: int) -> None:
        self._store = store
        self._max_concurrent = max_concurrent
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()
        self._running: dict[str, asyncio.Task[None]] = {}
        self._user_cancelled: set[str] = set()
        self._workers: list[asyncio.Task[None]] = []
        self._durations: list[float] = []
        self.runner: SearchRunner | None = None

    def attach(self, runner: SearchRunner) -> None:
        self.runner = runner

    def is_cancelled(self, search_id: str) -> bool:
        return search_id in self._user_cancelled

    async def start(self) -> int:
        """Queue every unfinished search from the store and start the workers; return how many were resumed."""
        if self.runner is None:
            raise RuntimeError("call attach(runner) before start()")
        pending = await self._store.pending_search_ids()
        for search_id in pending:
            self._enqueue(search_id)
        if pending:
            log.info(
                "resuming %d unfinished searches",
                len(pending),
                extra={"event": "searches_resumed", "count": len(pending)},
            )
        self._workers = [asyncio.create_task(self._work(), name=f"leadd-worker-{n}") for n in range(self._max_concurrent)]
        return len(pending)

    def submit(self, search_id: str) -> None:
        self._enqueue(search_id)

    def _enqueue(self, search_id: str) -> None:
        self._queued.add(search_id)
        self._queue.put_nowait(search_id)

    async def cancel(self, search_id: str) -> dict[str, Any] | None:
        """Cancel a queued or running search; return it as stored (None for an unknown id)."""
        search = await self._store.cancel_search(search_id)
        if search is None:
            return None
        self._queued.discard(search_id)
        task = self._running.get(search_id)
        if task is not None and search["state"] == "cancelled":
            self._user_cancelled.add(search_id)
            task.cancel()
        return search

    async def _work(self) -> None:
        assert self.runner is not None
        while True:
            search_id = await self._queue.get()
            if search_id not in self._queued:
                continue  # cancelled while queued
            self._queued.discard(search_id)
            task = asyncio.create_task(self.runner.run(search_id), name=f"leadd-search-{search_id}")
            self._running[search_id] = task
            started = time.monotonic()
            try:
                await task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise  # the worker itself is stopping
                # Only the search task was cancelled: a user's cancel.
            finally:
                self._running.pop(search_id, None)
                self._user_cancelled.discard(search_id)
                self._record_duration(time.monotonic() - started)

    def _record_duration(self, seconds: float) -> None:
        self._durations = (self._durations + [seconds])[-20:]

    def retry_after_s(self) -> int:
        """Estimate seconds until the queue has room: one search's average duration."""
        if not self._durations:
            return _DEFAULT_RETRY_AFTER_S
        average = sum(self._durations) / len(self._durations)
        return max(1, min(300, round(average)))

    def queue_state(self) -> dict[str, int]:
        return {
            "queued": len(self._queued),
            "running": len(self._running),
            "max_concurrent": self._max_concurrent,
        }

    async def stop(self) -> None:
        """Stop the workers; running searches stay 'running' in the store and resume on the next start."""
        for worker in self._workers:
            worker.cancel()
        results = await asyncio.gather(*self._workers, return_exceptions=True)
        for result in results:
            if isinstance(result, Exception) and not isinstance(result, asyncio.CancelledError):
                log.error("worker ended with an error: %r", result, extra={"event": "worker_error"})
        self._workers = []
