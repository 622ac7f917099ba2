"""Consistent online backup of the store with SQLite's backup API."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

__all__ = ["backup_database"]


def backup_database(source: Path, destination: Path) -> int:
    """Copy ``source`` to ``destination`` while leadd may be writing; return the size in bytes.

    The backup API copies a consistent snapshot (WAL content included) page
    by page; a plain file copy of a database in WAL mode can miss the last
    transactions or catch one half-written. The copy is written to a
    temporary file first and renamed, so ``destination`` is never partial.
    Raises FileNotFoundError when ``source`` does not exist.
    """
    if not source.is_file():
        raise FileNotFoundError(f"no store at {source}")
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".partial")
    partial.unlink(missing_ok=True)
    reader = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    writer = sqlite3.connect(partial)
    try:
        reader.execute("PRAGMA busy_timeout = 10000")
        reader.backup(writer)
        check = writer.execute("PRAGMA integrity_check").fetchone()[0]
        if check != "ok":
            raise sqlite3.DatabaseError(f"backup failed its integrity check: {check}")
    finally:
        writer.close()
        reader.close()
    os.replace(partial, destination)
    return destination.stat().st_size
