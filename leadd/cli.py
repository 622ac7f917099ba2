"""Command line: ``leadd serve``, ``check-config``, ``backup``, ``import-osm``, ``version``."""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

from leadd import __version__
from leadd.config import (
    EX_CONFIG,
    ConfigError,
    ConfigProblem,
    Settings,
    load_settings,
    secret_variables,
    unknown_variables,
)
from leadd.logging import setup_logging

__all__ = ["main"]

log = logging.getLogger("leadd")


def _env_file(args: argparse.Namespace) -> Path | None:
    """Return the .env file to read: --env-file, else LEADD_ENV_FILE, else ./.env.

    Under systemd (which sets INVOCATION_ID) there is no implicit ./.env:
    the unit's EnvironmentFile= is the one source, so a stray file in the
    working directory cannot add settings.
    """
    if args.env_file:
        return Path(args.env_file)
    if os.environ.get("LEADD_ENV_FILE"):
        return Path(os.environ["LEADD_ENV_FILE"])
    if os.environ.get("INVOCATION_ID"):
        return None
    return Path(".env")


def _load(args: argparse.Namespace) -> Settings:
    env_file = _env_file(args)
    if env_file is None:
        return load_settings(env_file=None)
    if args.env_file and not env_file.is_file():
        raise ConfigError([ConfigProblem("--env-file", f"{env_file} does not exist")])
    return load_settings(env_file=env_file if env_file.is_file() else None)


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        settings = _load(args)
    except ConfigError as exc:
        # The secrets are read raw, as the settings did not validate.
        return _exit_invalid_config(exc.problems, [os.environ.get(name, "") for name in secret_variables()])

    try:
        redactor = setup_logging(settings.log_level.value, settings.log_file, settings.secret_values())
    except OSError as exc:
        problem = ConfigProblem(
            "LEADD_LOG_FILE", f"cannot open {settings.log_file}: {exc.strerror}; point it at a writable folder"
        )
        return _exit_invalid_config([problem], settings.secret_values())
    for warning in unknown_variables():
        log.warning(warning, extra={"event": "config_unknown_variable"})

    from leadd.daemon import Daemon
    from leadd.systemd import Notifier

    return asyncio.run(Daemon(settings, redactor, Notifier()).run())


def _exit_invalid_config(problems: list[ConfigProblem], secrets: list[str]) -> int:
    """Log each configuration problem as the daemon's JSON lines (so journald shows them alike); return 78."""
    setup_logging("info", secrets=secrets)
    for problem in problems:
        log.error("invalid configuration: %s", problem, extra={"event": "config_invalid", "variable": problem.variable})
    for warning in unknown_variables():
        log.warning(warning, extra={"event": "config_unknown_variable"})
    log.error(
        "not starting: fix the variables above (leadd check-config lists them)",
        extra={"event": "startup_failed", "exit_status": EX_CONFIG},
    )
    return EX_CONFIG


def _with_settings(command: Callable[[argparse.Namespace, Settings], int]) -> Callable[[argparse.Namespace], int]:
    """Load the settings for ``command``, or print every problem and return EX_CONFIG."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        try:
            settings = _load(args)
        except ConfigError as exc:
            print(exc.render(), file=sys.stderr)
            # A misspelt name often explains a missing or default value above.
            for warning in unknown_variables():
                print(f"warning: {warning}", file=sys.stderr)
            return EX_CONFIG
        return command(args, settings)

    return run


@_with_settings
def cmd_check_config(args: argparse.Namespace, settings: Settings) -> int:
    width = max(len(name) for name, _ in settings.describe())
    for name, shown in settings.describe():
        print(f"{name.ljust(width)}  {shown}")
    for warning in unknown_variables():
        print(f"warning: {warning}", file=sys.stderr)
    print("configuration is valid")
    return 0


@_with_settings
def cmd_backup(args: argparse.Namespace, settings: Settings) -> int:
    import sqlite3

    from leadd.store.backup import backup_database

    destination = Path(args.destination)
    try:
        size = backup_database(settings.database_path, destination)
    except (OSError, sqlite3.Error) as exc:
        print(f"backup failed: {exc}", file=sys.stderr)
        return 1
    print(f"backed up {settings.database_path} to {destination} ({size} bytes)")
    return 0


@_with_settings
def cmd_import_osm(args: argparse.Namespace, settings: Settings) -> int:
    from leadd.osm.bundled import run_import

    return run_import(settings, Path(args.file), args.region)


def _region(value: str) -> str:
    if len(value) != 2 or not value.isalpha():
        raise argparse.ArgumentTypeError(f"{value!r} is not an ISO 3166-1 alpha-2 country code such as FI")
    return value.upper()


def cmd_version(args: argparse.Namespace) -> int:
    print(f"leadd {__version__}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="leadd", description="Lead-generation daemon.")
    parser.add_argument("--version", action="version", version=f"leadd {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the daemon in the foreground")
    check = commands.add_parser("check-config", help="validate the configuration and print each setting")
    backup = commands.add_parser("backup", help="write a consistent copy of the store, also while leadd runs")
    backup.add_argument("destination", help="file to write (replaced atomically)")
    import_osm = commands.add_parser(
        "import-osm", help="import an OpenStreetMap extract (.osm.pbf) into the store, also while leadd runs"
    )
    import_osm.add_argument(
        "file", help="the extract: .osm.pbf or another format pyosmium reads, such as a Geofabrik download"
    )
    import_osm.add_argument(
        "--region",
        type=_region,
        metavar="CC",
        help="country (ISO 3166-1 alpha-2) of national phone numbers without addr:country; "
        "default: the most common addr:country in the file",
    )
    for command in (serve, check, backup, import_osm):
        command.add_argument(
            "--env-file",
            metavar="PATH",
            help="read variables from this file (default: LEADD_ENV_FILE, else ./.env when present); "
            "the environment wins over the file",
        )
    serve.set_defaults(handler=cmd_serve)
    check.set_defaults(handler=cmd_check_config)
    backup.set_defaults(handler=cmd_backup)
    import_osm.set_defaults(handler=cmd_import_osm)

    version = commands.add_parser("version", help="print the version")
    version.set_defaults(handler=cmd_version)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args))
