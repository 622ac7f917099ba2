"""The sd_notify client and the daemon's readiness, status, watchdog and stopping messages.

These run without systemd: the test binds the notify socket itself and reads
what leadd sends. The booted-systemd tests in tests/systemd/ check the same
behaviour against the real service manager.
"""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import time
from pathlib import Path

import pytest

from leadd.systemd import Notifier
from tests.helpers import DaemonProcess, wait_for


@pytest.fixture
def notify_socket(tmp_path: Path):
    path = tmp_path / "notify.sock"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(path))
    receiver.settimeout(5)
    yield path, receiver
    receiver.close()


def _receive_all(receiver: socket.socket, until: str, timeout: float = 10) -> list[str]:
    """Collect messages until one contains ``until``."""
    messages: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            messages.append(receiver.recv(4096).decode("utf-8"))
        except TimeoutError:
            continue
        if until in messages[-1]:
            return messages
    raise AssertionError(f"no message with {until!r} within {timeout} s; got {messages}")


def test_notifier_sends_utf8_to_path_and_clears_env(notify_socket):
    path, receiver = notify_socket
    environ = {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "4000000", "OTHER": "kept"}

    notifier = Notifier(environ)
    sent = notifier.notify("STATUS=käsittelee 2 hakua")

    assert sent is True
    assert receiver.recv(4096).decode("utf-8") == "STATUS=käsittelee 2 hakua"
    assert environ == {"OTHER": "kept"}
    assert notifier.watchdog_interval_s == 2.0


def test_notifier_abstract_socket():
    name = f"leadd-test-{os.getpid()}"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(b"\0" + name.encode())
    receiver.settimeout(5)
    try:
        notifier = Notifier({"NOTIFY_SOCKET": f"@{name}"})
        assert notifier.ready("serving")
        assert receiver.recv(4096).decode().startswith("READY=1\nSTATUS=serving\nMAINPID=")
    finally:
        receiver.close()


def test_notifier_watchdog_for_other_pid_is_off():
    notifier = Notifier({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": str(os.getpid() + 1)})

    assert notifier.watchdog_interval_s is None
    assert notifier.enabled is False
    assert notifier.notify("READY=1") is False


def test_notifier_full_socket_never_blocks_and_logs_once(notify_socket, caplog):
    path, receiver = notify_socket
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    notifier = Notifier({"NOTIFY_SOCKET": str(path)})
    caplog.set_level(logging.WARNING, logger="leadd.systemd")

    results = [notifier.notify("STATUS=" + "x" * 900) for _ in range(2000)]

    assert results[0] is True
    assert results.count(False) > 0
    failures = [r for r in caplog.records if getattr(r, "event", None) == "sd_notify_failed"]
    assert len(failures) == 1


def test_notifier_vanished_socket_is_not_raised(notify_socket, caplog):
    path, receiver = notify_socket
    notifier = Notifier({"NOTIFY_SOCKET": str(path)})
    receiver.close()
    path.unlink()
    caplog.set_level(logging.WARNING, logger="leadd.systemd")

    assert notifier.notify("WATCHDOG=1") is False
    assert notifier.notify("WATCHDOG=1") is False
    assert len([r for r in caplog.records if getattr(r, "event", None) == "sd_notify_failed"]) == 1


def test_daemon_ready_watchdog_status_stopping(notify_socket, tmp_path):
    path, receiver = notify_socket
    daemon = DaemonProcess(tmp_path / "notify", env={"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "400000"})
    daemon.start(wait=False)
    try:
        messages = _receive_all(receiver, "READY=1")
        ready = messages[-1]
        # READY=1 comes only once the port accepts connections.
        with socket.create_connection(("127.0.0.1", daemon.port), timeout=2):
            pass
        assert f"STATUS=serving 127.0.0.1:{daemon.port}; 0 running, 0 queued; last error: none" in ready
        assert any(m.startswith("STATUS=opening store") for m in messages)
        pings = [m for m in _receive_all(receiver, "WATCHDOG=1") if m == "WATCHDOG=1"]
        pings += [m for m in _receive_all(receiver, "WATCHDOG=1") if m == "WATCHDOG=1"]
        assert len(pings) >= 2
    finally:
        daemon.signal(15)
        stopping = _receive_all(receiver, "STOPPING=1")[-1]
        assert daemon.stop() == 0
    assert "EXTEND_TIMEOUT_USEC=15000000" in stopping


def test_daemon_withholds_watchdog_when_store_locked(notify_socket, tmp_path):
    path, receiver = notify_socket
    daemon = DaemonProcess(tmp_path / "locked", env={"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "400000"})
    daemon.start()
    try:
        _receive_all(receiver, "WATCHDOG=1")
        blocker = sqlite3.connect(daemon.state_dir / "leadd.sqlite3", isolation_level=None, timeout=1)
        blocker.execute("BEGIN EXCLUSIVE")
        # Drain what was sent before the lock, then watch a window with the lock held.
        receiver.settimeout(0.05)
        wait_for(lambda: daemon.events("self_check_failed"), what="the self-check to fail")
        received = _drain(receiver, seconds=1.0)
        blocker.execute("ROLLBACK")
        blocker.close()
        receiver.settimeout(5)
        recovered = _receive_all(receiver, "WATCHDOG=1")
    finally:
        daemon.stop()

    assert "WATCHDOG=1" not in received
    assert any("self-check failing" in message for message in received)
    assert recovered[-1] == "WATCHDOG=1"
    assert daemon.events("self_check_recovered")


def _drain(receiver: socket.socket, seconds: float) -> list[str]:
    messages = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            messages.append(receiver.recv(4096).decode())
        except (TimeoutError, BlockingIOError):
            continue
    return messages
