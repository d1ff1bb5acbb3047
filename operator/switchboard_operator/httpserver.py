"""The control plane's HTTP server: capacity reports from SFU pods and the join API.

It runs on the operator's event loop, beside kopf, so handlers share the in-memory
capacity picture without locks. With a certificate it serves HTTPS only, re-reading the
certificate when its files change (a renewed Secret needs no restart).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiohttp import web

from switchboard_api.contract import JOIN_API_PREFIX, REPORT_PATH
from switchboard_operator.reportapi.receiver import ReportReceiver
from switchboard_tls import ReloadingCertificate

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
    def __init__(
        self,
        app: web.Application,
        host: str,
        port: int,
        tls: ReloadingCertificate | None = None,
    ) -> None:
        self._runner = web.AppRunner(app, access_log=None)
        self._host = host
        self._port = port
        self._tls = tls
        self._watch: asyncio.Task[None] | None = None
        self._started = False

    async def start(self) -> None:
        self._started = True
        await self._runner.setup()
        context = None if self._tls is None else self._tls.context
        await web.TCPSite(self._runner, self._host, self._port, ssl_context=context).start()
        if self._tls is not None:
            self._watch = asyncio.ensure_future(self._tls.watch())
        log.info(
            "http listening host=%s port=%s tls=%s",
            self._host,
            self._port,
            "off" if self._tls is None else "on",
        )

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        if self._started:
            await self._runner.cleanup()
