#!/usr/bin/python
"""Ansible module: compute leadd's release id from a source tree and stage its files."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: leadd_release_source
short_description: Compute the release id of a leadd source tree and copy its files for a build
description:
  - Reads C(__version__) from the version file and names the release
    C(<version>-<commit>) when every input file is committed in git, or
    C(<version>-dirty.<hash>) otherwise, where the hash covers the paths and
    contents of the input files. The same content always gets the same id.
  - With O(stage), copies the input files into that folder, so a build never
    picks up ignored leftovers of the checkout (such as setuptools' C(build/)).
  - Runs on the controller; it reads the tree and only writes under O(stage).
options:
  path:
    description: Root of the source tree.
    type: path
    required: true
  inputs:
    description:
      - Files and folders, relative to O(path), that make up a release.
      - Missing ones are skipped.
    type: list
    elements: str
    required: true
  version_file:
    description: File, relative to O(path), that assigns C(__version__).
    type: str
    default: leadd/__init__.py
  stage:
    description: Folder to fill with a copy of the input files; it is replaced.
    type: path
attributes:
  check_mode:
    support: full
    details: In check mode nothing is staged.
author: leadd maintainers
"""

RETURN = r"""
release_id:
  description: Release id, used as the folder name under /opt/leadd/releases.
  type: str
  returned: always
  sample: 0.1.0-3f5ac2d0b1e2
version:
  description: The C(__version__) of the tree.
  type: str
  returned: always
revision:
  description: The 12-character commit, or C(dirty.) and 12 characters of the content hash.
  type: str
  returned: always
clean:
  description: Whether git reports no change in any input file.
  type: bool
  returned: always
files:
  description: Number of input files.
  type: int
  returned: always
"""

import hashlib
import os
import re
import shutil
import subprocess

from ansible.module_utils.basic import AnsibleModule

_VERSION = re.compile(r"""^__version__\s*=\s*["']([^"']+)["']""", re.MULTILINE)
_SAFE_VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+_-]*$")
# Never part of a release, in trees that are not git checkouts.
_SKIPPED_NAMES = {"__pycache__", ".git", ".mypy_cache", ".pytest_cache", ".ruff_cache"}
_SKIPPED_SUFFIXES = (".pyc", ".pyo", ".egg-info")


def _git(root, *args):
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)


def _walk(root, inputs):
    """Return the input files below ``root`` (relative paths), for trees without git."""
    found = []
    for entry in inputs:
        full = os.path.join(root, entry)
        if os.path.isfile(full):
            found.append(entry)
            continue
        for folder, subfolders, names in os.walk(full):
            subfolders[:] = sorted(
                name for name in subfolders if name not in _SKIPPED_NAMES and not name.endswith(_SKIPPED_SUFFIXES)
            )
            for name in names:
                if not name.endswith(_SKIPPED_SUFFIXES):
                    found.append(os.path.relpath(os.path.join(folder, name), root))
    return found


def _git_files(root, inputs):
    """Return tracked and untracked, not ignored input files, or None outside a git checkout."""
    listed = _git(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", *inputs)
    if listed.returncode != 0:
        return None, listed.stderr.strip()
    # A copy of the tree inside an ignored folder of another checkout (a
    # build cache, say) is not under version control there.
    if _git(root, "check-ignore", "-q", ".").returncode == 0:
        return None, ""
    # A tracked file deleted from the working tree is still listed.
    names = [name for name in listed.stdout.split("\0") if name and os.path.isfile(os.path.join(root, name))]
    return names, ""


def _content_hash(root, files):
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0")
        with open(os.path.join(root, name), "rb") as handle:
            content = handle.read()
        digest.update(str(len(content)).encode() + b"\0" + content)
    return digest.hexdigest()


def _stage(root, files, destination):
    partial = destination.rstrip("/") + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    for name in files:
        target = os.path.join(partial, name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy2(os.path.join(root, name), target)
    shutil.rmtree(destination, ignore_errors=True)
    os.rename(partial, destination)


def main():
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "inputs": {"type": "list", "elements": "str", "required": True},
            "version_file": {"type": "str", "default": "leadd/__init__.py"},
            "stage": {"type": "path"},
        },
        supports_check_mode=True,
    )
    root = os.path.realpath(module.params["path"])
    inputs = module.params["inputs"]
    if not os.path.isdir(root):
        module.fail_json(msg=f"leadd source folder {root} not found: set leadd_source_dir to a leadd checkout")

    version_path = os.path.join(root, module.params["version_file"])
    try:
        with open(version_path, encoding="utf-8") as handle:
            match = _VERSION.search(handle.read())
    except OSError as exc:
        module.fail_json(msg=f"cannot read {version_path}: {exc.strerror}; is leadd_source_dir a leadd checkout?")
    if not match or not _SAFE_VERSION.match(match.group(1)):
        module.fail_json(msg=f"{version_path} has no __version__ = \"X.Y.Z\" line usable in a folder name")
    version = match.group(1)

    files, git_error = _git_files(root, inputs)
    commit = None
    if files is None:
        if "dubious ownership" in git_error:
            module.warn(f"git refused {root} ({git_error.splitlines()[0]}); the release id uses a content hash")
        files = _walk(root, inputs)
    else:
        status = _git(root, "status", "--porcelain", "--untracked-files=all", "--", *inputs)
        head = _git(root, "rev-parse", "--verify", "HEAD")
        if status.returncode == 0 and not status.stdout.strip() and head.returncode == 0:
            commit = head.stdout.strip()[:12]
    if not files:
        module.fail_json(msg=f"none of {', '.join(inputs)} found in {root}")

    content_hash = _content_hash(root, files)
    revision = commit if commit else "dirty." + content_hash[:12]
    result = {
        "changed": False,
        "release_id": f"{version}-{revision}",
        "version": version,
        "revision": revision,
        "clean": commit is not None,
        "files": len(files),
    }
    if module.params["stage"] and not module.check_mode:
        _stage(root, files, module.params["stage"])
        result["changed"] = True
    module.exit_json(**result)


if __name__ == "__main__":
    main()
