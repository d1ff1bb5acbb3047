"""The control plane's HTTP server: capacity reports from SFU pods and the join API.

It runs on the operator's event loop, beside kopf, so handlers share the in-memory
capacity picture without locks.
"""

from __future__ import annotations

import logging

from aiohttp import web

from switchboard_api.contract import JOIN_API_PREFIX, REPORT_PATH
from switchboard_operator.reportapi.receiver import ReportReceiver

log = logging.getLogger(__name__)


def build_app(reports: ReportReceiver, join_api: web.Application | None = None) -> web.Application:
    app = web.Application(client_max_size=1 << 20)
    app.router.add_post(REPORT_PATH, reports.handle)
    app.router.add_get("/healthz", _healthz)
    if join_api is not None:
        app.add_subapp(JOIN_API_PREFIX, join_api)
    return app


async def _healthz(_: web.Request) -> web.Response:
    return web.Response(text="ok")


class HttpServer:
    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self._runner = web.AppRunner(app, access_log=None)
        self._host = host
        self._port = port
        self._started = False

    async def start(self) -> None:
        self._started = True
        await self._runner.setup()
        await web.TCPSite(self._runner, self._host, self._port).start()
        log.info("control-plane http listening host=%s port=%s", self._host, self._port)

    async def stop(self) -> None:
        if self._started:
            await self._runner.cleanup()
