"""The operator's health endpoint, served by every replica from start to exit.

It answers 200 while the process runs its event loop, leader or standby: readiness means
healthy, not leading (the Service follows the leader label instead), so a Deployment's
rolling update sees standbys become Ready and proceeds.
"""

from __future__ import annotations

import logging

from aiohttp import web

log = logging.getLogger(__name__)


async def _healthz(_: web.Request) -> web.Response:
    return web.Response(text="ok")


class HealthServer:
    def __init__(self, host: str, port: int) -> None:
        app = web.Application()
        app.router.add_get("/healthz", _healthz)
        self._runner = web.AppRunner(app, access_log=None)
        self._host = host
        self._port = port

    async def start(self) -> None:
        await self._runner.setup()
        await web.TCPSite(self._runner, self._host, self._port).start()
        log.info("health endpoint listening host=%s port=%s", self._host, self._port)

    async def stop(self) -> None:
        await self._runner.cleanup()
