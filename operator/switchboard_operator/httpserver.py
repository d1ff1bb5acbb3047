"""The control plane's HTTP servers: the public join API, and the internal report
receiver SFU pods report their capacity to, each on a listener of its own (exposing the
join API through an ingress exposes nothing else).

They run on the operator's event loop, beside kopf, so handlers share the in-memory
capacity picture without locks. With a certificate a server speaks HTTPS only, re-reading
the certificate when its files change (a renewed certificate needs no restart).
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


def public_app(join_api: web.Application) -> web.Application:
    """The public port: the join API and /healthz; every other path is 404."""
    app = web.Application(client_max_size=1 << 20)
    app.router.add_get("/healthz", _healthz)
    app.add_subapp(JOIN_API_PREFIX, join_api)
    return app


def report_app(reports: ReportReceiver) -> web.Application:
    """The internal report port: capacity reports and nothing else."""
    # The receiver caps the body itself, after the token is checked.
    app = web.Application(client_max_size=1 << 20)
    app.router.add_post(REPORT_PATH, reports.handle)
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
