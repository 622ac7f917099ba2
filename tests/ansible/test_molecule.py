"""The Molecule scenarios of ansible/molecule/, each run as `molecule test -s NAME`.

They boot Debian 12 test systems (tests/testbed), so they need root and
systemd-nspawn, and skip otherwise. The controller builds the release
wheelhouse with pip, so PyPI (or the pip cache) must be reachable. Select
them with `pytest -m molecule`; each takes one to three minutes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = REPO / "ansible"
SCENARIOS = sorted(path.parent.name for path in (ANSIBLE_DIR / "molecule").glob("*/molecule.yml"))

pytestmark = [pytest.mark.molecule, pytest.mark.timeout(900)]


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "Molecule scenarios boot test systems and need root"
    for tool in ("systemd-nspawn", "nsenter"):
        if shutil.which(tool) is None:
            return f"{tool} not found: apt-get install systemd-container"
    if not (Path(sys.executable).parent / "molecule").exists():
        return "molecule is not installed in this venv (requirements/dev.lock)"
    return None


def test_scenarios_found():
    assert SCENARIOS == ["default", "multi", "rollback"]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario_passes(scenario):
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    bin_dir = str(Path(sys.executable).parent)
    result = subprocess.run(
        [f"{bin_dir}/molecule", "test", "--scenario-name", scenario],
        cwd=ANSIBLE_DIR,
        # molecule starts ansible-playbook and ansible-config from PATH.
        env={**os.environ, "PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}"},
        capture_output=True,
        text=True,
        timeout=840,
    )

    assert result.returncode == 0, (
        f"molecule test -s {scenario} exited {result.returncode}:\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}"
    )
