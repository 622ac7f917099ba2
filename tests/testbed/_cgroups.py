"""Per-instance cgroups below the calling process's own cgroup.

On a host with the hybrid cgroup layout (cgroup v1 controllers plus a v2
"unified" hierarchy), systemd-nspawn puts the container into the cgroups of
the process that starts it. Giving every instance its own cgroup in the
name=systemd, unified, memory and pids hierarchies keeps two instances from
sharing a /system.slice and lets the kernel enforce MemoryMax= inside.

NOTE: only the hybrid layout has been run. On a host with cgroup v2 alone the
same code creates one cgroup in /sys/fs/cgroup, but whether MemoryMax= is
enforced there has not been checked.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from ._errors import TestbedError
from ._mounts import unescape_mountinfo_field

log = logging.getLogger(__name__)

# Hierarchy keys: "name=systemd", "memory", "pids" (cgroup v1) and "unified" (cgroup v2).
INSTANCE_HIERARCHIES = ("name=systemd", "unified", "memory", "pids")

CGROUP_PREFIX = "leadd-testbed-"


@dataclass(frozen=True)
class _Mount:
    key: str
    root: str
    mount_point: str


def _cgroup_mounts() -> dict[str, _Mount]:
    mounts: dict[str, _Mount] = {}
    with open("/proc/self/mountinfo", encoding="utf-8") as mountinfo:
        for line in mountinfo:
            before, after = line.rstrip("\n").split(" - ", 1)
            fields = before.split(" ")
            fstype, _source, super_options = after.split(" ", 2)
            if fstype == "cgroup2":
                keys = ["unified"]
            elif fstype == "cgroup":
                keys = [o for o in super_options.split(",") if o in INSTANCE_HIERARCHIES]
            else:
                continue
            for key in keys:
                # The first mount wins: later ones are bind mounts of the same hierarchy.
                mounts.setdefault(
                    key,
                    _Mount(
                        key,
                        unescape_mountinfo_field(fields[3]),
                        unescape_mountinfo_field(fields[4]),
                    ),
                )
    return mounts


def _own_cgroups() -> dict[str, str]:
    """Return this process's cgroup path in each hierarchy, read from /proc/self/cgroup."""
    own = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        hierarchy_id, controllers, path = line.split(":", 2)
        if hierarchy_id == "0" and controllers == "":
            own["unified"] = path
            continue
        for controller in controllers.split(","):
            if controller in INSTANCE_HIERARCHIES:
                own[controller] = path
    return own


def instance_cgroup_paths(name: str) -> list[Path]:
    """Return the cgroups of instance ``name``: one per hierarchy, below this process's own."""
    mounts = _cgroup_mounts()
    own = _own_cgroups()
    paths = []
    for key in INSTANCE_HIERARCHIES:
        if key not in mounts or key not in own:
            log.info("no %s cgroup hierarchy on this host; skipping it", key)
            continue
        mount = mounts[key]
        relative = os.path.relpath(own[key], mount.root)
        parent = Path(os.path.normpath(Path(mount.mount_point) / relative))
        paths.append(parent / f"{CGROUP_PREFIX}{name}")
    if not paths:
        raise TestbedError("no cgroup hierarchy found in /proc/self/mountinfo: mount cgroupfs")
    return paths


def create_cgroups(paths: list[Path]) -> None:
    for path in paths:
        try:
            path.mkdir(exist_ok=True)
        except OSError as error:
            raise TestbedError(
                f"creating the cgroup {path} failed: {error}; the testbed needs root and a "
                "writable cgroup file system"
            ) from error


def join_script(cgroups: list[Path]) -> str:
    """Return a shell fragment that moves the shell running it into every cgroup of ``cgroups``."""
    moves = [f"echo $$ > '{cgroup}/cgroup.procs'" for cgroup in cgroups]
    return " && ".join(moves)


def member_pids(cgroups: list[Path]) -> set[int]:
    """Return the PIDs in ``cgroups`` and all their descendants."""
    pids: set[int] = set()
    for cgroup in cgroups:
        for directory, _subdirectories, _files in os.walk(cgroup):
            try:
                text = Path(directory, "cgroup.procs").read_text()
            except (FileNotFoundError, OSError):
                continue
            pids.update(int(pid) for pid in text.split())
    return pids


def remove_cgroups(cgroups: list[Path], *, attempts: int = 20, delay: float = 0.1) -> None:
    """Remove ``cgroups`` and every cgroup below them, deepest first.

    A cgroup can stay busy for a moment after its last process exits, so each
    removal is retried a bounded number of times.
    """
    failures = []
    for cgroup in cgroups:
        if not cgroup.is_dir():
            continue
        for directory, _subdirectories, _files in os.walk(cgroup, topdown=False):
            error = _rmdir_with_retry(Path(directory), attempts, delay)
            if error is not None:
                failures.append(f"{directory}: {error}")
    if failures:
        raise TestbedError(
            "removing cgroups failed, probably because processes are still inside: "
            + "; ".join(failures)
            + ". Run 'python -m tests.testbed down' again after they exit."
        )


def _rmdir_with_retry(path: Path, attempts: int, delay: float) -> OSError | None:
    last_error = None
    for _ in range(attempts):
        try:
            path.rmdir()
            return None
        except FileNotFoundError:
            return None
        except OSError as error:
            if error.errno != errno.EBUSY:
                return error
            last_error = error
        time.sleep(delay)
    return last_error
