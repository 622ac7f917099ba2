"""leadd.service in a booted systemd: readiness, watchdog, restarts, memory limit, stop, logs, hardening."""

from __future__ import annotations

import json
import re

from tests.systemd.conftest import MAPS_PORT, OPENAI_PORT, PLACES_PORT, System
from tests.standins.openai_chat import OPENAI_KEY


def test_unit_file_verifies(system: System):
    result = system.run("systemd-analyze verify /etc/systemd/system/leadd.service", check=False)

    assert result.returncode == 0, result.stderr
    assert "leadd.service" not in result.stderr, result.stderr


def test_security_exposure_within_target(system: System):
    output = system.run("systemd-analyze security --no-pager leadd.service").stdout

    match = re.search(r"Overall exposure level for leadd\.service: ([0-9.]+)", output)
    assert match, output[-500:]
    assert float(match.group(1)) <= 1.5, output


def test_start_returns_after_ready_with_status(leadd_unit: System):
    leadd_unit.run("systemctl start leadd")

    state = leadd_unit.show("ActiveState", "SubState", "StatusText", "Type", "NRestarts")
    code, body = leadd_unit.curl("/health")

    # For Type=notify the unit stays "activating" until READY=1 arrives.
    assert state["ActiveState"] == "active"
    assert state["SubState"] == "running"
    assert code == 200, body
    assert json.loads(body)["release"] == "test"
    assert state["StatusText"].startswith("serving 127.0.0.1:5057; 0 running, 0 queued; last error: none")
    status = leadd_unit.run("systemctl status leadd --no-pager", check=False).stdout
    assert "Status: \"serving 127.0.0.1:5057" in status


def test_journal_lines_are_json(leadd_unit: System):
    leadd_unit.run("systemctl start leadd")
    leadd_unit.curl("/health")
    leadd_unit.curl("/v1/nothing")
    leadd_unit.run("systemctl stop leadd")

    # `-u leadd` also shows systemd's own lines about the unit ("Starting
    # leadd.service..."); every line leadd itself wrote must be JSON.
    lines = [
        line
        for line in leadd_unit.run("journalctl _SYSTEMD_UNIT=leadd.service --no-pager -o cat").stdout.splitlines()
        if line.strip()
    ]
    everything = leadd_unit.journal().splitlines()

    assert len(lines) >= 4
    assert len(everything) > len(lines)
    for line in lines:
        record = json.loads(line)
        assert {"timestamp", "level", "logger", "message", "event"} <= record.keys()
    events = [json.loads(line)["event"] for line in lines]
    assert "daemon_ready" in events
    assert "daemon_stopped" in events
    # Errors reach journald with their priority (the <3> prefix), warnings and info too.
    priorities = leadd_unit.run("journalctl -u leadd -o json --no-pager | python3 -c \"import sys,json; print(sorted({json.loads(l)['PRIORITY'] for l in sys.stdin}))\"").stdout
    assert "'6'" in priorities


def test_sigstop_triggers_watchdog_restart(leadd_unit: System):
    leadd_unit.drop_in("watchdog", "[Service]\nWatchdogSec=3\n")
    leadd_unit.run("systemctl start leadd")
    before = leadd_unit.show("MainPID", "NRestarts")

    leadd_unit.run(f"kill -STOP {before['MainPID']}")
    leadd_unit.wait(
        lambda: leadd_unit.show("NRestarts")["NRestarts"] != before["NRestarts"]
        and leadd_unit.show("ActiveState")["ActiveState"] == "active",
        timeout=3 + 15,
        what="the watchdog restart",
    )

    after = leadd_unit.show("MainPID", "NRestarts")
    assert after["MainPID"] != before["MainPID"]
    assert int(after["NRestarts"]) == int(before["NRestarts"]) + 1
    system_journal = leadd_unit.run("journalctl -u leadd --no-pager", check=False).stdout
    assert "Watchdog timeout" in system_journal
    assert leadd_unit.curl("/health")[0] == 200


def test_kill_9_restarts_and_search_completes(leadd_unit: System):
    leadd_unit.run("systemctl start leadd")
    leadd_unit.standin(PLACES_PORT, "", {"latency_s": 0.7}, action="config")
    search = leadd_unit.api("POST", "/v1/searches", {"query": "roofing contractors"})
    leadd_unit.wait(
        lambda: leadd_unit.api("GET", f"/v1/searches/{search['id']}")["progress"]["leads_stored"] >= 20,
        what="the first page",
    )
    before = leadd_unit.show("MainPID", "NRestarts")

    leadd_unit.run(f"kill -9 {before['MainPID']}")
    leadd_unit.wait(
        lambda: leadd_unit.show("NRestarts")["NRestarts"] != before["NRestarts"]
        and leadd_unit.curl("/health")[0] == 200,
        what="the restart after kill -9",
    )
    done = leadd_unit.wait(
        lambda: (s := leadd_unit.api("GET", f"/v1/searches/{search['id']}"))["state"] == "succeeded" and s,
        what="the search to finish",
    )

    assert done["progress"]["leads_stored"] == 60
    assert done["attempts"] == 2
    assert leadd_unit.show("MainPID")["MainPID"] != before["MainPID"]
    # A legacy search imports googlemaps and requests under the sandbox too.
    legacy = leadd_unit.api("POST", "/v1/searches", {"query": "pizza", "provider": "places_legacy", "max_results": 3})
    finished = leadd_unit.wait(
        lambda: (s := leadd_unit.api("GET", f"/v1/searches/{legacy['id']}"))["state"] in ("succeeded", "failed") and s,
        what="the legacy search",
    )
    assert finished["state"] == "succeeded", finished


def test_memory_max_kills_until_start_limit(leadd_unit: System):
    leadd_unit.drop_in("memory", "[Service]\nMemoryHigh=infinity\nMemoryMax=20M\nRestartSec=200ms\n")

    leadd_unit.run("systemctl start leadd", check=False)
    leadd_unit.wait(
        lambda: leadd_unit.show("ActiveState")["ActiveState"] == "failed",
        timeout=60,
        what="the start limit to stop the restart loop",
    )

    state = leadd_unit.show("Result", "NRestarts", "ExecMainStatus", "ExecMainCode")
    # On cgroup v1 hosts the kill shows as SIGKILL (signal), not oom-kill.
    assert state["Result"] in ("oom-kill", "signal", "start-limit-hit"), state
    assert int(state["NRestarts"]) >= 4
    log = leadd_unit.run("journalctl -u leadd --no-pager", check=False).stdout
    assert "Start request repeated too quickly" in log or "start-limit-hit" in log
    assert re.search(r"(status=9/KILL|oom-kill|out of memory)", log, re.I), log[-2000:]


def test_bad_config_exits_78_without_restart(leadd_unit: System):
    leadd_unit.reset_unit({"LEADD_PORT": "not-a-port"})

    result = leadd_unit.run("systemctl start leadd", check=False)

    assert result.returncode != 0
    state = leadd_unit.show("ExecMainStatus", "NRestarts", "ActiveState", "Result")
    assert state["ExecMainStatus"] == "78"
    assert state["NRestarts"] == "0"
    assert state["ActiveState"] == "failed"
    journal = leadd_unit.journal()
    assert "LEADD_PORT" in journal
    problems = [json.loads(line) for line in journal.splitlines() if '"config_invalid"' in line]
    assert problems[0]["variable"] == "LEADD_PORT"


def test_stop_waits_for_slow_requests(leadd_unit: System):
    leadd_unit.run("systemctl start leadd")
    leadd_unit.standin(MAPS_PORT, "geocode", {"kind": "delay", "seconds": 3, "count": 5})
    for index in range(5):
        leadd_unit.run(
            f"(curl -s -o /tmp/slow-{index}.out -w '%{{http_code}}' --max-time 30 "
            f"'http://127.0.0.1:5057/v1/geocode?location=Town+{index}' > /tmp/slow-{index}.code) >/dev/null 2>&1 &"
        )
    leadd_unit.wait(
        lambda: "geocode" in leadd_unit.run(f"curl -s http://127.0.0.1:{MAPS_PORT}/_standin/requests?route=geocode").stdout
        and len(json.loads(leadd_unit.run(f"curl -s http://127.0.0.1:{MAPS_PORT}/_standin/requests?route=geocode").stdout)) == 5,
        what="five slow requests in flight",
    )

    leadd_unit.run("systemctl stop leadd", timeout=60)

    codes = [leadd_unit.run(f"cat /tmp/slow-{index}.code").stdout for index in range(5)]
    assert codes == ["200"] * 5
    state = leadd_unit.show("ExecMainStatus", "Result", "ActiveState")
    assert state["ExecMainStatus"] == "0"
    assert state["Result"] == "success"
    assert state["ActiveState"] == "inactive"


def test_logrotate_loses_no_line(leadd_unit: System):
    leadd_unit.run("systemctl start leadd")
    assert "error" not in leadd_unit.run("logrotate -d /etc/logrotate.d/leadd 2>&1").stdout.lower()
    total = 300
    leadd_unit.run(
        "(for i in $(seq 1 %d); do curl -s -o /dev/null -H \"X-Request-ID: rot-$i\" http://127.0.0.1:5057/health; done; "
        "touch /tmp/requests.done) >/dev/null 2>&1 &" % total
    )
    for _ in range(2):
        leadd_unit.wait(lambda: int(leadd_unit.run("wc -l < /var/log/leadd/leadd.log 2>/dev/null || echo 0").stdout.strip() or 0) > 30, what="log lines")
        leadd_unit.run("logrotate -f /etc/logrotate.d/leadd")
    leadd_unit.wait(lambda: leadd_unit.run("test -e /tmp/requests.done", check=False).returncode == 0, timeout=120, what="the requests")
    leadd_unit.run("systemctl stop leadd")

    text = leadd_unit.run("cd /var/log/leadd && for f in leadd.log*; do case $f in *.gz) zcat $f;; *) cat $f;; esac; done").stdout
    ids = [json.loads(line).get("request_id") for line in text.splitlines() if line.strip()]
    for index in range(1, total + 1):
        assert ids.count(f"rot-{index}") == 1, f"rot-{index} appears {ids.count(f'rot-{index}')} times"
    files = leadd_unit.run("ls /var/log/leadd").stdout.split()
    assert "leadd.log" in files
    assert "leadd.log.1" in files
    owner = leadd_unit.run("stat -c '%U %a' /var/log/leadd/leadd.log").stdout.strip()
    assert owner == "leadd 640"


def test_osm_import_and_scoring_in_sandbox(leadd_unit: System):
    # pyosmium (C++), the OpenAI SDK and its aiohttp transport load under
    # MemoryDenyWriteExecute and the system call filter too.
    leadd_unit.reset_unit(
        {
            "LEADD_OSM_IMPORT_BUNDLED": "true",
            "LEADD_OVERPASS_URL": "",
            "LEADD_NOMINATIM_URL": "",
            "OPENAI_API_KEY": OPENAI_KEY,
            "OPENAI_BASE_URL": f"http://127.0.0.1:{OPENAI_PORT}/v1",
        }
    )
    leadd_unit.run("systemctl start leadd")

    search = leadd_unit.api(
        "POST",
        "/v1/searches",
        {"query": "cafe", "location": "Helsinki", "provider": "osm", "max_results": 20, "profile": "cafes that serve lunch"},
    )
    done = leadd_unit.wait(
        lambda: (s := leadd_unit.api("GET", f"/v1/searches/{search['id']}"))["state"] in ("succeeded", "failed") and s,
        what="the scored OpenStreetMap search",
    )

    assert done["state"] == "succeeded", done
    assert done["progress"]["leads_stored"] == 20
    assert done["scoring"]["state"] == "done", done["scoring"]
    assert done["scoring"]["leads_scored"] >= 1
    leads = leadd_unit.api("GET", f"/v1/searches/{search['id']}/leads?sort=-score")["items"]
    assert leads[0]["score"] is not None
    assert leads[0]["attribution"] == "© OpenStreetMap contributors"
    assert leadd_unit.show("NRestarts")["NRestarts"] == "0"
