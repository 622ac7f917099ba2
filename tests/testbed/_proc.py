"""Read process facts from /proc without trusting a PID that may have been reused."""

from __future__ import annotations

import os
import time
from pathlib import Path


def read_comm(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except (FileNotFoundError, ProcessLookupError):
        return None


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name is in parentheses and may itself contain spaces or ')'.
    return raw[raw.rindex(")") + 2 :].split()


def parent_pid(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[1]) if fields else None


def is_running(pid: int | None, comm: str | None = None) -> bool:
    """Return whether ``pid`` exists, is no zombie and, if ``comm`` is given, runs that command."""
    if not pid:
        return False
    fields = _stat_fields(pid)
    if fields is None or fields[0] in ("Z", "X", "x"):
        return False
    return comm is None or read_comm(pid) == comm


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return []
    return [int(child) for child in text.split()]


def wait_for_exit(pid: int, timeout: float, poll: float = 0.05) -> bool:
    """Wait until ``pid`` has exited or is a zombie. Return False on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_running(pid):
            return True
        time.sleep(poll)
    return not is_running(pid)


def signal_if_comm(pid: int, comm: str, signum: int) -> bool:
    """Send ``signum`` only if ``pid`` still runs the command ``comm``.

    Returns whether the signal was sent. The check guards against PID reuse.
    """
    if not is_running(pid, comm):
        return False
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        return False
    return True


def namespace_pid(pid: int) -> int | None:
    """Return the PID of ``pid`` inside its own (innermost) PID namespace."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    for line in status.splitlines():
        if line.startswith("NSpid:"):
            return int(line.split()[-1])
    return None


def read_pid_file(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
