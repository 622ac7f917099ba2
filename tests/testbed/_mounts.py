"""Overlay mounts, mount table look-ups and a recursive delete that never crosses a mount."""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from ._config import require_tool
from ._errors import TestbedError

log = logging.getLogger(__name__)

_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")

# overlayfs takes its directories in one comma-separated option string, and
# lowerdir uses ':' as a separator, so paths must not contain these characters.
_OVERLAY_FORBIDDEN = set(",:\\")


def unescape_mountinfo_field(field: str) -> str:
    return _OCTAL_ESCAPE.sub(lambda match: chr(int(match.group(1), 8)), field)


def mount_points() -> list[str]:
    """Return the mount points of this mount namespace, in mount order."""
    points = []
    with open("/proc/self/mountinfo", encoding="utf-8") as mountinfo:
        for line in mountinfo:
            fields = line.split(" ")
            points.append(unescape_mountinfo_field(fields[4]))
    return points


def mounts_under(path: Path) -> list[str]:
    """Return the mount points at or below ``path``, deepest first."""
    prefix = str(path).rstrip("/")
    found = [p for p in mount_points() if p == prefix or p.startswith(prefix + "/")]
    return sorted(set(found), key=lambda p: p.count("/"), reverse=True)


def is_mount_point(path: Path) -> bool:
    return str(path).rstrip("/") in mount_points()


def mount_overlay(lower: Path, upper: Path, work: Path, target: Path) -> None:
    for directory in (lower, upper, work, target):
        if _OVERLAY_FORBIDDEN & set(str(directory)):
            raise TestbedError(
                f"cannot use {directory} in an overlay mount because it contains one of "
                "',', ':' or '\\': set LEADD_TESTBED_CACHE / LEADD_TESTBED_STATE to plain paths"
            )
    options = f"lowerdir={lower},upperdir={upper},workdir={work}"
    completed = subprocess.run(
        [require_tool("mount"), "-t", "overlay", "overlay", "-o", options, str(target)],
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise TestbedError(
            f"mounting the overlay on {target} failed: {completed.stderr.strip()}; "
            "check that the kernel has overlayfs (modprobe overlay) and that the state "
            "folder is not itself on an overlayfs"
        )


def unmount(path: Path, *, attempts: int = 5, delay: float = 0.2) -> None:
    """Unmount ``path``, retrying while it is busy and detaching it lazily as the last resort."""
    umount = require_tool("umount")
    error = ""
    for _ in range(attempts):
        if not is_mount_point(path):
            return
        completed = subprocess.run([umount, str(path)], capture_output=True, text=True, check=False)
        if completed.returncode == 0:
            return
        error = completed.stderr.strip()
        time.sleep(delay)

    log.warning("unmounting %s failed (%s); detaching it lazily", path, error)
    completed = subprocess.run(
        [umount, "--lazy", str(path)], capture_output=True, text=True, check=False
    )
    if completed.returncode != 0 and is_mount_point(path):
        raise TestbedError(
            f"unmounting {path} failed: {completed.stderr.strip()}; "
            f"find the users with 'fuser -vm {path}' and stop them"
        )


def safe_rmtree(path: Path) -> None:
    """Delete ``path`` recursively after unmounting everything below it.

    shutil.rmtree would otherwise descend into a bind mount of /dev or /proc
    left behind by an interrupted build and delete files of the host.
    """
    if not os.path.lexists(path):
        return
    for point in mounts_under(path):
        unmount(Path(point))
    remaining = mounts_under(path)
    if remaining:
        raise TestbedError(
            f"cannot delete {path} because {remaining[0]} is still mounted: "
            f"unmount it by hand (umount -R {remaining[0]})"
        )
    shutil.rmtree(path)


@dataclass(frozen=True)
class BindMount:
    """A host path made visible read-only inside the instance."""

    host: Path
    container: str

    @classmethod
    def parse(cls, spec: str) -> BindMount:
        """Parse ``HOSTPATH[:CONTAINERPATH]``. The container path defaults to the host path."""
        host, _, container = spec.partition(":")
        container = container or host
        if not os.path.isabs(host) or not os.path.isabs(container):
            raise TestbedError(f"invalid bind mount {spec!r}: both paths must be absolute")
        if not os.path.exists(host):
            raise TestbedError(f"invalid bind mount {spec!r}: {host} does not exist on the host")
        return cls(Path(host), container)

    def nspawn_option(self) -> str:
        return f"--bind-ro={self.host}:{self.container}"
