"""Prepare leadd source trees for the Molecule scenarios, on the controller.

    python sources.py REPO DEST [--version X.Y.Z] [--break-health] [--commit]

Copies the files that make up a release (tracked and untracked, not ignored)
from the checkout REPO into DEST, so a scenario deploys one fixed snapshot
even while people keep editing REPO. Options:

--version       rewrite __version__ in leadd/__init__.py
--break-health  make GET /health/detailed return 503, so the release starts
                (READY=1) but fails the role's health check
--commit        make DEST a git repository with one commit, so its release id
                is "<version>-<commit>" (fixed author and dates: the same
                content gives the same commit)

Prints how many files it copied. Uses only the standard library.
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import shutil
import subprocess
from pathlib import Path

# Must match _leadd_release_inputs in roles/leadd/vars/main.yml.
INPUTS = [
    "leadd",
    "pyproject.toml",
    "README.md",
    "requirements",
    "systemd/leadd.service",
    "logrotate/leadd",
    "docs/operations.md",
]
GIT_ENV = {
    "GIT_AUTHOR_NAME": "molecule",
    "GIT_AUTHOR_EMAIL": "molecule@localhost",
    "GIT_AUTHOR_DATE": "2025-01-01T00:00:00Z",
    "GIT_COMMITTER_NAME": "molecule",
    "GIT_COMMITTER_EMAIL": "molecule@localhost",
    "GIT_COMMITTER_DATE": "2025-01-01T00:00:00Z",
}


def copy_release_files(repo: Path, dest: Path) -> int:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", *INPUTS],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    names = [name for name in listed.stdout.split("\0") if name and (repo / name).is_file()]
    shutil.rmtree(dest, ignore_errors=True)
    for name in names:
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo / name, dest / name)
    return len(names)


def set_version(dest: Path, version: str) -> None:
    path = dest / "leadd" / "__init__.py"
    text, count = re.subn(r'^__version__ = ".*"$', f'__version__ = "{version}"', path.read_text(), flags=re.M)
    if count != 1:
        raise SystemExit(f"{path}: expected one __version__ line, found {count}")
    path.write_text(text)


def break_health(dest: Path) -> None:
    """Insert an HTTP 503 as the first statement of the /health/detailed handler."""
    path = dest / "leadd" / "api" / "health.py"
    source = path.read_text()
    handlers = [
        node
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.AsyncFunctionDef) and node.name == "health_detailed"
    ]
    if len(handlers) != 1:
        raise SystemExit(f"{path}: no async def health_detailed to break; update sources.py")
    first = handlers[0].body[0]
    lines = source.splitlines(keepends=True)
    indent = " " * first.col_offset
    lines.insert(
        first.lineno - 1,
        f'{indent}raise web.HTTPServiceUnavailable(text="release broken on purpose by the Molecule scenario")\n',
    )
    path.write_text("".join(lines))


def commit(dest: Path) -> None:
    env = {**os.environ, **GIT_ENV}
    for argv in (["git", "init", "--quiet"], ["git", "add", "--all"], ["git", "commit", "--quiet", "-m", "snapshot"]):
        subprocess.run(argv, cwd=dest, env=env, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("repo", type=Path)
    parser.add_argument("dest", type=Path)
    parser.add_argument("--version")
    parser.add_argument("--break-health", action="store_true")
    parser.add_argument("--commit", action="store_true")
    args = parser.parse_args()

    count = copy_release_files(args.repo.resolve(), args.dest)
    if args.version:
        set_version(args.dest, args.version)
    if args.break_health:
        break_health(args.dest)
    if args.commit:
        commit(args.dest)
    print(f"{args.dest}: {count} files")


if __name__ == "__main__":
    main()
