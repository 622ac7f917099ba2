"""Locations, tool checks and constants shared by the testbed modules."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from ._errors import TestbedError

# Environment variables that move the cache and state folders.
CACHE_ENV = "LEADD_TESTBED_CACHE"
STATE_ENV = "LEADD_TESTBED_STATE"
DEFAULT_CACHE_DIR = Path("/var/cache/leadd-testbed")
DEFAULT_STATE_DIR = Path("/run/leadd-testbed")

# PATH and HOME given to every command run inside an instance.
CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CONTAINER_HOME = "/root"

# Instance names become machine names (hostnames) and folder names.
_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")

# Debian package that provides each external tool, for error messages.
_TOOL_PACKAGES = {
    "systemd-nspawn": "systemd-container",
    "mmdebstrap": "mmdebstrap",
    "nsenter": "util-linux",
    "mount": "mount",
    "umount": "mount",
}


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE_DIR)


def state_dir() -> Path:
    return Path(os.environ.get(STATE_ENV) or DEFAULT_STATE_DIR)


def require_tool(name: str) -> str:
    """Return the absolute path of an external tool or raise with the package to install."""
    path = shutil.which(name)
    if path is None:
        package = _TOOL_PACKAGES.get(name, name)
        raise TestbedError(f"{name} not found: apt-get install {package}")
    return path


def require_root() -> None:
    if os.geteuid() != 0:
        raise TestbedError(
            "the testbed needs root (mounts, cgroups, systemd-nspawn): run it as root"
        )


def validate_name(name: str) -> str:
    if not _NAME_PATTERN.match(name):
        raise TestbedError(
            f"invalid instance name {name!r}: use 1-63 lowercase letters, digits "
            "and '-', starting with a letter or digit"
        )
    return name
