"""`leadd backup` while the daemon writes, and the release id that /health reports."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

from leadd import release


def test_backup_while_searching(leadd, google_env, places_new, tmp_path):
    daemon = leadd(google_env)
    client = daemon.client()
    places_new.configure(latency_s=0.3)
    search = client.submit(query="roofers")
    client.wait_search(search["id"], states=("running",))
    destination = tmp_path / "backups" / "leadd.sqlite3"

    result = subprocess.run(
        [sys.executable, "-m", "leadd", "backup", str(destination)],
        env=daemon.env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert "backed up" in result.stdout
    with sqlite3.connect(destination) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        searches = conn.execute("SELECT COUNT(*) FROM searches").fetchone()[0]
        versions = conn.execute("SELECT COUNT(*) FROM schema_migrations").fetchone()[0]
    assert searches == 1
    assert versions >= 1
    assert not destination.with_name("leadd.sqlite3.partial").exists()


def test_backup_without_store_fails(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "leadd", "backup", str(tmp_path / "out.sqlite3")],
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LEADD_STATE_DIR": str(tmp_path / "empty")},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 1
    assert "no store at" in result.stderr


def test_release_id_read_beside_venv(tmp_path, monkeypatch):
    (tmp_path / "venv").mkdir()
    (tmp_path / "RELEASE").write_text("0.1.0-abcdef123456\n")
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "venv"))
    release.release_id.cache_clear()
    try:
        assert release.release_id() == "0.1.0-abcdef123456"
    finally:
        release.release_id.cache_clear()


def test_release_id_absent_outside_release(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "venv"))
    release.release_id.cache_clear()
    try:
        assert release.release_id() is None
    finally:
        release.release_id.cache_clear()
