"""The baseline: a bare aiohttp app that serves /health with a small JSON body.

Run as ``python bench/hello_app.py PORT``. With NOTIFY_SOCKET set (under
systemd Type=notify) it sends READY=1 once the port is bound, so the
systemd benchmark can compare start-up times with leadd's.
"""

import asyncio
import os
import signal
import socket
import sys
from datetime import UTC, datetime

from aiohttp import web


async def health(request: web.Request) -> web.Response:
    return web.json_response({"ok": True, "timestamp": datetime.now(UTC).isoformat(), "version": "bare"})


def notify_ready() -> None:
    address = os.environ.get("NOTIFY_SOCKET")
    if address:
        target = "\0" + address[1:] if address.startswith("@") else address
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(b"READY=1", target)


async def serve(port: int) -> None:
    app = web.Application()
    app.router.add_get("/health", health)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    notify_ready()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))
