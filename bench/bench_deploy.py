"""Wall times of a deploy and a rollback with the Ansible role, on the systemd testbed.

One booted Debian 12 test system (tests/testbed) gets release A, then the
script stages release B (`--tags leadd_preflight,leadd_build,leadd_install`:
built, uploaded and installed, not switched) and alternates, ROUNDS times:

1. `ansible-playbook deploy.yml` of B: the switch, restart and health check
   of a new release, with every other phase finding nothing to do;
2. `ansible-playbook rollback.yml`: back to A;
3. `ansible-playbook deploy.yml` of B again, staged as before.

The baselines, measured in the same run on the same system:

- a bare `systemctl restart leadd` followed by polling /health/detailed
  until it returns 200, which is the floor of any switch (the new process
  has to start and serve requests);
- `ansible-playbook deploy.yml` when nothing changes, which is what the
  role's checks cost without a restart.

Also measured once: a deploy of a release never built before (build on the
controller, upload, venv, install, switch, restart, verify).

Run as root from the repository root: ``.venv/bin/python -m bench.bench_deploy``.
Needs systemd-nspawn (tests/testbed/README.md) and PyPI or a warm pip cache
for the first build. Writes the "deploy" section of docs/benchmarks.md.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from bench.common import REPO, median
from bench.report import machine_line, write_section
from tests.testbed import Instance

ROUNDS = 3
INSTANCE = "leadd-bench-deploy"
ANSIBLE_DIR = REPO / "ansible"
BIN = Path(sys.executable).parent
SOURCES = ANSIBLE_DIR / "molecule" / "shared" / "sources.py"
DEPLOY_GOAL_S = 20.0
ROLLBACK_GOAL_S = 10.0
# Tasks that open and close the service-affecting window in deploy.yml and
# rollback.yml: from the store backup before the switch to the health check.
WINDOW_FIRST_TASK = "Back up the store before the switch"
WINDOW_LAST_TASK = "Check that leadd serves the release"
HEALTH_URL = "http://127.0.0.1:5057/health/detailed"
GROUP_VARS = """\
ansible_connection: community.docker.nsenter
ansible_python_interpreter: /usr/bin/python3
ansible_nsenter_pid: "{{{{ lookup('ansible.builtin.pipe', ansible_playbook_python ~ ' -m tests.testbed pid ' ~ inventory_hostname) }}}}"
leadd_build_dir: {build_dir}
leadd_api_token: bench-token-0123456789abcdef
# A key of the right form keeps places_new the default provider, so leadd
# does not import OpenStreetMap data at start. No search runs.
leadd_google_places_api_key: AIzaBenchKey0000000000000000000000000000
"""


def _ansible_env() -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        # tests.testbed, for the nsenter PID lookup.
        "PYTHONPATH": str(REPO),
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
        "ANSIBLE_NOCOLOR": "1",
    }


def _playbook(inventory: Path, playbook: str, *args: str) -> tuple[float, dict]:
    """Run one playbook from ansible/ and return its wall time and the JSON callback's output."""
    started = time.perf_counter()
    result = subprocess.run(
        [str(BIN / "ansible-playbook"), "--inventory", str(inventory), playbook, *args],
        cwd=ANSIBLE_DIR,
        env=_ansible_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        command = " ".join([playbook, *args])
        raise RuntimeError(
            f"ansible-playbook {command} exited {result.returncode}:\n"
            f"{result.stdout[-4000:]}\n{result.stderr[-2000:]}"
        )
    return elapsed, json.loads(result.stdout)


def _task_window(output: dict, first: str, last: str) -> float:
    """Return the seconds from the start of task ``first`` to the end of the last task named ``last``."""
    start = end = None
    for play in output["plays"]:
        for task in play["tasks"]:
            name = task["task"]["name"]
            duration = task["task"].get("duration", {})
            if name.endswith(first) and start is None:
                start = duration["start"]
            if name.endswith(last):
                end = duration["end"]
    if start is None or end is None:
        raise RuntimeError(f"tasks {first!r} and {last!r} not found in the playbook output")
    return (_timestamp(end) - _timestamp(start)).total_seconds()


def _timestamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _bare_restart(system: Instance) -> float:
    """Restart the unit without Ansible, poll /health/detailed until 200 and return the seconds."""
    # As the role does: the benchmark restarts more often than StartLimitBurst allows.
    system.run(["systemctl", "reset-failed", "leadd.service"], check=False)
    started = time.perf_counter()
    system.run(["systemctl", "restart", "leadd.service"], timeout=120)
    deadline = started + 60
    while time.perf_counter() < deadline:
        probe = system.run(
            ["curl", "--silent", "--output", "/dev/null", "--write-out", "%{http_code}", HEALTH_URL],
            check=False,
            timeout=10,
        )
        if probe.stdout.strip() == "200":
            return time.perf_counter() - started
        time.sleep(0.05)
    raise RuntimeError("leadd did not return 200 on /health/detailed within 60 s after a bare restart")


def _source(dest: Path, *options: str) -> Path:
    subprocess.run(
        [sys.executable, str(SOURCES), str(REPO), str(dest), "--commit", *options],
        check=True,
        capture_output=True,
    )
    return dest


def _summary(values: list[float]) -> str:
    return f"{median(values):.1f} s ({min(values):.1f}–{max(values):.1f})"


def run(workdir: Path) -> dict[str, list[float] | float]:
    inventory = workdir / "inventory"
    (inventory / "group_vars").mkdir(parents=True)
    (inventory / "hosts.yml").write_text(f"leadd:\n  hosts:\n    {INSTANCE}:\n")
    build_dir = workdir / "build"
    (inventory / "group_vars" / "leadd.yml").write_text(GROUP_VARS.format(build_dir=build_dir))
    release_a = _source(workdir / "src-a")
    release_b = _source(workdir / "src-b", "--version", "0.1.1")
    # A third tree that no run has built, for the cold deploy.
    release_c = _source(workdir / "src-c", "--version", "0.1.2")

    results: dict[str, list[float] | float] = {
        "deploy": [],
        "deploy_window": [],
        "rollback": [],
        "rollback_window": [],
        "bare": [],
        "noop": [],
    }
    system = Instance(INSTANCE)
    system.up()
    try:
        _playbook(inventory, "deploy.yml", "-e", f"leadd_source_dir={release_a}")
        # Stage B: build, upload and install it without switching.
        staging_tags = "leadd_preflight,leadd_build,leadd_install"
        _playbook(inventory, "deploy.yml", "-e", f"leadd_source_dir={release_b}", "--tags", staging_tags)
        for _ in range(ROUNDS):
            elapsed, output = _playbook(inventory, "deploy.yml", "-e", f"leadd_source_dir={release_b}")
            results["deploy"].append(elapsed)
            results["deploy_window"].append(_task_window(output, WINDOW_FIRST_TASK, WINDOW_LAST_TASK))
            elapsed, _ = _playbook(inventory, "deploy.yml", "-e", f"leadd_source_dir={release_b}")
            results["noop"].append(elapsed)
            elapsed, output = _playbook(inventory, "rollback.yml")
            results["rollback"].append(elapsed)
            results["rollback_window"].append(_task_window(output, WINDOW_FIRST_TASK, WINDOW_LAST_TASK))
            results["bare"].append(_bare_restart(system))
        elapsed, _ = _playbook(inventory, "deploy.yml", "-e", f"leadd_source_dir={release_c}")
        results["cold"] = elapsed
    finally:
        system.down()
    return results


def render(results: dict) -> str:
    deploy, rollback, bare = median(results["deploy"]), median(results["rollback"]), median(results["bare"])
    window, rollback_window = median(results["deploy_window"]), median(results["rollback_window"])
    deploy_verdict = "met" if deploy <= DEPLOY_GOAL_S else "NOT met"
    rollback_verdict = "met" if rollback <= ROLLBACK_GOAL_S else "NOT met"
    return f"""## Deploy and rollback (bench/bench_deploy.py)

{machine_line()} One Debian 12 test system booted under
systemd-nspawn (tests/testbed), reached through `community.docker.nsenter`
(no pipelining: each remote task copies and starts its module, about 0.3 to
0.5 s). Medians of {ROUNDS} rounds, with the range.

| What | Wall time |
|---|---|
| `deploy.yml`, new release already built and installed (switch, restart, verify) | {_summary(results['deploy'])} |
| of which backup, switch, restart and health check | {_summary(results['deploy_window'])} |
| `rollback.yml` to the previous release | {_summary(results['rollback'])} |
| of which backup, switch, restart and health check | {_summary(results['rollback_window'])} |
| baseline: `systemctl restart leadd` until /health/detailed returns 200 | {_summary(results['bare'])} |
| baseline: `deploy.yml` with nothing to change | {_summary(results['noop'])} |
| `deploy.yml` of a release never built (build, upload, venv, install, switch, verify), once | {results['cold']:.1f} s |

- Deploy: {deploy:.1f} s, {deploy / bare:.1f}× the bare restart; goal at most {DEPLOY_GOAL_S:.0f} s: **{deploy_verdict}**.
  The service-affecting part takes {window:.1f} s ({window / bare:.1f}× the bare restart); the rest is
  the role's checks, which cost {median(results['noop']):.1f} s when nothing changes.
- Rollback: {rollback:.1f} s, {rollback / bare:.1f}× the bare restart; goal at most {ROLLBACK_GOAL_S:.0f} s: **{rollback_verdict}**.
  The service-affecting part takes {rollback_window:.1f} s.
"""


def main() -> None:
    if os.geteuid() != 0 or shutil.which("systemd-nspawn") is None:
        raise SystemExit("bench_deploy needs root and systemd-nspawn (tests/testbed/README.md)")
    with tempfile.TemporaryDirectory(prefix="leadd-bench-deploy-") as workdir:
        results = run(Path(workdir))
    markdown = render(results)
    print(markdown)
    write_section("deploy", markdown)


if __name__ == "__main__":
    main()
