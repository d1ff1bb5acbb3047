"""`switchboard-testapp`: the tiny HTTP app the node agent's tests run as a Pod's container.

It shows a test what a container sees (environment, mounted files, hostname, pid), lets the
test flip its readiness and liveness, crash it, and records the signals it receives.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler

DEFAULT_PORT = 8080
MARKER_DIR_ENV = "SIGNAL_MARKER_DIR"
REPORT_URL_ENV = "SIGNAL_REPORT_URL"


class TestApp:
    def __init__(self, term_delay: float) -> None:
        self.ready = True
        self.healthy = True
        self.signals: list[str] = []
        self.children: list[subprocess.Popen[bytes]] = []
        self.term_delay = term_delay
        self.requests: Counter[str] = Counter()

    @web.middleware
    async def count_requests(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.requests[f"{request.method} {request.path}"] += 1
        return await handler(request)

    def routes(self) -> web.Application:
        app = web.Application(middlewares=[self.count_requests])
        app.add_routes(
            [
                web.get("/env", self.env),
                web.get("/info", self.info),
                web.get("/file", self.file),
                web.get("/ready", self.get_ready),
                web.post("/ready", self.set_ready),
                web.get("/healthz", self.get_healthz),
                web.post("/healthz", self.set_healthz),
                web.get("/signals", self.get_signals),
                web.get("/requests", self.get_requests),
                web.post("/crash", self.crash),
                web.post("/spawn", self.spawn),
            ]
        )
        return app

    async def env(self, _request: web.Request) -> web.Response:
        return web.json_response(dict(os.environ))

    async def info(self, _request: web.Request) -> web.Response:
        return web.json_response(
            {
                "pid": os.getpid(),
                "pgid": os.getpgid(0),
                "hostname": socket.gethostname(),
                "cwd": os.getcwd(),
                "argv": sys.argv,
                "children": [child.pid for child in self.children],
            }
        )

    async def file(self, request: web.Request) -> web.Response:
        path = Path(request.query.get("path", ""))
        try:
            return web.Response(body=await asyncio.to_thread(path.read_bytes))
        except OSError as error:
            raise web.HTTPNotFound(text=f"{path}: {error.strerror}") from error

    @staticmethod
    def _flag(request: web.Request) -> bool:
        value = request.query.get("value", "")
        if value not in ("true", "false"):
            raise web.HTTPBadRequest(text="value must be true or false")
        return value == "true"

    async def get_ready(self, _request: web.Request) -> web.Response:
        return web.Response(status=200 if self.ready else 503, text=str(self.ready).lower())

    async def set_ready(self, request: web.Request) -> web.Response:
        self.ready = self._flag(request)
        return web.Response(text=str(self.ready).lower())

    async def get_healthz(self, _request: web.Request) -> web.Response:
        return web.Response(status=200 if self.healthy else 500, text=str(self.healthy).lower())

    async def set_healthz(self, request: web.Request) -> web.Response:
        self.healthy = self._flag(request)
        return web.Response(text=str(self.healthy).lower())

    async def get_signals(self, _request: web.Request) -> web.Response:
        return web.json_response(self.signals)

    async def get_requests(self, _request: web.Request) -> web.Response:
        """Requests served per `METHOD /path`, e.g. to count the kubelet's probes."""
        return web.json_response(dict(self.requests))

    async def crash(self, request: web.Request) -> web.Response:
        code = int(request.query.get("code", "3"))
        asyncio.get_running_loop().call_later(0.05, os._exit, code)
        return web.Response(text=f"exiting with {code}")

    async def spawn(self, _request: web.Request) -> web.Response:
        """Start a long-lived child, so tests can check that a pod's whole process group dies."""
        child = subprocess.Popen(["sleep", "3600"])  # noqa: ASYNC220 - returns at once
        self.children.append(child)
        return web.json_response({"pid": child.pid})

    def on_signal(self, signum: signal.Signals, stop: asyncio.Event) -> None:
        name = signal.Signals(signum).name
        self.signals.append(name)
        record = {
            "signal": name,
            "pod": os.environ.get("POD_NAME", socket.gethostname()),
            "time": time.time(),
        }
        marker_dir = os.environ.get(MARKER_DIR_ENV)
        if marker_dir:
            marker = Path(marker_dir) / f"{record['pod']}.{name}"
            marker.write_text(json.dumps(record))
        report_url = os.environ.get(REPORT_URL_ENV)
        if report_url:
            request = urllib.request.Request(
                report_url,
                data=json.dumps(record).encode(),
                method="POST",
                headers={"Content-Type": "application/json"},
            )
            try:
                urllib.request.urlopen(request, timeout=2).close()
            except OSError as error:
                print(f"signal report to {report_url} failed: {error}", file=sys.stderr)
        if signum in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().call_later(self.term_delay, stop.set)


async def serve(host: str, port: int, term_delay: float) -> None:
    app = TestApp(term_delay)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
        loop.add_signal_handler(signum, app.on_signal, signum, stop)
    runner = web.AppRunner(app.routes(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    print(f"testapp listening on {host}:{port} pid={os.getpid()}", flush=True)
    await stop.wait()
    print(f"testapp stopping after {app.signals}", flush=True)
    await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="switchboard-testapp", description=__doc__)
    parser.add_argument("--host", default=os.environ.get("POD_IP", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", DEFAULT_PORT)))
    parser.add_argument(
        "--term-delay", type=float, default=0.2, help="seconds between SIGTERM and exiting"
    )
    parser.add_argument(
        "--exit-after",
        type=float,
        default=None,
        help="exit by itself after this many seconds (for run-to-completion pods)",
    )
    parser.add_argument("--exit-code", type=int, default=0)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.exit_after is not None:
        time.sleep(args.exit_after)
        return args.exit_code
    asyncio.run(serve(args.host, args.port, args.term_delay))
    return 0


if __name__ == "__main__":
    sys.exit(main())
