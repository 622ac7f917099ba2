"""Helpers shared by the benchmarks: processes, ports, RSS, wrk, percentiles."""

from __future__ import annotations

import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = [
    "REPO",
    "median",
    "percentile",
    "rss_mb",
    "run_wrk",
    "start_process",
    "time_to_listen",
    "wait_listening",
]

REPO = Path(__file__).resolve().parent.parent


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def wait_listening(port: int, process: subprocess.Popen[bytes], timeout: float = 30, interval: float = 0.002) -> float:
    """Poll until ``port`` accepts connections; return the seconds it took."""
    started = time.perf_counter()
    deadline = started + timeout
    while time.perf_counter() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening on {port}")
        if listening(port):
            return time.perf_counter() - started
        time.sleep(interval)
    raise RuntimeError(f"nothing listened on {port} within {timeout} s")


def start_process(argv: list[str], env: dict[str, str], cwd: Path | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def time_to_listen(argv: list[str], env: dict[str, str], port: int, cwd: Path | None = None) -> float:
    """Start ``argv``, measure process start to port listening, stop it."""
    started = time.perf_counter()
    process = start_process(argv, env, cwd)
    try:
        wait_listening(port, process)
        return time.perf_counter() - started
    finally:
        process.terminate()
        process.wait(30)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def run_wrk(url: str, connections: int, seconds: int, threads: int = 2) -> float:
    """Run wrk against ``url``; return requests per second."""
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install wrk")
    result = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    )
    match = re.search(r"Requests/sec:\s+([0-9.]+)", result.stdout)
    if not match:
        raise RuntimeError(f"wrk output without Requests/sec:\n{result.stdout}")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", result.stdout)
    if errors:
        raise RuntimeError(f"wrk saw {errors.group(1)} error responses from {url}")
    return float(match.group(1))


def leadd_env(port: int, state_dir: Path, **extra: str) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(state_dir),
        "LEADD_HOST": "127.0.0.1",
        "LEADD_PORT": str(port),
        "LEADD_STATE_DIR": str(state_dir),
        "LEADD_LOG_LEVEL": "info",  # as deployed: every request writes an access line
    }
    env.update(extra)
    return env
