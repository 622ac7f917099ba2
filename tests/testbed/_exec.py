"""Commands run inside an instance through nsenter."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence

from . import _proc
from ._config import CONTAINER_HOME, CONTAINER_PATH, require_tool

log = logging.getLogger(__name__)


def nsenter_argv(
    init_pid: int, argv: Sequence[str], env: Mapping[str, str] | None = None
) -> list[str]:
    """Return the host command line that runs ``argv`` in the namespaces of ``init_pid``.

    The command gets a clean environment: PATH, HOME=/root and ``env``.
    """
    environment = {"PATH": CONTAINER_PATH, "HOME": CONTAINER_HOME, **(env or {})}
    return [
        require_tool("nsenter"),
        f"--target={init_pid}",
        "--mount",
        "--uts",
        "--ipc",
        "--net",
        "--pid",
        "--cgroup",
        "--",
        "/usr/bin/env",
        "-i",
        *(f"{key}={value}" for key, value in environment.items()),
        *argv,
    ]


def run_captured(
    command: list[str], *, input: str | bytes | None, timeout: float, text: bool
) -> subprocess.CompletedProcess | None:
    """Run ``command`` with captured output. Return None if it timed out and was killed."""
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL if input is None else subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=text,
        # A process group of its own lets a timeout kill nsenter and the
        # child it forked into the instance together.
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_process_group(process)
        return None
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def _kill_process_group(process: subprocess.Popen) -> None:
    if _proc.read_comm(process.pid) == "nsenter":
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        process.communicate(timeout=5.0)
    except subprocess.TimeoutExpired:
        # A daemon started inside may still hold the output pipes open.
        log.warning("output pipes of nsenter %d stayed open after the kill", process.pid)


def output_tail(output: str | bytes | None, lines: int = 10) -> str:
    if not output:
        return "(no error output)"
    if isinstance(output, bytes):
        output = output.decode(errors="replace")
    return "\n".join(output.strip().splitlines()[-lines:])
