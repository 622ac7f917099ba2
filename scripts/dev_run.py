"""Run leadd for development: start it, submit a sample search, print the leads, keep serving.

`make run` calls this. It needs no API key and no internet: the sample
search uses OpenStreetMap data bundled with leadd. Settings come from the
environment and ./.env as usual; the state folder defaults to ./var/state.
The live OpenStreetMap services (Overpass, Nominatim) stay off unless
LEADD_OVERPASS_URL or LEADD_NOMINATIM_URL is set, so the sample search
uses only the bundled data and never tries the network. Stop with Ctrl-C.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from dotenv import dotenv_values

REPO = Path(__file__).resolve().parent.parent
SAMPLE = {"query": "cafe", "location": "Helsinki", "provider": "osm", "max_results": 10}
START_TIMEOUT_S = 60
SEARCH_TIMEOUT_S = 60


def _settings() -> dict[str, str]:
    values = {key: value for key, value in dotenv_values(REPO / ".env").items() if value is not None}
    values.update(os.environ)
    values.setdefault("LEADD_STATE_DIR", str(REPO / "var" / "state"))
    values.setdefault("LEADD_LOG_FILE", str(REPO / "var" / "leadd.log"))
    values.setdefault("LEADD_OVERPASS_URL", "")
    values.setdefault("LEADD_NOMINATIM_URL", "")
    return values


def _call(base: str, method: str, path: str, token: str | None, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _port_taken(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _wait_ready(base: str, daemon: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            sys.exit(f"leadd exited with status {daemon.returncode}; see the log lines above")
        try:
            _call(base, "GET", "/health", None)
            return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.2)
    daemon.terminate()
    sys.exit(f"leadd did not answer {base}/health within {START_TIMEOUT_S} s")


def _run_sample(base: str, token: str | None) -> None:
    search = _call(base, "POST", "/v1/searches", token, SAMPLE)
    print(f"\nSample search {search['id']}: {SAMPLE['query']!r} near {SAMPLE['location']!r} (OpenStreetMap)")
    deadline = time.monotonic() + SEARCH_TIMEOUT_S
    while search["state"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.3)
        search = _call(base, "GET", f"/v1/searches/{search['id']}", token)
    if search["state"] != "succeeded":
        print(f"The sample search ended {search['state']}: {search.get('error')}")
        return
    for warning in search["warnings"]:
        print(f"note: {warning}")
    leads = _call(base, "GET", f"/v1/searches/{search['id']}/leads?limit=10", token)["items"]
    print(f"{search['progress']['leads_stored']} leads; the first {len(leads)}:\n")
    for lead in leads:
        contact = lead["phone"] or lead["website"] or ""
        print(f"  {(lead['name'] or '?')[:40]:40}  {contact}")
    if leads:
        print(f"\n  {leads[0]['attribution']}")
    auth = " -H \"Authorization: Bearer $LEADD_API_TOKEN\"" if token else ""
    print(
        f"\nTry:\n  curl -s{auth} '{base}/v1/searches/{search['id']}/leads?format=csv'\n"
        f"  curl -s{auth} -X POST {base}/v1/searches -H 'Content-Type: application/json' "
        "-d '{\"query\": \"bakery\", \"location\": \"Helsinki\"}'\n"
    )


def _show_problems(daemon: subprocess.Popen[bytes]) -> None:
    """Print the daemon's warnings and errors readably; every line is in the log file too."""
    assert daemon.stderr is not None
    for raw in daemon.stderr:
        try:
            record = json.loads(raw)
        except ValueError:
            print(raw.decode(errors="replace").rstrip(), file=sys.stderr)
            continue
        if record.get("level") in ("warning", "error", "critical"):
            print(f"leadd {record['level']}: {record.get('message')}", file=sys.stderr)


def main() -> int:
    settings = _settings()
    host = settings.get("LEADD_HOST", "127.0.0.1")
    port_text = settings.get("LEADD_PORT", "5057")
    token = settings.get("LEADD_API_TOKEN") or None
    if not port_text.isdigit():
        # leadd itself rejects it too; report it before building a URL from it.
        sys.exit(f"LEADD_PORT={port_text!r} is not a port number; set a number from 1 to 65535")
    if _port_taken(host if host not in ("0.0.0.0", "::") else "127.0.0.1", int(port_text)):
        sys.exit(f"something already listens on {host}:{port_text}: stop the other leadd, or set LEADD_PORT in .env")
    base = f"http://{host}:{port_text}"
    Path(settings["LEADD_STATE_DIR"]).mkdir(parents=True, exist_ok=True)

    print(f"Starting leadd on {base} (state: {settings['LEADD_STATE_DIR']}, log: {settings['LEADD_LOG_FILE']})")
    daemon = subprocess.Popen(
        [sys.executable, "-m", "leadd", "serve"], env=settings, cwd=REPO, stderr=subprocess.PIPE
    )
    threading.Thread(target=_show_problems, args=(daemon,), daemon=True).start()
    signal.signal(signal.SIGINT, lambda *_: daemon.send_signal(signal.SIGTERM))
    signal.signal(signal.SIGTERM, lambda *_: daemon.send_signal(signal.SIGTERM))
    _wait_ready(base, daemon)
    try:
        _run_sample(base, token)
    except (urllib.error.URLError, ConnectionError, KeyError) as exc:
        print(f"The sample search could not run: {exc}")
    if not settings["LEADD_OVERPASS_URL"]:
        print("Live OpenStreetMap searches are off: set LEADD_OVERPASS_URL and LEADD_NOMINATIM_URL in .env to use them.")
    print(f"leadd is serving on {base}; the API is described at {base}/openapi.yaml. Stop with Ctrl-C.")
    status = daemon.wait()
    print(f"leadd stopped (exit status {status}).")
    return status


if __name__ == "__main__":
    sys.exit(main())
