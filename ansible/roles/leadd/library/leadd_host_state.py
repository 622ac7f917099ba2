#!/usr/bin/python
"""Ansible module: read the state of a leadd host in one call."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: leadd_host_state
short_description: Read a leadd host's releases, links, unit, store, Python and free space
description:
  - Returns where the C(current) and C(previous) links point (read as links,
    never guessed from file dates), the state of one release folder, whether
    the unit and the store exist, what the interpreter that creates venvs
    can do, and the free space below some paths.
  - One call in place of a dozen stat and command tasks; every task costs a
    round trip to the host. Changes nothing.
options:
  releases_dir:
    description: Folder that holds one folder per release.
    type: path
    required: true
  current_link:
    description: Link to the active release.
    type: path
    required: true
  previous_link:
    description: Link to the release that was active before the last switch.
    type: path
    required: true
  release:
    description: Release id whose folder, RELEASE and BAD files are read.
    type: str
    default: ""
  previous_if_empty:
    description: When O(release) is empty, read the release C(previous) points at.
    type: bool
    default: false
  unit_path:
    description: Path of the systemd unit file.
    type: path
    required: true
  database:
    description: Path of the SQLite store.
    type: path
    required: true
  python:
    description: Interpreter to probe for its version, machine and venv support.
    type: path
  space_paths:
    description:
      - Paths whose file system's free space is returned. A missing path is
        measured at its nearest existing parent folder.
    type: list
    elements: path
    default: []
attributes:
  check_mode:
    support: full
author: leadd maintainers
"""

RETURN = r"""
systemd_booted:
  description: Whether systemd is the service manager (C(/run/systemd/system) exists, as sd_booted(3) tests).
  type: bool
  returned: always
current_release:
  description: Name of the folder C(current) points at, or an empty string.
  type: str
  returned: always
previous_release:
  description: Name of the folder C(previous) points at, or an empty string.
  type: str
  returned: always
release:
  description:
    - C(name), C(exists) (the folder), C(installed) (its RELEASE file), C(bad) and C(bad_reason) (its BAD file).
  type: dict
  returned: always
installed_releases:
  description: Names of the release folders that have a RELEASE file, sorted.
  type: list
  elements: str
  returned: always
unit_present:
  description: Whether the unit file exists.
  type: bool
  returned: always
store:
  description: C(exists) and C(size_mb) of the SQLite store.
  type: dict
  returned: always
python:
  description: C(ok), C(version) (major.minor), C(machine), C(venv) (venv and ensurepip importable) and C(error).
  type: dict
  returned: when O(python) is set
free_mb:
  description: Free MiB for each path of O(space_paths), in the same order.
  type: list
  elements: int
  returned: always
"""

import json
import os

from ansible.module_utils.basic import AnsibleModule

# Debian ships ensurepip only in the python3-venv package.
_PROBE = (
    "import importlib.util, json, platform, sys; "
    'print(json.dumps({"version": "%d.%d" % sys.version_info[:2], "machine": platform.machine(), '
    '"venv": all(importlib.util.find_spec(n) is not None for n in ("venv", "ensurepip"))}))'
)


def _link_target(path):
    if not os.path.islink(path):
        return ""
    return os.path.basename(os.readlink(path).rstrip("/"))


def _installed(releases_dir):
    try:
        names = os.listdir(releases_dir)
    except FileNotFoundError:
        return []
    return sorted(name for name in names if os.path.isfile(os.path.join(releases_dir, name, "RELEASE")))


def _free_mb(path):
    while not os.path.isdir(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize // (1024 * 1024)


def _probe_python(module, interpreter):
    try:
        rc, out, err = module.run_command([interpreter, "-c", _PROBE])
    except OSError as exc:
        return {"ok": False, "error": str(exc)}
    if rc != 0:
        return {"ok": False, "error": (err or out).strip() or f"exit status {rc}"}
    return {"ok": True, "error": "", **json.loads(out)}


def main():
    module = AnsibleModule(
        argument_spec={
            "releases_dir": {"type": "path", "required": True},
            "current_link": {"type": "path", "required": True},
            "previous_link": {"type": "path", "required": True},
            "release": {"type": "str", "default": ""},
            "previous_if_empty": {"type": "bool", "default": False},
            "unit_path": {"type": "path", "required": True},
            "database": {"type": "path", "required": True},
            "python": {"type": "path"},
            "space_paths": {"type": "list", "elements": "path", "default": []},
        },
        supports_check_mode=True,
    )
    params = module.params

    previous = _link_target(params["previous_link"])
    name = params["release"] or (previous if params["previous_if_empty"] else "")
    release = {"name": name, "exists": False, "installed": False, "bad": False, "bad_reason": ""}
    # A release id is one folder name; anything else reads as not installed.
    if name and "/" not in name and name not in (".", ".."):
        folder = os.path.join(params["releases_dir"], name)
        release["exists"] = os.path.isdir(folder)
        release["installed"] = os.path.isfile(os.path.join(folder, "RELEASE"))
        bad = os.path.join(folder, "BAD")
        if os.path.isfile(bad):
            release["bad"] = True
            with open(bad, encoding="utf-8", errors="replace") as handle:
                release["bad_reason"] = handle.read(2000).strip()

    database = params["database"]
    store_exists = os.path.isfile(database)
    result = {
        "changed": False,
        "systemd_booted": os.path.isdir("/run/systemd/system"),
        "current_release": _link_target(params["current_link"]),
        "previous_release": previous,
        "release": release,
        "installed_releases": _installed(params["releases_dir"]),
        "unit_present": os.path.isfile(params["unit_path"]),
        "store": {
            "exists": store_exists,
            "size_mb": round(os.path.getsize(database) / 1048576, 1) if store_exists else 0.0,
        },
        "free_mb": [_free_mb(path) for path in params["space_paths"]],
    }
    if params["python"]:
        result["python"] = _probe_python(module, params["python"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
