"""`leadd check-config`, `leadd version` and configuration rules, run as real commands."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from leadd import __version__
from tests.helpers import API_TOKEN, GOOGLE_KEY


def run_leadd(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    base = {"PATH": "/usr/bin:/bin", "HOME": str(cwd), "LEADD_STATE_DIR": str(cwd / "state")}
    return subprocess.run(
        [sys.executable, "-m", "leadd", *args], env=base | env, cwd=cwd, capture_output=True, text=True, timeout=60
    )


def test_check_config_valid_shows_secrets_as_state(tmp_path):
    result = run_leadd(["check-config"], {"GOOGLE_PLACES_API_KEY": GOOGLE_KEY, "LEADD_API_TOKEN": API_TOKEN}, tmp_path)

    assert result.returncode == 0, result.stderr
    lines = dict(line.split(None, 1) for line in result.stdout.splitlines() if line.startswith(("GOOGLE", "LEADD_API")))
    assert lines["GOOGLE_PLACES_API_KEY"].strip() == "configured"
    assert lines["LEADD_API_TOKEN"].strip() == "configured"
    assert GOOGLE_KEY not in result.stdout + result.stderr
    assert API_TOKEN not in result.stdout + result.stderr
    assert "LEADD_PORT" in result.stdout


def test_check_config_empty_osm_urls_disabled(tmp_path):
    result = run_leadd(["check-config"], {"LEADD_OVERPASS_URL": "", "LEADD_NOMINATIM_URL": ""}, tmp_path)

    assert result.returncode == 0, result.stderr
    lines = dict(line.split(None, 1) for line in result.stdout.splitlines() if line.startswith("LEADD_"))
    assert lines["LEADD_OVERPASS_URL"].strip() == "(disabled)"
    assert lines["LEADD_NOMINATIM_URL"].strip() == "(disabled)"
    assert lines["LEADD_LOG_FILE"].strip() == "(unset)"


def test_check_config_missing_secret_shown_as_missing(tmp_path):
    result = run_leadd(["check-config"], {}, tmp_path)

    assert result.returncode == 0, result.stderr
    assert any(line.split() == ["GOOGLE_PLACES_API_KEY", "missing"] for line in result.stdout.splitlines())
    assert "(default provider)" in result.stdout


def test_check_config_lists_every_problem_and_exits_78(tmp_path):
    env = {
        "LEADD_PORT": "70000",
        "LEADD_LOG_LEVEL": "verbose",
        "LEADD_HOST": "0.0.0.0",
        "LEADD_CORS_ORIGINS": "*",
        "GOOGLE_PLACES_API_KEY": "not-a-google-key",
    }

    result = run_leadd(["check-config"], env, tmp_path)

    assert result.returncode == 78
    named = {line.split(":")[0].strip() for line in result.stderr.splitlines()[1:]}
    assert named == {"LEADD_PORT", "LEADD_LOG_LEVEL", "LEADD_API_TOKEN", "LEADD_CORS_ORIGINS", "GOOGLE_PLACES_API_KEY"}
    assert "not-a-google-key" not in result.stderr
    assert "openssl rand -hex 32" in result.stderr


def test_check_config_reads_env_file_and_environment_wins(tmp_path):
    (tmp_path / ".env").write_text("LEADD_PORT=6001\nLEADD_LOG_LEVEL=debug\n")

    result = run_leadd(["check-config"], {"LEADD_LOG_LEVEL": "warning"}, tmp_path)

    assert result.returncode == 0, result.stderr
    assert any(line.split() == ["LEADD_PORT", "6001"] for line in result.stdout.splitlines())
    assert any(line.split() == ["LEADD_LOG_LEVEL", "warning"] for line in result.stdout.splitlines())


def test_dot_env_ignored_under_systemd(tmp_path):
    (tmp_path / ".env").write_text("LEADD_PORT=6001\n")

    result = run_leadd(["check-config"], {"INVOCATION_ID": "0123456789abcdef"}, tmp_path)

    assert result.returncode == 0, result.stderr
    assert any(line.split() == ["LEADD_PORT", "5057"] for line in result.stdout.splitlines())


def test_check_config_invalid_still_warns_unknown(tmp_path):
    result = run_leadd(["check-config"], {"LEADD_MAX_CONCURRENT_SEARCHES": "zero", "LEADD_PROT": "8080"}, tmp_path)

    assert result.returncode == 78
    assert "LEADD_MAX_CONCURRENT_SEARCHES" in result.stderr
    assert "LEADD_PROT: unknown variable, ignored; did you mean LEADD_PORT?" in result.stderr


def test_check_config_missing_env_file_is_78(tmp_path):
    result = run_leadd(["check-config", "--env-file", str(tmp_path / "absent.env")], {}, tmp_path)

    assert result.returncode == 78
    assert "absent.env does not exist" in result.stderr


def test_check_config_warns_about_unknown_variables(tmp_path):
    result = run_leadd(["check-config"], {"LEADD_PROT": "6000"}, tmp_path)

    assert result.returncode == 0
    assert "LEADD_PROT: unknown variable, ignored; did you mean LEADD_PORT?" in result.stderr


def test_check_config_unwritable_state_dir_is_78(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")

    result = run_leadd(["check-config"], {"LEADD_STATE_DIR": str(blocker / "state")}, tmp_path)

    assert result.returncode == 78
    assert "LEADD_STATE_DIR" in result.stderr


def test_check_config_creates_no_state_dir(tmp_path):
    state = tmp_path / "not" / "yet" / "there"

    result = run_leadd(["check-config"], {"LEADD_STATE_DIR": str(state)}, tmp_path)

    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "not").exists()


def test_provider_needs_key(tmp_path):
    result = run_leadd(["check-config"], {"LEADD_PLACES_PROVIDER": "places_legacy"}, tmp_path)

    assert result.returncode == 78
    assert "GOOGLE_PLACES_API_KEY: missing" in result.stderr


def test_version_commands(tmp_path):
    assert run_leadd(["version"], {}, tmp_path).stdout.strip() == f"leadd {__version__}"
    assert run_leadd(["--version"], {}, tmp_path).stdout.strip() == f"leadd {__version__}"
