"""SQLite access from asyncio: one writer thread, one reader thread.

Each store operation is a plain function over a ``sqlite3.Connection`` that
runs whole in the connection's own thread, so a transaction can never
interleave with another coroutine's statements (see docs/architecture.md for
why this is not aiosqlite).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import ParamSpec, TypeVar

from leadd.store.migrate import apply_migrations

__all__ = ["Database", "StoreError"]

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

# Writers wait this long for a lock held by another process (the backup
# command, an operator's sqlite3 shell) before failing.
_BUSY_TIMEOUT_MS = 5000


class StoreError(Exception):
    """The SQLite store cannot be opened, migrated or written."""


class StorePathError(StoreError):
    """The store's folder or file cannot be created or opened: a configuration problem."""


def _connect(path: Path, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        uri = f"file:{path}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    else:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys = ON")
    if not readonly:
        conn.execute("PRAGMA journal_mode = WAL")
        # NORMAL in WAL mode loses at most the last transactions on power
        # loss, never consistency; every lead write is idempotent anyway.
        conn.execute("PRAGMA synchronous = NORMAL")
    return conn


class Database:
    """A migrated SQLite database with separate writer and reader threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="leadd-db-write")
        self._reader_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="leadd-db-read")
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self.schema_version = 0

    async def open(self, on_migration: Callable[[int, str], None] | None = None) -> None:
        """Open both connections and apply pending migrations.

        Raises StoreError with the path and the cause when the file cannot be
        opened or migrated, StorePathError when the folder or the file cannot
        be created or opened at all.
        """
        loop = asyncio.get_running_loop()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorePathError(f"cannot create the folder {self.path.parent}: {exc.strerror}") from exc
        try:
            self._writer = await loop.run_in_executor(self._writer_pool, _connect, self.path)
            self.schema_version = await loop.run_in_executor(
                self._writer_pool, apply_migrations, self._writer, on_migration
            )
            self._reader = await loop.run_in_executor(self._reader_pool, _connect, self.path, True)
        except (sqlite3.Error, OSError) as exc:
            await self.close()
            # SQLite's wording for a file it cannot create or open (permissions,
            # a folder in its place); a locked or corrupt file is another error.
            error = StorePathError if "unable to open database file" in str(exc) else StoreError
            raise error(f"cannot open the store {self.path}: {exc}") from exc

    async def write(self, fn: Callable[..., T], *args: object) -> T:
        """Run ``fn(connection, *args)`` in one IMMEDIATE transaction on the writer thread."""
        if self._writer is None:
            raise StoreError("the store is closed")
        conn = self._writer
        return await asyncio.get_running_loop().run_in_executor(self._writer_pool, _in_transaction, conn, fn, args)

    async def read(self, fn: Callable[..., T], *args: object) -> T:
        """Run ``fn(connection, *args)`` on the reader thread; it sees committed data only."""
        if self._reader is None:
            raise StoreError("the store is closed")
        conn = self._reader
        return await asyncio.get_running_loop().run_in_executor(self._reader_pool, _call, conn, fn, args)

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        for conn, pool in ((self._reader, self._reader_pool), (self._writer, self._writer_pool)):
            if conn is not None:
                await loop.run_in_executor(pool, conn.close)
        self._reader = self._writer = None
        self._reader_pool.shutdown(wait=True)
        self._writer_pool.shutdown(wait=True)


def _call(conn: sqlite3.Connection, fn: Callable[..., T], args: tuple[object, ...]) -> T:
    return fn(conn, *args)


def _in_transaction(conn: sqlite3.Connection, fn: Callable[..., T], args: tuple[object, ...]) -> T:
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = fn(conn, *args)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result
