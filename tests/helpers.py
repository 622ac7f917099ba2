"""A real leadd process for tests, and an HTTP client that checks every response against the OpenAPI document."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

import requests
from openapi_core import Config, OpenAPI
from openapi_core.deserializing.media_types.util import json_loads
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse

__all__ = ["ApiClient", "DaemonProcess", "assert_no_secrets", "free_port", "wait_for"]

REPO = Path(__file__).resolve().parent.parent
OPENAPI_PATH = REPO / "leadd" / "api" / "openapi.yaml"

# Test credentials: every log line and response is checked for them.
GOOGLE_KEY = "AIzaStandInKey000000000000000000000000"
API_TOKEN = "test-token-0123456789abcdef"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05, what: str = "condition") -> Any:
    """Poll ``condition()`` until it returns a truthy value; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def assert_no_secrets(texts: Iterable[str], secrets: Iterable[str]) -> None:
    secrets = [secret for secret in secrets if secret]
    for text in texts:
        for secret in secrets:
            assert secret not in text, f"a secret leaked into: {text[:300]!r}"


@lru_cache(maxsize=1)
def _openapi() -> OpenAPI:
    config = Config(extra_media_type_deserializers={"application/problem+json": json_loads})
    return OpenAPI.from_file_path(str(OPENAPI_PATH), config=config)


class ApiClient:
    """requests with a base URL; every response is validated against openapi.yaml."""

    def __init__(self, base_url: str, token: str | None = None, validate: bool = True) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        self.validate = validate
        self.bodies: list[str] = []
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 30)
        response = self.session.request(method, self.base_url + path, **kwargs)
        self.bodies.append(response.text)
        if self.validate:
            self.check_contract(response)
        return response

    def check_contract(self, response: requests.Response) -> None:
        assert "X-Request-ID" in response.headers, f"no X-Request-ID on {response.request.method} {response.url}"
        # A 503 from /health/detailed is its usual body; every other error is a problem.
        if response.status_code >= 400 and not response.url.endswith("/health/detailed"):
            assert response.headers["Content-Type"].startswith("application/problem+json"), response.text
        if response.status_code == 405 or response.request.method == "OPTIONS":
            return  # methods outside the API have no operation in the document
        if response.status_code == 404 and response.json().get("code") == "not_found":
            return  # neither have paths outside it
        openapi_request = RequestsOpenAPIRequest(response.request)
        openapi_response = RequestsOpenAPIResponse(response)
        # Only the response is checked: tests send invalid requests on purpose.
        result = _openapi().unmarshal_response(openapi_request, openapi_response)
        if result.errors:
            details = "; ".join(str(getattr(error, "schema_errors", error)) for error in result.errors)
            raise AssertionError(
                f"{response.request.method} {response.url} -> {response.status_code} does not match openapi.yaml: "
                f"{result.errors[0]} {details}\n{response.text[:500]}"
            )

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)

    def submit(self, **search: Any) -> dict[str, Any]:
        response = self.post("/v1/searches", json=search)
        assert response.status_code == 202, response.text
        return response.json()

    def wait_search(self, search_id: str, states: tuple[str, ...] = ("succeeded", "failed", "cancelled"), timeout: float = 30) -> dict[str, Any]:
        def finished() -> dict[str, Any] | None:
            search = self.get(f"/v1/searches/{search_id}").json()
            return search if search["state"] in states else None

        return wait_for(finished, timeout=timeout, interval=0.1, what=f"search {search_id} to reach {states}")


class DaemonProcess:
    """``leadd serve`` in a subprocess with its own state folder, port and log file."""

    def __init__(self, workdir: Path, env: dict[str, str] | None = None, port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.state_dir = workdir / "state"
        self.log_path = workdir / "daemon.log"
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(workdir),
            "LEADD_HOST": "127.0.0.1",
            "LEADD_PORT": str(self.port),
            "LEADD_STATE_DIR": str(self.state_dir),
            "LEADD_LOG_LEVEL": "info",
            "LEADD_UPSTREAM_TIMEOUT_S": "2",
            "LEADD_UPSTREAM_BACKOFF_S": "0.05",
            "LEADD_SHUTDOWN_TIMEOUT_S": "5",
            # Nothing listens on port 9 of loopback: a test that does not
            # point OpenStreetMap searches at a stand-in stays offline.
            "LEADD_OVERPASS_URL": "http://127.0.0.1:9/api/interpreter",
            "LEADD_NOMINATIM_URL": "http://127.0.0.1:9",
            "PYTHONUNBUFFERED": "1",
        }
        if os.environ.get("PYTHONPATH"):
            self.env["PYTHONPATH"] = os.environ["PYTHONPATH"]
        self.env.update(env or {})
        self.process: subprocess.Popen[bytes] | None = None
        self._log_file: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait: bool = True, timeout: float = 20) -> DaemonProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._log_file = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "leadd", "serve"],
            cwd=self.workdir,
            env=self.env,
            stdout=self._log_file,
            stderr=self._log_file,
        )
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 20) -> None:
        def ready() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"leadd exited with {self.process.returncode}:\n{self.log_text()[-3000:]}")
            try:
                return requests.get(self.url + "/health", timeout=1).status_code == 200
            except requests.RequestException:
                return False

        wait_for(ready, timeout=timeout, what="leadd to answer /health")

    def client(self, token: str | None = None, validate: bool = True) -> ApiClient:
        return ApiClient(self.url, token=token or self.env.get("LEADD_API_TOKEN"), validate=validate)

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM and wait; return the exit status."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            status = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            status = self.process.wait(10)
            raise AssertionError(f"leadd did not stop within {timeout} s after SIGTERM") from None
        finally:
            self._close_log()
        return status

    def kill(self) -> None:
        """SIGKILL, as the OOM killer or a power loss would."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)
        self._close_log()

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def log_text(self) -> str:
        return self.log_path.read_text("utf-8", errors="replace") if self.log_path.exists() else ""

    def log_records(self) -> list[dict[str, Any]]:
        """Every log line parsed as JSON; a line that is not JSON fails the test."""
        records = []
        for line in self.log_text().splitlines():
            if line.strip():
                try:
                    records.append(json.loads(line))
                except ValueError:
                    raise AssertionError(f"log line is not JSON: {line!r}") from None
        return records

    def events(self, event: str) -> list[dict[str, Any]]:
        return [record for record in self.log_records() if record.get("event") == event]
