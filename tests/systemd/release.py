"""Build leadd's wheelhouse on the host and install it as a release inside a booted test system.

The layout matches what the Ansible role deploys: a venv per release under
/opt/leadd/releases/ID, /opt/leadd/current pointing at it, the unit file,
the logrotate file and /etc/leadd/leadd.env. The test system has no
network, so pip installs from the wheelhouse only.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.testbed import Instance

__all__ = ["WHEELHOUSE_IN_SYSTEM", "build_wheelhouse", "install_release", "write_env"]

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("LEADD_TEST_CACHE", REPO / ".cache"))
WHEELHOUSE_IN_SYSTEM = "/opt/wheelhouse"
SOURCE_IN_SYSTEM = "/opt/leadd-src"


def _digest(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(str(path.relative_to(REPO)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _build(target: Path, pip_args: list[str]) -> Path:
    if target.is_dir():
        return target
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(partial), *pip_args],
        check=True,
        cwd=REPO,
    )
    partial.rename(target)
    return target


def build_wheelhouse() -> Path:
    """Return a folder with wheels for the pinned dependencies and for leadd itself.

    The dependency wheels are cached by the lock file's hash and leadd's wheel
    by its sources, so a rerun builds only what changed.
    """
    lock = REPO / "requirements" / "runtime.lock"
    deps = _build(CACHE / f"wheels-deps-{_digest([lock])}", ["--require-hashes", "-r", str(lock)])
    sources = [p for p in (REPO / "leadd").rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    leadd = _build(CACHE / f"wheels-leadd-{_digest(sources + [REPO / 'pyproject.toml'])}", ["--no-deps", str(REPO)])
    house = CACHE / f"wheelhouse-{deps.name[-16:]}-{leadd.name[-16:]}"
    if not house.is_dir():
        partial = house.with_name(house.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        for wheel in list(deps.iterdir()) + list(leadd.iterdir()):
            shutil.copy2(wheel, partial / wheel.name)
        partial.rename(house)
    return house


def install_release(system: Instance, release: str = "test") -> None:
    """Create the leadd user, a release venv from the wheelhouse, the unit and its files."""
    venv = f"/opt/leadd/releases/{release}/venv"
    system.run(
        "id leadd >/dev/null 2>&1 || useradd --system --home-dir /var/lib/leadd --shell /usr/sbin/nologin leadd"
    )
    system.run(["python3", "-m", "venv", venv])
    system.run(["sh", "-c", f"echo {release} > /opt/leadd/releases/{release}/RELEASE"])
    system.run(
        [f"{venv}/bin/pip", "install", "--quiet", "--no-index", "--find-links", WHEELHOUSE_IN_SYSTEM, "leadd"],
        timeout=300,
    )
    # The unit's file system is read-only: compile the bytecode now.
    system.run([f"{venv}/bin/python", "-m", "compileall", "-q", f"/opt/leadd/releases/{release}"])
    system.run(["ln", "-sfn", f"/opt/leadd/releases/{release}", "/opt/leadd/current"])
    (system.root / "etc/systemd/system").mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "systemd" / "leadd.service", system.root / "etc/systemd/system/leadd.service")
    shutil.copy(REPO / "logrotate" / "leadd", system.root / "etc/logrotate.d/leadd")
    system.run("systemctl daemon-reload")


def write_env(system: Instance, values: dict[str, str]) -> None:
    """Write /etc/leadd/leadd.env (root-owned, mode 0600, as the role does)."""
    env_dir = system.root / "etc/leadd"
    env_dir.mkdir(parents=True, exist_ok=True)
    path = env_dir / "leadd.env"
    path.write_text("".join(f"{key}={value}\n" for key, value in values.items()))
    os.chmod(path, 0o600)
