"""Versioned, additive schema migrations.

Migrations are the files ``migrations/NNNN_name.sql``, applied in order, each
in its own transaction, and recorded in ``schema_migrations``. They only add
(tables, nullable columns or columns with defaults, indexes), never drop,
rename or tighten, so the previous release keeps working on a newer schema
after a rollback: it finds versions it does not know and ignores them.
``tests/test_store_migrations.py`` rejects a migration that breaks the rule.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources

__all__ = ["Migration", "apply_migrations", "known_migrations"]

log = logging.getLogger(__name__)

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def known_migrations() -> list[Migration]:
    """Return the migrations shipped with this release, oldest first."""
    migrations = []
    for entry in resources.files("leadd.store").joinpath("migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            migrations.append(Migration(int(match.group(1)), match.group(2), entry.read_text("utf-8")))
    migrations.sort(key=lambda migration: migration.version)
    versions = [migration.version for migration in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise RuntimeError(f"migration versions must run 1..N without gaps, found {versions}")
    return migrations


def apply_migrations(conn: sqlite3.Connection, on_migration: Callable[[int, str], None] | None = None) -> int:
    """Apply pending migrations and return the schema version now in the file.

    ``on_migration(version, name)`` is called before each migration runs, so
    the caller can tell systemd that start-up takes longer.
    """
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    applied = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
    for migration in known_migrations():
        if migration.version in applied:
            continue
        if on_migration is not None:
            on_migration(migration.version, migration.name)
        log.info(
            "applying store migration %04d_%s",
            migration.version,
            migration.name,
            extra={"event": "store_migration_applying", "version": migration.version},
        )
        conn.execute("BEGIN IMMEDIATE")
        try:
            _execute_script(conn, migration.sql)
            conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, datetime.now(UTC).isoformat()),
            )
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    version = max(applied | {m.version for m in known_migrations()}, default=0)
    newest_known = len(known_migrations())
    if version > newest_known:
        log.warning(
            "store schema version %d is newer than this release knows (%d); "
            "running on it, as migrations only add",
            version,
            newest_known,
            extra={"event": "store_schema_newer", "version": version, "known": newest_known},
        )
    return version


def _execute_script(conn: sqlite3.Connection, sql: str) -> None:
    # executescript() would COMMIT the open transaction first; run each
    # statement separately so a migration is all or nothing.
    statement = ""
    for line in sql.splitlines(keepends=True):
        if line.lstrip().startswith("--"):
            continue
        statement += line
        if sqlite3.complete_statement(statement):
            conn.execute(statement)
            statement = ""
    if statement.strip():
        raise sqlite3.OperationalError(f"incomplete SQL statement at the end of a migration: {statement[:80]!r}")
