"""Measure the testbed's timings on this machine: python -m tests.testbed.measure [--rounds N].

Prints the median and range of: a cached ``build`` (the whole CLI process),
``up`` to running, ``down``, and the cost of one command run inside an
instance, through the API, through ``exec`` (CLI) and through bare nsenter.
It boots and removes instances named ``tb-measure-N``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from ._instance import Instance
from ._rootfs import ensure_rootfs

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]


def _time(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def _report(label: str, seconds: list[float]) -> None:
    milliseconds = sorted(s * 1000 for s in seconds)
    print(
        f"{label:<34} median {statistics.median(milliseconds):8.1f} ms   "
        f"min {milliseconds[0]:8.1f}   max {milliseconds[-1]:8.1f}   n={len(milliseconds)}"
    )


def _cli(*arguments: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "tests.testbed", *arguments],
        cwd=REPOSITORY_ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
        timeout=300,
    )


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.testbed.measure")
    parser.add_argument(
        "--rounds", type=int, default=5, help="boots and builds to time (default: %(default)s)"
    )
    parser.add_argument(
        "--commands",
        type=int,
        default=20,
        help="commands to time per method (default: %(default)s)",
    )
    args = parser.parse_args()

    ensure_rootfs()
    _report(
        "build (cached, CLI process)", [_time(lambda: _cli("build")) for _ in range(args.rounds)]
    )

    boots, downs = [], []
    for round_number in range(args.rounds):
        instance = Instance(f"tb-measure-{round_number}")
        boots.append(_time(instance.up))
        downs.append(_time(instance.down))
    _report("up to running (API)", boots)
    _report("down (API)", downs)

    with Instance("tb-measure-exec") as instance:
        _report(
            "run(['true']) (API)",
            [_time(lambda: instance.run(["true"])) for _ in range(args.commands)],
        )
        cli_exec = [sys.executable, "-m", "tests.testbed", "exec", instance.name, "--", "true"]
        _report(
            "exec NAME -- true (CLI process)",
            [
                _time(lambda: subprocess.run(cli_exec, cwd=REPOSITORY_ROOT, check=True))
                for _ in range(args.commands)
            ],
        )
        bare = instance.exec_argv(["true"])
        _report(
            "bare nsenter ... true",
            [_time(lambda: subprocess.run(bare, check=True)) for _ in range(args.commands)],
        )
        _report(
            "host: /bin/true (baseline)",
            [_time(lambda: subprocess.run(["true"], check=True)) for _ in range(args.commands)],
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
