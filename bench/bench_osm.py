"""Benchmarks of the OpenStreetMap import and search, as ratios against baselines from the same run.

1. Import rate of ``leadd import-osm``'s import function over the bundled
   extract, against a bare pyosmium pass over the same file (a FileProcessor
   loop that touches every element and does nothing else).
2. Peak memory of an import in a fresh process, for the bundled extract and
   for a smaller real file cut from it with pyosmium (the southern half of
   its bounding box), against the bare pass over each file.
3. First start of the daemon with the bundled import, against a start with
   LEADD_OSM_IMPORT_BUNDLED=false.
4. Search latency through the HTTP API (submit, wait, read the leads),
   p50 and p99, against the same full-text query run directly on the store.

Run: ``.venv/bin/python -m bench.bench_osm``. The child modes (``child-import``,
``child-bare``) run one measurement in a fresh interpreter.
"""

from __future__ import annotations

import json
import resource
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import osmium
import requests

from bench.common import REPO, free_port, leadd_env, median, percentile, start_process, wait_listening
from bench.report import machine_line, write_section
from leadd.osm import BUNDLED_EXTRACT_REGION, bundled_extract_path, importer
from leadd.osm.importer import import_extract, open_store
from leadd.osm.search import search_local
from leadd.osm.vocabulary import parse_query

RUNS = 7
STARTS = 5
SEARCHES = 200
QUERIES = ["cafe", "restaurant", "dentist", "hotel", "bar", "clothes", "hairdresser", "bakery", "pharmacy", "lawyer"]
LOCATIONS = [None, "Senaatintori", "Kaartinkaupunki", "Helsinki"]
EXTRACT = bundled_extract_path()


def bare_pass(path: Path) -> int:
    """Touch every element of ``path`` once in Python; return how many there are."""
    count = 0
    for _ in osmium.FileProcessor(str(path)):
        count += 1
    return count


def bench_import_rate(path: Path, workdir: Path) -> dict[str, float]:
    elements = bare_pass(path)
    bare_times, import_times, leads = [], [], 0
    for run in range(RUNS):
        started = time.perf_counter()
        bare_pass(path)
        bare_times.append(time.perf_counter() - started)
        database = workdir / f"rate-{path.stem}-{run}.sqlite3"
        open_store(database).close()  # migrations are not part of the import
        started = time.perf_counter()
        result = import_extract(database, path, region=BUNDLED_EXTRACT_REGION)
        import_times.append(time.perf_counter() - started)
        leads = result.counts["inserted"]
    return {"elements": elements, "leads": leads, "bare_s": median(bare_times), "import_s": median(import_times)}


def cut_southern_half(source: Path, target: Path) -> Path:
    """Write the elements of ``source`` in the southern half of its bbox (osmium extract's simple strategy).

    Nodes inside the half, ways with at least one of those nodes, relations
    with at least one kept member; the header gets the half's bbox.
    """
    box = osmium.FileProcessor(str(source)).header.box()
    middle = (box.bottom_left.lat + box.top_right.lat) / 2
    half = osmium.osm.Box(box.bottom_left, osmium.osm.Location(box.top_right.lon, middle))
    header = osmium.io.Header()
    header.add_box(half)
    nodes: set[int] = set()
    ways: set[int] = set()
    with osmium.SimpleWriter(str(target), header=header) as writer:
        for element in osmium.FileProcessor(str(source)):
            if element.is_node():
                keep = element.location.valid() and element.location.lat <= middle
                if keep:
                    nodes.add(element.id)
            elif element.is_way():
                keep = any(node.ref in nodes for node in element.nodes)
                if keep:
                    ways.add(element.id)
            else:
                keep = any(
                    (member.type == "n" and member.ref in nodes) or (member.type == "w" and member.ref in ways)
                    for member in element.members
                )
            if keep:
                writer.add(element)
    return target


def _child(mode: str, path: Path, database: Path | None) -> dict[str, float]:
    command = [sys.executable, "-m", "bench.bench_osm", mode, str(path)] + ([str(database)] if database else [])
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True, timeout=300)
    return json.loads(result.stdout)


def bench_memory(workdir: Path, half: Path) -> list[dict[str, float]]:
    rows = []
    for path in (EXTRACT, half):
        imports = [_child("child-import", path, workdir / f"memory-{path.stem}-{run}.sqlite3") for run in range(3)]
        bares = [_child("child-bare", path, None) for _ in range(3)]
        rows.append(
            {
                "file": path.name,
                "bytes": path.stat().st_size,
                "elements": bare_pass(path),
                "import_hwm_mb": median([item["hwm_mb"] for item in imports]),
                "import_anon_mb": median([item["anon_peak_mb"] for item in imports]),
                "bare_hwm_mb": median([item["hwm_mb"] for item in bares]),
                "bare_anon_mb": median([item["anon_peak_mb"] for item in bares]),
            }
        )
    return rows


def bench_first_start(workdir: Path) -> dict[str, float]:
    with_import, without, import_s = [], [], []
    argv = [sys.executable, "-m", "leadd", "serve"]
    offline = {"LEADD_OVERPASS_URL": "", "LEADD_NOMINATIM_URL": ""}
    for run in range(STARTS):
        for bundled, times in (("true", with_import), ("false", without)):
            port = free_port()
            state = workdir / f"start-{bundled}-{run}"
            env = leadd_env(port, state, LEADD_OSM_IMPORT_BUNDLED=bundled, **offline)
            started = time.perf_counter()
            process = start_process(argv, env)
            try:
                wait_listening(port, process)
                times.append(time.perf_counter() - started)
            finally:
                process.terminate()
                process.wait(30)
            if bundled == "true":
                with sqlite3.connect(state / "leadd.sqlite3") as conn:
                    import_s.append(conn.execute("SELECT duration_s FROM osm_imports").fetchone()[0])
    return {"with_s": median(with_import), "without_s": median(without), "import_s": median(import_s)}


def _wait_search(session: requests.Session, base: str, search_id: str) -> dict:
    while True:
        search = session.get(f"{base}/v1/searches/{search_id}", timeout=10).json()
        if search["state"] not in ("queued", "running"):
            return search
        time.sleep(0.002)


def bench_search(workdir: Path) -> dict[str, float]:
    port = free_port()
    state = workdir / "search"
    env = leadd_env(port, state, LEADD_OVERPASS_URL="", LEADD_NOMINATIM_URL="", LEADD_LOG_LEVEL="warning")
    daemon = start_process([sys.executable, "-m", "leadd", "serve"], env)
    base = f"http://127.0.0.1:{port}"
    session = requests.Session()
    latencies, health, stored = [], [], []
    try:
        wait_listening(port, daemon)
        for run in range(SEARCHES):
            body = {"query": QUERIES[run % len(QUERIES)], "max_results": 60}
            location = LOCATIONS[(run // len(QUERIES)) % len(LOCATIONS)]
            if location:
                body["location"] = location
            started = time.perf_counter()
            search = session.post(f"{base}/v1/searches", json=body, timeout=10).json()
            search = _wait_search(session, base, search["id"])
            session.get(f"{base}/v1/searches/{search['id']}/leads", params={"limit": 60}, timeout=10).raise_for_status()
            latencies.append(time.perf_counter() - started)
            assert search["state"] == "succeeded", search
            stored.append(search["progress"]["leads_stored"])
            started = time.perf_counter()
            session.get(f"{base}/health", timeout=10).raise_for_status()
            health.append(time.perf_counter() - started)
    finally:
        daemon.terminate()
        daemon.wait(30)
    direct = _direct_queries(state / "leadd.sqlite3")
    return {
        "p50_s": percentile(latencies, 0.5),
        "p99_s": percentile(latencies, 0.99),
        "health_p50_s": percentile(health, 0.5),
        "direct_p50_s": percentile(direct, 0.5),
        "direct_p99_s": percentile(direct, 0.99),
        "mean_leads": sum(stored) / len(stored),
    }


def _direct_queries(database: Path) -> list[float]:
    """Run the searches' full-text queries straight on the store, without an area: the floor of the work."""
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    times = []
    for run in range(SEARCHES):
        terms = parse_query(QUERIES[run % len(QUERIES)])
        started = time.perf_counter()
        search_local(conn, terms, None, frozenset(), 60, 0)
        times.append(time.perf_counter() - started)
    conn.close()
    return times


class _AnonymousPeak:
    """Samples RssAnon of this process every 2 ms: heap and anonymous maps, not file-backed pages."""

    def __init__(self) -> None:
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                self.peak_kb = max(self.peak_kb, int(line.split()[1]))

    def _run(self) -> None:
        while not self._stop.wait(0.002):
            self._sample()

    def __enter__(self) -> _AnonymousPeak:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def child(mode: str, path: str, database: str | None) -> None:
    # Writing 5 to clear_refs resets the high-water mark to the current RSS
    # (Linux 4.0+), so the peak below is the work's, not the imports'.
    try:
        Path("/proc/self/clear_refs").write_text("5")
        reset = True
    except OSError:
        reset = False
    with _AnonymousPeak() as anonymous:
        if mode == "child-import":
            assert database is not None
            # Measure the configuration that bounds memory on large files:
            # node locations in an index file, not in memory.
            importer.MEMORY_INDEX_MAX_BYTES = 0
            import_extract(Path(database), Path(path), region=BUNDLED_EXTRACT_REGION)
        else:
            bare_pass(Path(path))
    hwm_kb = _status_kb("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"hwm_mb": hwm_kb / 1024, "anon_peak_mb": anonymous.peak_kb / 1024, "hwm_reset": reset}))


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="leadd-bench-osm-") as tmp:
        workdir = Path(tmp)
        half = cut_southern_half(EXTRACT, workdir / "helsinki-south-half.osm.pbf")
        rates = [bench_import_rate(EXTRACT, workdir), bench_import_rate(half, workdir)]
        memory = bench_memory(workdir, half)
        start = bench_first_start(workdir)
        search = bench_search(workdir)
    write_section("osm", render(rates, memory, start, search))


def render(
    rates: list[dict[str, float]], memory: list[dict[str, float]], start: dict[str, float], search: dict[str, float]
) -> str:
    verdict = lambda ok: "met" if ok else "**missed**"  # noqa: E731
    rate_rows = []
    for name, rate in zip((EXTRACT.name, "helsinki-south-half.osm.pbf"), rates):
        import_rate = rate["elements"] / rate["import_s"]
        bare_rate = rate["elements"] / rate["bare_s"]
        ratio = import_rate / bare_rate
        rate_rows.append(
            f"| Import rate, {name} ({rate['elements']} elements, {rate['leads']} leads; median of {RUNS}) "
            f"| {import_rate:,.0f} elements/s ({rate['import_s'] * 1000:.0f} ms) "
            f"| bare pyosmium pass: {bare_rate:,.0f} elements/s ({rate['bare_s'] * 1000:.0f} ms) "
            f"| {ratio:.2f}× | ≥ 0.5×: {verdict(ratio >= 0.5)} |"
        )
    memory_rows = [
        f"| Peak memory of an import, {row['file']} ({row['bytes'] / 1000:.0f} kB; median of 3 fresh processes) "
        f"| high-water RSS {row['import_hwm_mb']:.1f} MB, anonymous {row['import_anon_mb']:.1f} MB "
        f"| bare pass: high-water {row['bare_hwm_mb']:.1f} MB, anonymous {row['bare_anon_mb']:.1f} MB "
        f"| {row['import_hwm_mb'] / row['bare_hwm_mb']:.2f}× | |"
        for row in memory
    ]
    full, half = memory
    hwm_growth = full["import_hwm_mb"] - half["import_hwm_mb"]
    anon_growth = full["import_anon_mb"] - half["import_anon_mb"]
    start_ratio = start["with_s"] / start["without_s"]
    search_ratio = search["p50_s"] / search["direct_p50_s"]
    rows = "\n".join(rate_rows + memory_rows)
    return f"""## OpenStreetMap import and search (`bench/bench_osm.py`)

{machine_line()}

| Measure | leadd | Baseline (same run) | Ratio | Goal |
|---|---|---|---|---|
{rows}
| Growth of the import's peak memory from the smaller to the larger file ({full['elements'] - half['elements']} more elements) | high-water {hwm_growth:+.1f} MB, anonymous {anon_growth:+.1f} MB | | | independent of size: see below |
| Daemon start to port listening, fresh store, with the bundled import (median of {STARTS}) | {start['with_s'] * 1000:.0f} ms (import {start['import_s'] * 1000:.0f} ms) | same start with LEADD_OSM_IMPORT_BUNDLED=false: {start['without_s'] * 1000:.0f} ms | {start_ratio:.2f}× | (blocking start-up step) |
| Search through the API, submit to leads in hand, {SEARCHES} searches, {search['mean_leads']:.0f} leads each on average: p50 | {search['p50_s'] * 1000:.1f} ms | the same query on the store directly: p50 {search['direct_p50_s'] * 1000:.2f} ms | {search_ratio:.0f}× | |
| The same: p99 | {search['p99_s'] * 1000:.1f} ms | p99 {search['direct_p99_s'] * 1000:.2f} ms; one `GET /health`: p50 {search['health_p50_s'] * 1000:.2f} ms | | |

The import rate is elements in the file divided by the wall time of
`import_extract` (hash, header, both passes, every store write and the
full-text index) on a migrated empty store; the bare pass is
`for element in osmium.FileProcessor(file)` with an empty body. The goal is
missed on these files. They are a dense city centre where one element in 23
becomes a lead, and the per-lead work costs about as much as the bare pass
spends on all elements. Measured apart on the bundled file (estimates, median
of 7), converting the tags of the 1,485 named business elements to dicts
takes about 17 ms, because pyosmium returns them one tag at a time through
Python. The 1,309 inserts into `leads` take about 30 ms. About 11 ms of
that is the full-text insert trigger, although its `WHEN` clause skips
import rows. The relations pass, a second read of the file, takes about
10 ms, and tag mapping, addresses and the rows' JSON most of the rest. Node locations
stay in memory for files up to 32 MiB, which saved about 13 ms here over
the index file. In a regional extract far fewer elements are leads, and
pyosmium's C++ filters drop the rest before Python receives them, but no
such file was measured here.

Memory is measured with node locations in the index file, as for an
extract above 32 MiB, in a fresh interpreter per run, after resetting the
high-water mark (`/proc/self/clear_refs`), so it covers the work and not
the module imports: high-water RSS includes file-backed pages (pyosmium
buffers, the node location index file, which the kernel can drop);
anonymous is the peak of `RssAnon` sampled every 2 ms. The smaller file is
a real cut of the bundled extract (the southern half of its bounding box,
osmium extract's simple strategy), not synthetic data. Both files are
small and fit in one batch of 2,000 rows, which is most of the anonymous
growth. These numbers do not show the behaviour on a country extract.
What bounds memory by design: node locations go to a
`sparse_file_array` index file, rows are written in batches of 2,000, and
only the member ids of kept relations stay in memory.

Searches run one at a time with Overpass and Nominatim disabled, over
{len(QUERIES)} queries and {len(LOCATIONS)} locations (none, a square, a suburb, the
city). The client polls the search every 2 ms, so the latency includes the
job queue, the store writes of the search's leads and three HTTP requests.
The direct baseline runs the same full-text query on a read-only
connection, without an area.
"""


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] in ("child-import", "child-bare"):
        child(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
    else:
        main()
