"""Run one stand-in server in the foreground: ``python -m tests.standins NAME --port PORT``.

For places that only have a URL: a booted test system, a benchmark, a manual
session. Steer it through its /_standin/* control endpoints.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import threading

# name -> "module:class"
STANDINS = {
    "places_new": "tests.standins.google_places:PlacesNewStandIn",
    "google_maps": "tests.standins.google_maps:GoogleMapsStandIn",
    "openai_chat": "tests.standins.openai_chat:OpenAIChatStandIn",
    "overpass": "tests.standins.overpass:OverpassStandIn",
    "nominatim": "tests.standins.nominatim:NominatimStandIn",
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.standins", description=__doc__)
    parser.add_argument("name", choices=sorted(STANDINS))
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: a free one)")
    parser.add_argument("--api-key", help="key the stand-in accepts (Google and OpenAI stand-ins)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    args = parser.parse_args()

    module_name, class_name = STANDINS[args.name].split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    kwargs = {"latency_s": args.latency}
    if args.api_key:
        kwargs["api_key"] = args.api_key
    server = cls(**kwargs).start(args.port)
    print(f"{args.name} listening on {server.url}", flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.stop()


if __name__ == "__main__":
    main()
