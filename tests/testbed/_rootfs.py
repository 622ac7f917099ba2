"""Build and cache the Debian 12 root file system that every instance boots from."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from ._config import cache_dir, require_root, require_tool
from ._errors import TestbedError
from ._lock import exclusive_lock
from ._mounts import safe_rmtree

log = logging.getLogger(__name__)

# Bump when the build steps change in a way the recipe below does not capture.
RECIPE_VERSION = 1

SUITE = "bookworm"
MIRROR_ENV = "LEADD_TESTBED_MIRROR"
SECURITY_MIRROR_ENV = "LEADD_TESTBED_SECURITY_MIRROR"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_SECURITY_MIRROR = "http://deb.debian.org/debian-security"

# 2024-01-01T00:00:00Z. mmdebstrap uses it for reproducible output, and every
# file time after it is clamped to it once the build is done.
SOURCE_DATE_EPOCH = 1704067200

BASE_PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "python3",
    "python3-venv",
    "logrotate",
    "sudo",
    "acl",
    "procps",
    "iproute2",
    "ca-certificates",
    "curl",
)

# Timers that would start unwanted work, masked by a link to /dev/null.
MASKED_UNITS = (
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "e2scrub_all.timer",
    "fstrim.timer",
)

# The container's first process. systemd-nspawn mounts the cgroup v1 memory and
# pids hierarchies read-only on a hybrid host, which leaves MemoryMax= and
# TasksMax= unenforced. Remounting them read-write before systemd starts fixes it.
INIT_WRAPPER_PATH = "/usr/local/sbin/leadd-testbed-init"
INIT_WRAPPER = """#!/bin/sh
# Installed by the leadd testbed: make the cgroup v1 memory and pids
# hierarchies writable, then start systemd as PID 1.
for hierarchy in memory pids; do
    if [ -d "/sys/fs/cgroup/$hierarchy" ]; then
        mount -o remount,bind,rw "/sys/fs/cgroup/$hierarchy" \\
            || echo "leadd-testbed-init: remounting /sys/fs/cgroup/$hierarchy read-write failed" >&2
    fi
done
exec /lib/systemd/systemd "$@"
"""

# Documentation that no test reads; leaving it out makes the tree smaller.
_DPKG_OPTIONS = (
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
)

# A cold build took about 22 s on a 2-core machine; allow for slow mirrors.
_LOCK_TIMEOUT_SECONDS = 1800.0


def normalize_packages(extra_packages: Iterable[str] = ()) -> list[str]:
    return sorted(set(BASE_PACKAGES) | {p.strip() for p in extra_packages if p.strip()})


def recipe(extra_packages: Iterable[str] = ()) -> dict:
    """Return everything that decides the content of the root file system."""
    return {
        "recipe_version": RECIPE_VERSION,
        "suite": SUITE,
        "variant": "minbase",
        "packages": normalize_packages(extra_packages),
        "source_date_epoch": SOURCE_DATE_EPOCH,
        "dpkg_options": list(_DPKG_OPTIONS),
        "masked_units": list(MASKED_UNITS),
        "init_wrapper": INIT_WRAPPER,
    }


def recipe_hash(extra_packages: Iterable[str] = ()) -> str:
    encoded = json.dumps(recipe(extra_packages), sort_keys=True).encode()
    return hashlib.sha256(encoded).hexdigest()[:16]


def rootfs_path(extra_packages: Iterable[str] = ()) -> Path:
    return cache_dir() / f"rootfs-{recipe_hash(extra_packages)}"


def ensure_rootfs(extra_packages: Iterable[str] = ()) -> Path:
    """Return the cached root file system, building it first if it is missing.

    The finished tree appears under its final name by one rename, so a folder
    with that name is always complete. Concurrent callers wait on a lock file.
    """
    extra_packages = list(extra_packages)
    final = rootfs_path(extra_packages)
    if final.is_dir():
        return final

    require_root()
    final.parent.mkdir(parents=True, exist_ok=True)
    lock_path = final.parent / f"{final.name}.lock"
    with exclusive_lock(lock_path, timeout=_LOCK_TIMEOUT_SECONDS, purpose="root file system build"):
        if final.is_dir():
            # Another process finished the build while this one waited.
            return final
        _remove_stale_builds(final)
        _build(final, extra_packages)
    return final


def _remove_stale_builds(final: Path) -> None:
    for stale in final.parent.glob(f".tmp-{final.name}-*"):
        log.info("removing the unfinished build %s", stale)
        safe_rmtree(stale)


def _build(final: Path, extra_packages: list[str]) -> None:
    mmdebstrap = require_tool("mmdebstrap")
    temporary = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=final.parent))
    started = time.monotonic()
    try:
        _run_mmdebstrap(mmdebstrap, temporary, extra_packages)
        _customize(temporary)
        _clamp_file_times(temporary, SOURCE_DATE_EPOCH)
        os.chmod(temporary, 0o755)
        _write_manifest(final, temporary, time.monotonic() - started, extra_packages)
        os.rename(temporary, final)
    except BaseException:
        safe_rmtree(temporary)
        raise
    log.info("built %s in %.1f s", final, time.monotonic() - started)


def _mirror_lines() -> list[str]:
    mirror = os.environ.get(MIRROR_ENV) or DEFAULT_MIRROR
    security = os.environ.get(SECURITY_MIRROR_ENV) or DEFAULT_SECURITY_MIRROR
    return [
        f"deb {mirror} {SUITE} main",
        f"deb {mirror} {SUITE}-updates main",
        f"deb {security} {SUITE}-security main",
    ]


def _run_mmdebstrap(mmdebstrap: str, target: Path, extra_packages: list[str]) -> None:
    command = [
        mmdebstrap,
        "--mode=root",
        "--format=directory",
        "--variant=minbase",
        "--include=" + ",".join(normalize_packages(extra_packages)),
        '--aptopt=Acquire::Retries "3"',
        *(f"--dpkgopt={option}" for option in _DPKG_OPTIONS),
        SUITE,
        str(target),
        *_mirror_lines(),
    ]
    environment = dict(os.environ, SOURCE_DATE_EPOCH=str(SOURCE_DATE_EPOCH))
    log.info("running %s", " ".join(command))
    completed = subprocess.run(
        command, env=environment, capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        tail = "\n".join(completed.stderr.strip().splitlines()[-15:])
        raise TestbedError(
            f"mmdebstrap failed with exit status {completed.returncode}; check that the "
            f"Debian mirror is reachable (set {MIRROR_ENV} to use another) and that every "
            f"package name exists in {SUITE}. Last lines of its output:\n{tail}"
        )


def _customize(root: Path) -> None:
    """Make the tree identical on every host and ready to boot under systemd-nspawn."""
    etc = root / "etc"

    # An empty machine-id makes systemd generate a new one at every boot.
    (etc / "machine-id").write_text("")
    # mmdebstrap copies these two files from the build host.
    for name in ("hostname", "resolv.conf"):
        path = etc / name
        if path.is_file() or path.is_symlink():
            path.unlink()
    for key in (etc / "ssh").glob("ssh_host_*"):
        key.unlink()

    system_units = etc / "systemd" / "system"
    system_units.mkdir(parents=True, exist_ok=True)
    for unit in MASKED_UNITS:
        link = system_units / unit
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to("/dev/null")

    wrapper = root / INIT_WRAPPER_PATH.lstrip("/")
    wrapper.parent.mkdir(parents=True, exist_ok=True)
    wrapper.write_text(INIT_WRAPPER)
    wrapper.chmod(0o755)


def _clamp_file_times(root: Path, epoch: int) -> None:
    """Set every access and modification time later than ``epoch`` to ``epoch``."""
    for directory, subdirectories, files in os.walk(root):
        for name in subdirectories + files + ["."]:
            path = os.path.join(directory, name)
            status = os.lstat(path)
            if status.st_mtime > epoch or status.st_atime > epoch:
                os.utime(path, (epoch, epoch), follow_symlinks=False)


def _installed_packages(root: Path) -> dict[str, str]:
    versions = {}
    package = None
    status_file = root / "var" / "lib" / "dpkg" / "status"
    for line in status_file.read_text(encoding="utf-8").splitlines():
        if line.startswith("Package: "):
            package = line.split(": ", 1)[1]
        elif line.startswith("Version: ") and package:
            versions[package] = line.split(": ", 1)[1]
    return versions


def _write_manifest(final: Path, tree: Path, seconds: float, extra_packages: list[str]) -> None:
    """Write ``rootfs-HASH.json`` beside the tree: recipe, build time and package versions."""
    manifest = {
        "recipe": recipe(extra_packages),
        "mirrors": _mirror_lines(),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "build_seconds": round(seconds, 1),
        "installed_packages": _installed_packages(tree),
    }
    path = final.parent / f"{final.name}.json"
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    os.rename(temporary, path)
