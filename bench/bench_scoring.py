"""Benchmarks of lead scoring, each against a baseline measured in the same run.

1. Model requests per scored lead for a 60-lead search at the default
   settings (20 leads per request).
2. Process start to port listening with scoring configured against the same
   daemon without it: the OpenAI SDK must not be imported at start-up. An
   eager import is timed too, to show the cost the lazy import avoids.
3. Scoring 60 leads against the OpenAI stand-in responding after 200 ms,
   against the critical path: the same batch requests sent by this script
   through the SDK, as many at once as leadd's concurrency allows.

The stand-ins run in this process; every place of the Places catalogue gets
a name, so all 60 leads are scorable.

Run: ``.venv/bin/python -m bench.bench_scoring``.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

from bench.common import free_port, leadd_env, median, start_process, time_to_listen, wait_listening
from bench.report import machine_line, write_section
from tests.standins.google_places import PlacesNewStandIn
from tests.standins.openai_chat import OPENAI_KEY, OpenAIChatStandIn

GOOGLE_KEY = "AIzaBenchKey0000000000000000000000000000"
LATENCY_S = 0.2
BATCH_SIZE = 20
RUNS = 7
SCORING_RUNS = 5
LEADD = [sys.executable, "-m", "leadd", "serve"]
# The daemon with the SDK imported before it starts: what an eager import would cost.
LEADD_EAGER = [sys.executable, "-c", "import sys, openai; from leadd.cli import main; sys.exit(main(['serve']))"]
PROFILE = "Restaurants with a website that could use online table booking"


def _name_every_place(places: PlacesNewStandIn) -> None:
    original = places.catalogue_place

    def named(index: int) -> dict[str, Any]:
        place = original(index)
        place.setdefault("displayName", {"text": f"Business {index}", "languageCode": "en"})
        return place

    places.catalogue_place = named  # type: ignore[method-assign]


def _seconds(start: str, end: str) -> float:
    parse = lambda text: datetime.fromisoformat(text.replace("Z", "+00:00"))  # noqa: E731
    return (parse(end) - parse(start)).total_seconds()


def _events(log_file: Path, event: str) -> list[dict[str, Any]]:
    lines = log_file.read_text("utf-8").splitlines() if log_file.exists() else []
    return [record for record in map(json.loads, lines) if record.get("event") == event]


def _wait_search(base: str, search_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        search = requests.get(f"{base}/v1/searches/{search_id}", timeout=10).json()
        if search["state"] not in ("queued", "running"):
            return search
        time.sleep(0.02)
    raise RuntimeError(f"search {search_id} did not finish within 60 s")


class _Daemon:
    """leadd with both stand-ins, logging JSON lines to a file this script reads."""

    def __init__(self, workdir: Path, places: PlacesNewStandIn, openai_url: str, **extra: str) -> None:
        self.port = free_port()
        self.log_file = workdir / "leadd.log"
        env = leadd_env(
            self.port,
            workdir,
            GOOGLE_PLACES_API_KEY=GOOGLE_KEY,
            LEADD_GOOGLE_PLACES_BASE_URL=places.url,
            OPENAI_API_KEY=OPENAI_KEY,
            OPENAI_BASE_URL=f"{openai_url}/v1",
            LEADD_LOG_FILE=str(self.log_file),
            **extra,
        )
        self.process = start_process(LEADD, env)
        wait_listening(self.port, self.process)
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 30
        while not _events(self.log_file, "scoring_client_ready"):
            if time.monotonic() > deadline:
                raise RuntimeError("the OpenAI SDK did not load within 30 s")
            time.sleep(0.05)

    def search(self, query: str, profile: str) -> dict[str, Any]:
        search = requests.post(f"{self.base}/v1/searches", json={"query": query, "profile": profile}, timeout=10).json()
        return _wait_search(self.base, search["id"])

    def scoring_seconds(self, search_id: str) -> float:
        started = next(e for e in _events(self.log_file, "scoring_started") if e.get("search_id") == search_id)
        finished = next(e for e in _events(self.log_file, "scoring_finished") if e.get("search_id") == search_id)
        return _seconds(started["timestamp"], finished["timestamp"])

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


def bench_requests_per_lead(workdir: Path, places: PlacesNewStandIn, openai: OpenAIChatStandIn) -> dict[str, float]:
    daemon = _Daemon(workdir / "requests", places, openai.url)
    try:
        before = len(openai.requests("chat"))
        search = daemon.search("restaurants", PROFILE)
    finally:
        daemon.stop()
    scoring = search["scoring"]
    assert scoring["leads_scored"] == 60, scoring
    return {
        "requests": scoring["usage"]["requests"],
        "sent": len(openai.requests("chat")) - before,
        "scored": scoring["leads_scored"],
        "tokens": scoring["usage"]["prompt_tokens"] + scoring["usage"]["completion_tokens"],
    }


def bench_scoring_time(
    workdir: Path, places: PlacesNewStandIn, openai: OpenAIChatStandIn, concurrency: int
) -> dict[str, float]:
    openai.configure(latency_s=LATENCY_S)
    daemon = _Daemon(workdir / f"time-{concurrency}", places, openai.url, LEADD_OPENAI_CONCURRENCY=str(concurrency))
    leadd_runs, path_runs = [], []
    try:
        for run in range(SCORING_RUNS):
            # A new profile each run, so no lead is a cache hit.
            before = len(openai.requests("chat"))
            search = daemon.search("restaurants", f"{PROFILE} (run {concurrency}-{run})")
            assert search["scoring"]["leads_scored"] == 60, search["scoring"]
            leadd_runs.append(daemon.scoring_seconds(search["id"]))
            bodies = [record.json for record in openai.requests("chat")[before:]]
            path_runs.append(asyncio.run(_critical_path(openai.url, bodies, concurrency)))
    finally:
        daemon.stop()
        openai.configure(latency_s=0.0)
    batches = math.ceil(60 / BATCH_SIZE)
    return {
        "leadd_s": median(leadd_runs),
        "path_s": median(path_runs),
        "ideal_s": math.ceil(batches / concurrency) * LATENCY_S,
        "batches": batches,
    }


async def _critical_path(url: str, bodies: list[dict[str, Any]], concurrency: int) -> float:
    """Send leadd's own request bodies again through the SDK, ``concurrency`` at a time."""
    import openai

    client = openai.AsyncOpenAI(
        api_key=OPENAI_KEY, base_url=f"{url}/v1", max_retries=0, http_client=openai.DefaultAioHttpClient()
    )
    slots = asyncio.Semaphore(concurrency)

    async def send(body: dict[str, Any]) -> None:
        async with slots:
            await client.chat.completions.create(**body)

    try:
        started = time.perf_counter()
        await asyncio.gather(*(send(body) for body in bodies))
        return time.perf_counter() - started
    finally:
        await client.close()


def bench_start(workdir: Path, openai_url: str) -> dict[str, float]:
    runs: dict[str, list[float]] = {"without": [], "with": [], "eager": []}
    for _ in range(RUNS + 3):
        for name, argv in (("without", LEADD), ("with", LEADD), ("eager", LEADD_EAGER)):
            port = free_port()
            extra = {} if name == "without" else {"OPENAI_API_KEY": OPENAI_KEY, "OPENAI_BASE_URL": f"{openai_url}/v1"}
            # One state folder per variant, reused, so migrations are not measured.
            runs[name].append(time_to_listen(argv, leadd_env(port, workdir / f"start-{name}", **extra), port))
    # The first runs warm the page cache; drop them.
    return {name: median(values[3:]) for name, values in runs.items()}


def main() -> None:
    places = PlacesNewStandIn(api_key=GOOGLE_KEY).start()
    _name_every_place(places)
    openai = OpenAIChatStandIn(api_key=OPENAI_KEY).start()
    try:
        with tempfile.TemporaryDirectory(prefix="leadd-bench-scoring-") as tmp:
            workdir = Path(tmp)
            per_lead = bench_requests_per_lead(workdir, places, openai)
            parallel = bench_scoring_time(workdir, places, openai, concurrency=4)
            serial = bench_scoring_time(workdir, places, openai, concurrency=1)
            start = bench_start(workdir, openai.url)
    finally:
        openai.stop()
        places.stop()

    per_lead_ratio = per_lead["requests"] / per_lead["scored"]
    start_ratio = start["with"] / start["without"]
    eager_ratio = start["eager"] / start["without"]
    parallel_ratio = parallel["leadd_s"] / parallel["path_s"]
    serial_ratio = serial["leadd_s"] / serial["path_s"]
    verdict = lambda ok: "met" if ok else "**missed**"  # noqa: E731
    ms = lambda seconds: f"{seconds * 1000:.0f} ms"  # noqa: E731
    markdown = f"""## Lead scoring (`bench/bench_scoring.py`)

{machine_line()}

| Measure | leadd | Baseline (same run) | Ratio | Goal |
|---|---|---|---|---|
| Model requests per scored lead, 60-lead search, {BATCH_SIZE} leads per request | {per_lead['requests']} requests for {per_lead['scored']} leads ({per_lead['tokens']} tokens) | | {per_lead_ratio:.3f} | ≤ 0.1: {verdict(per_lead_ratio <= 0.1)} |
| Process start to port listening, scoring configured (median of {RUNS}) | {ms(start['with'])} | same daemon without scoring: {ms(start['without'])} | {start_ratio:.2f}× | ≤ 1.05×: {verdict(start_ratio <= 1.05)} |
| The same with `openai` imported before start (what the lazy import avoids) | {ms(start['eager'])} | same daemon without scoring: {ms(start['without'])} | {eager_ratio:.2f}× | (for comparison) |
| Scoring 60 leads, 200 ms per model request, {parallel['batches']} batches, concurrency 4 (median of {SCORING_RUNS}) | {ms(parallel['leadd_s'])} | critical path, the same requests sent by this script 4 at a time: {ms(parallel['path_s'])} (ideal {ms(parallel['ideal_s'])}) | {parallel_ratio:.2f}× | ≤ 1.2×: {verdict(parallel_ratio <= 1.2)} |
| The same with concurrency 1 | {ms(serial['leadd_s'])} | the same requests one after another: {ms(serial['path_s'])} (ideal {ms(serial['ideal_s'])}) | {serial_ratio:.2f}× | ≤ 1.2×: {verdict(serial_ratio <= 1.2)} |

Scoring time is from leadd's `scoring_started` to `scoring_finished` log
lines (millisecond timestamps), after the SDK was loaded by the warm-up
task. The baseline replays leadd's own request bodies from this script
through the same SDK and aiohttp transport, so both sides pay the
stand-in's 200 ms and the same JSON; the difference is leadd's prompt
building, output parsing and store writes. Start-up is measured from
process start until the port accepts a TCP connection.
"""
    write_section("scoring", markdown)
    print(markdown)
    print(json.dumps({"per_lead": per_lead, "parallel": parallel, "serial": serial, "start": start}, indent=2))


if __name__ == "__main__":
    main()
