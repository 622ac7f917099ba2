"""Boot real Debian 12 instances with systemd as PID 1 and check the testbed's promises.

Needs root, systemd-nspawn and nsenter, and either a cached root file system
or mmdebstrap with access to a Debian mirror (a cold build took 22-24 s on a 2-core machine).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from . import Instance, TestbedError
from ._cgroups import member_pids
from ._mounts import is_mount_point
from ._rootfs import rootfs_path


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "the systemd testbed needs root (mounts, cgroups, systemd-nspawn)"
    for tool, package in (("systemd-nspawn", "systemd-container"), ("nsenter", "util-linux")):
        if shutil.which(tool) is None:
            return f"{tool} not found: apt-get install {package}"
    if not rootfs_path().is_dir() and shutil.which("mmdebstrap") is None:
        return "no cached root file system and mmdebstrap not found: apt-get install mmdebstrap"
    return None


pytestmark = [
    pytest.mark.systemd,
    pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or ""),
]

# The folder that contains tests/, for running "python -m tests.testbed".
REPOSITORY_ROOT = Path(__file__).resolve().parents[2]

MEMORY_HOG = "b = bytearray(200 * 1024 * 1024); import time; time.sleep(5)"


@pytest.fixture(scope="module")
def instance():
    with Instance(f"tb-test-{os.getpid()}") as booted:
        yield booted


def _write_unit(instance: Instance, name: str, service_lines: list[str]) -> None:
    """Write a unit file through the host path of the overlay, then reload systemd."""
    text = "[Unit]\nDescription=testbed check\n\n[Service]\n" + "\n".join(service_lines) + "\n"
    (instance.root / "etc/systemd/system" / name).write_text(text)
    instance.run(["systemctl", "daemon-reload"])


def _wait_until_inactive(instance: Instance, unit: str, timeout: float = 20.0) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while True:
        output = instance.run(
            ["systemctl", "show", "-p", "ActiveState,Result,ExecMainCode,ExecMainStatus", unit]
        ).stdout
        properties = dict(line.split("=", 1) for line in output.splitlines() if "=" in line)
        if properties.get("ActiveState") in ("inactive", "failed"):
            return properties
        assert time.monotonic() < deadline, (
            f"{unit} still {properties.get('ActiveState')} after {timeout} s"
        )
        time.sleep(0.2)


def test_system_state_running(instance):
    result = instance.run(["systemctl", "is-system-running"], check=False)

    assert result.stdout.strip() == "running", instance.run(
        "systemctl --failed", check=False
    ).stdout
    assert instance.system_state == "running"


def test_pid1_is_systemd(instance):
    assert instance.run(["cat", "/proc/1/comm"]).stdout.strip() == "systemd"
    assert instance.run(["readlink", "/proc/1/exe"]).stdout.strip() == "/usr/lib/systemd/systemd"


def test_hostname_is_instance_name(instance):
    assert instance.run(["hostname"]).stdout.strip() == instance.name


def test_run_passes_input_and_status(instance):
    result = instance.run('read line; echo "got $line"; exit 7', input="hello\n", check=False)

    assert result.returncode == 7
    assert result.stdout == "got hello\n"


def test_run_check_raises_with_result(instance):
    with pytest.raises(TestbedError) as raised:
        instance.run(["false"])

    assert raised.value.result is not None
    assert raised.value.result.returncode == 1


def test_overlay_keeps_rootfs_unchanged(instance):
    marker = instance.root / "etc" / "testbed-marker"
    marker.write_text("x\n")

    assert instance.run(["cat", "/etc/testbed-marker"]).stdout == "x\n"
    assert not (instance.rootfs / "etc" / "testbed-marker").exists()


def test_memory_max_kills_service(instance):
    _write_unit(
        instance,
        "tb-memory-hog.service",
        ["MemoryMax=20M", f'ExecStart=/usr/bin/python3 -c "{MEMORY_HOG}"'],
    )
    instance.run(["systemctl", "start", "tb-memory-hog.service"])

    properties = _wait_until_inactive(instance, "tb-memory-hog.service")

    # systemd reports result oom-kill where it can read cgroup v2 memory events.
    # On a cgroup v1 (hybrid) host it records only the kernel's SIGKILL:
    # result signal, status 9.
    killed_by_signal = properties["Result"] == "signal" and properties["ExecMainStatus"] == "9"
    assert properties["Result"] == "oom-kill" or killed_by_signal, properties


def test_same_service_without_limit_succeeds(instance):
    """Check the control case: without MemoryMax= the allocation succeeds.

    So the kill in the test above comes from the limit.
    """
    command = MEMORY_HOG.replace("time.sleep(5)", "time.sleep(0)")
    _write_unit(instance, "tb-memory-free.service", [f'ExecStart=/usr/bin/python3 -c "{command}"'])
    instance.run(["systemctl", "start", "tb-memory-free.service"])

    properties = _wait_until_inactive(instance, "tb-memory-free.service")

    assert properties["Result"] == "success", properties


def test_down_removes_state():
    instance = Instance(f"tb-down-{os.getpid()}").up()
    cgroups = list(instance.cgroups)
    nspawn_pid = instance.nspawn_pid

    instance.down()

    assert not instance.state_path.exists()
    assert not is_mount_point(instance.root)
    for cgroup in cgroups:
        assert not cgroup.exists(), cgroup
    assert (
        not Path(f"/proc/{nspawn_pid}").exists()
        or Path(f"/proc/{nspawn_pid}/comm").read_text().strip() != "systemd-nspawn"
    )
    instance.down()  # a second down is a no-op


def test_down_after_nspawn_killed():
    """Check that down from another process cleans up after a crash.

    Killing systemd-nspawn leaves PID 1 orphaned in the instance cgroups.
    """
    name = f"tb-crash-{os.getpid()}"
    # Boot through the CLI so that no object in this process owns systemd-nspawn.
    subprocess.run(
        [sys.executable, "-m", "tests.testbed", "up", name],
        cwd=REPOSITORY_ROOT,
        check=True,
        capture_output=True,
        timeout=120,
    )
    stale = Instance.attach(name)
    init_pid = stale.init_pid
    assert Path(f"/proc/{stale.nspawn_pid}/comm").read_text().strip() == "systemd-nspawn"
    os.kill(stale.nspawn_pid, signal.SIGKILL)

    stale.down()

    assert not stale.state_path.exists()
    assert not member_pids([c for c in stale.cgroups if c.exists()])
    assert not Path(f"/proc/{init_pid}/root/run/systemd/private").exists()
