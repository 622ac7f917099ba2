"""A booted Debian 12 system with leadd installed as a release and Google stand-ins inside it."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator

import pytest

from tests.helpers import GOOGLE_KEY
from tests.standins.openai_chat import OPENAI_KEY
from tests.systemd.release import (
    REPO,
    SOURCE_IN_SYSTEM,
    WHEELHOUSE_IN_SYSTEM,
    build_wheelhouse,
    install_release,
    write_env,
)
from tests.testbed import Instance, TestbedError

PLACES_PORT = 8081
MAPS_PORT = 8082
OPENAI_PORT = 8083
LEADD_URL = "http://127.0.0.1:5057"

BASE_ENV = {
    "LEADD_HOST": "127.0.0.1",
    "LEADD_PORT": "5057",
    "LEADD_LOG_FILE": "/var/log/leadd/leadd.log",
    "LEADD_SHUTDOWN_TIMEOUT_S": "20",
    "LEADD_UPSTREAM_TIMEOUT_S": "10",
    "LEADD_UPSTREAM_BACKOFF_S": "0.05",
    "GOOGLE_PLACES_API_KEY": GOOGLE_KEY,
    "LEADD_GOOGLE_PLACES_BASE_URL": f"http://127.0.0.1:{PLACES_PORT}",
    "LEADD_GOOGLE_MAPS_BASE_URL": f"http://127.0.0.1:{MAPS_PORT}",
}


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "booted-systemd tests need root"
    for tool in ("systemd-nspawn", "nsenter"):
        if shutil.which(tool) is None:
            return f"{tool} not found: apt-get install systemd-container"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = _skip_reason()
    for item in items:
        if "tests/systemd/" in str(item.fspath):
            item.add_marker(pytest.mark.systemd)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


class System:
    """The booted system plus helpers to drive leadd and the stand-ins inside it."""

    def __init__(self, instance: Instance) -> None:
        self.instance = instance

    def run(self, command: str, check: bool = True, timeout: float = 60):
        return self.instance.run(command, check=check, timeout=timeout)

    def show(self, *properties: str, unit: str = "leadd") -> dict[str, str]:
        out = self.run(f"systemctl show {unit} " + " ".join(f"-p {p}" for p in properties)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def curl(self, path: str, *options: str, timeout: float = 30) -> tuple[int, str]:
        args = " ".join(options)
        result = self.run(
            f"curl -s -o /tmp/curl.out -w '%{{http_code}}' --max-time {timeout} {args} '{LEADD_URL}{path}'; cat /tmp/curl.out",
            check=False,
            timeout=timeout + 10,
        )
        code, body = result.stdout[:3], result.stdout[3:]
        return int(code) if code.isdigit() else 0, body

    def api(self, method: str, path: str, body: dict | None = None) -> dict:
        options = [f"-X {method}"]
        if body is not None:
            options.append(f"-H 'Content-Type: application/json' -d '{json.dumps(body)}'")
        code, text = self.curl(path, *options)
        assert 200 <= code < 300, f"{method} {path} -> {code}: {text}"
        return json.loads(text)

    def standin(self, port: int, route: str, data: dict, action: str = "faults") -> None:
        self.run(
            f"curl -sf -X POST -H 'Content-Type: application/json' -d '{json.dumps(data | ({'route': route} if route else {}))}' "
            f"http://127.0.0.1:{port}/_standin/{action}"
        )

    def journal(self, since_cursor: str | None = None, unit: str = "leadd") -> str:
        cursor = f"--after-cursor='{since_cursor}'" if since_cursor else ""
        return self.run(f"journalctl -u {unit} --no-pager -o cat {cursor}").stdout

    def cursor(self) -> str:
        out = self.run("journalctl -n 1 --show-cursor --no-pager -q").stdout
        lines = [line for line in out.splitlines() if line.startswith("-- cursor: ")]
        return lines[-1].removeprefix("-- cursor: ") if lines else ""

    def wait(self, condition, timeout: float = 30, interval: float = 0.2, what: str = "condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            time.sleep(interval)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{self.journal()[-3000:]}")

    def reset_unit(self, env: dict[str, str] | None = None) -> None:
        """Stop leadd, remove drop-ins and state, write the environment file."""
        self.run("systemctl stop leadd", check=False)
        self.run("rm -rf /etc/systemd/system/leadd.service.d /var/lib/leadd/* /var/log/leadd/*")
        self.run("systemctl daemon-reload && systemctl reset-failed leadd", check=False)
        write_env(self.instance, BASE_ENV | (env or {}))

    def drop_in(self, name: str, text: str) -> None:
        folder = self.instance.root / "etc/systemd/system/leadd.service.d"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.conf").write_text(text)
        self.run("systemctl daemon-reload")


@pytest.fixture(scope="package")
def system() -> Iterator[System]:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    wheelhouse = build_wheelhouse()
    instance = Instance(
        f"leadd-unit-{os.getpid()}",
        bind_ro=[f"{wheelhouse}:{WHEELHOUSE_IN_SYSTEM}", f"{REPO}:{SOURCE_IN_SYSTEM}"],
    )
    try:
        instance.up()
    except TestbedError as exc:
        pytest.fail(f"the test system did not boot: {exc}")
    try:
        install_release(instance)
        venv_python = "/opt/leadd/current/venv/bin/python"
        for name, port, key in (
            ("places_new", PLACES_PORT, GOOGLE_KEY),
            ("google_maps", MAPS_PORT, GOOGLE_KEY),
            ("openai_chat", OPENAI_PORT, OPENAI_KEY),
        ):
            instance.run(
                f"systemd-run --unit=standin-{name} --setenv=PYTHONPATH={SOURCE_IN_SYSTEM} "
                f"--working-directory={SOURCE_IN_SYSTEM} {venv_python} -m tests.standins {name} "
                f"--port {port} --api-key {key}"
            )
        system = System(instance)
        for port in (PLACES_PORT, MAPS_PORT, OPENAI_PORT):
            system.wait(
                lambda port=port: system.run(f"curl -sf -X POST http://127.0.0.1:{port}/_standin/reset", check=False).returncode == 0,
                what=f"the stand-in on port {port}",
            )
        yield system
    finally:
        instance.down()


@pytest.fixture
def leadd_unit(system: System) -> Iterator[System]:
    """A stopped leadd with a fresh environment file and state; stand-ins reset."""
    system.reset_unit()
    for port in (PLACES_PORT, MAPS_PORT, OPENAI_PORT):
        system.standin(port, "", {}, action="reset")
    yield system
    system.run("systemctl stop leadd", check=False)
