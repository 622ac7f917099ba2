"""Command line: python -m tests.testbed {build,up,exec,down,status,inventory,pid}."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time

from ._errors import TestbedError
from ._instance import DEFAULT_BOOT_TIMEOUT, DEFAULT_STOP_TIMEOUT, Instance, list_instances
from ._inventory import FORMATS, render_inventory
from ._rootfs import ensure_rootfs

log = logging.getLogger("tests.testbed")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tests.testbed",
        description="Boot Debian 12 systems with systemd as PID 1 under systemd-nspawn.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every step to stderr")
    commands = parser.add_subparsers(dest="command", required=True)

    build = commands.add_parser(
        "build", help="build the cached root file system (a no-op when cached)"
    )
    _add_package_option(build)

    up = commands.add_parser("up", help="boot an instance and wait until systemd is running")
    up.add_argument("name", help="instance name, also its hostname")
    _add_package_option(up)
    up.add_argument(
        "--bind-ro",
        action="append",
        default=[],
        metavar="HOSTPATH[:CONTAINERPATH]",
        help="make a host path visible read-only inside the instance (repeatable)",
    )
    up.add_argument(
        "--boot-timeout",
        type=float,
        default=DEFAULT_BOOT_TIMEOUT,
        metavar="SECONDS",
        help="maximum time from start to 'running' (default: %(default)s)",
    )

    execute = commands.add_parser(
        "exec",
        help="run a command inside an instance as root; stdin, output and exit status pass through",
    )
    execute.add_argument("name")
    execute.add_argument(
        "-e",
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="environment variable for the command, besides PATH and HOME (repeatable)",
    )
    execute.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- CMD...")

    down = commands.add_parser("down", help="power off instances and remove their state")
    down.add_argument("names", nargs="*", metavar="NAME")
    down.add_argument("--all", action="store_true", help="every instance in the state folder")
    down.add_argument(
        "--stop-timeout",
        type=float,
        default=DEFAULT_STOP_TIMEOUT,
        metavar="SECONDS",
        help="wait this long for a clean poweroff before SIGKILL (default: %(default)s)",
    )

    status = commands.add_parser(
        "status", help="list instances with their PIDs and whether they run"
    )
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")

    inventory = commands.add_parser(
        "inventory", help="print an Ansible inventory for running instances"
    )
    inventory.add_argument("names", nargs="+", metavar="NAME")
    inventory.add_argument("--format", choices=FORMATS, default="yaml", help="default: %(default)s")
    inventory.add_argument(
        "--group", default="testbed", help="inventory group of the hosts (default: %(default)s)"
    )

    pid = commands.add_parser("pid", help="print the host PID of a running instance's PID 1")
    pid.add_argument("name")
    return parser


def _add_package_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--package",
        action="append",
        default=[],
        metavar="NAME",
        help="extra Debian package to bake into the root file system (repeatable); "
        "each package set gets its own cached tree",
    )


def _command_build(args: argparse.Namespace) -> int:
    started = time.monotonic()
    path = ensure_rootfs(args.package)
    print(path)
    log.info("root file system ready after %.2f s", time.monotonic() - started)
    return 0


def _command_up(args: argparse.Namespace) -> int:
    instance = Instance(
        args.name, packages=args.package, bind_ro=args.bind_ro, boot_timeout=args.boot_timeout
    )
    instance.up()
    print(f"name={instance.name}")
    print(f"root={instance.root}")
    print(f"init_pid={instance.init_pid}")
    print(f"nspawn_pid={instance.nspawn_pid}")
    print(f"system_state={instance.system_state}")
    print(f"boot_seconds={instance.boot_seconds}")
    if instance.failed_units:
        print(f"failed_units={','.join(instance.failed_units)}")
        print(
            f"warning: instance {instance.name} is degraded; see "
            f"'python -m tests.testbed exec {instance.name} -- systemctl --failed'",
            file=sys.stderr,
        )
    return 0


def _command_exec(args: argparse.Namespace) -> int:
    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    if not argv:
        raise TestbedError("exec needs a command: python -m tests.testbed exec NAME -- CMD...")
    environment = {}
    for assignment in args.env:
        key, separator, value = assignment.partition("=")
        if not separator or not key:
            raise TestbedError(f"invalid --env {assignment!r}: use KEY=VALUE")
        environment[key] = value
    command = Instance.attach(args.name).exec_argv(argv, environment)
    sys.stdout.flush()
    # Replacing this process passes the terminal, stdin and the exit status through unchanged.
    os.execv(command[0], command)
    return 127  # not reached


def _command_down(args: argparse.Namespace) -> int:
    if args.all and args.names:
        raise TestbedError("down takes either instance names or --all, not both")
    if args.all:
        instances = list_instances()
    elif args.names:
        instances = [Instance(name) for name in args.names]
    else:
        raise TestbedError("down needs instance names or --all")
    for instance in instances:
        instance.stop_timeout = args.stop_timeout
        started = time.monotonic()
        instance.down()
        log.info("instance %s down after %.2f s", instance.name, time.monotonic() - started)
    return 0


def _command_status(args: argparse.Namespace) -> int:
    rows = []
    for instance in list_instances():
        rows.append(
            {
                "name": instance.name,
                "alive": instance.is_alive(),
                "nspawn_pid": instance.nspawn_pid,
                "init_pid": instance.init_pid,
                "system_state": instance.system_state,
                "root": str(instance.root),
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'NAME':<20} {'ALIVE':<6} {'NSPAWN_PID':>10} {'INIT_PID':>9} {'BOOT_STATE':<10} ROOT")
    for row in rows:
        print(
            f"{row['name']:<20} {'yes' if row['alive'] else 'no':<6} "
            f"{row['nspawn_pid'] or '-':>10} "
            f"{row['init_pid'] or '-':>9} {row['system_state'] or '-':<10} {row['root']}"
        )
    return 0


def _command_inventory(args: argparse.Namespace) -> int:
    sys.stdout.write(render_inventory(args.names, group=args.group, output_format=args.format))
    return 0


def _command_pid(args: argparse.Namespace) -> int:
    instance = Instance.attach(args.name)
    instance.require_running()
    print(instance.init_pid)
    return 0


_COMMANDS = {
    "build": _command_build,
    "up": _command_up,
    "exec": _command_exec,
    "down": _command_down,
    "status": _command_status,
    "inventory": _command_inventory,
    "pid": _command_pid,
}


def main(argv: list[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return _COMMANDS[args.command](args)
    except TestbedError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
