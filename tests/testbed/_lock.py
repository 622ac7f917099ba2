"""An exclusive fcntl lock with a bounded wait."""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ._errors import TestbedError

log = logging.getLogger(__name__)

_POLL_SECONDS = 0.2


@contextmanager
def exclusive_lock(path: Path, *, timeout: float, purpose: str) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing) for the ``with`` block.

    The kernel drops the lock when the holder exits, so a crashed holder never
    leaves a stale lock behind. The holder may delete the file with
    remove_lock_file(). A waiter that then gets the lock on the deleted file
    detects that the path names another file, and locks that one instead.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    waiting_logged = False
    while True:
        # The file stays open for as long as the lock is held, past this loop.
        lock_file = open(path, "a+")  # noqa: SIM115
        try:
            if _try_lock(lock_file) and _is_current(lock_file, path):
                break
        except BaseException:
            lock_file.close()
            raise
        lock_file.close()
        if not waiting_logged:
            log.info("waiting for the lock %s (%s) held by another process", path, purpose)
            waiting_logged = True
        if time.monotonic() > deadline:
            raise TestbedError(
                f"timed out after {timeout:.0f} s waiting for the lock {path} ({purpose}): "
                "check whether another testbed command hangs"
            )
        time.sleep(_POLL_SECONDS)
    try:
        yield
    finally:
        # Closing the file releases the lock.
        lock_file.close()


def remove_lock_file(path: Path) -> None:
    """Delete the lock file at ``path``. Call it only while holding the lock."""
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def _try_lock(lock_file) -> bool:
    try:
        fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError as error:
        if error.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise


def _is_current(lock_file, path: Path) -> bool:
    """Return whether ``path`` still names the locked file (the holder may have deleted it)."""
    try:
        return os.stat(path).st_ino == os.fstat(lock_file.fileno()).st_ino
    except FileNotFoundError:
        return False
