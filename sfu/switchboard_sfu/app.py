"""The SFU's HTTP surface on its one port: signalling WebSocket, WHIP/WHEP, probes and
metrics, wired to one SfuService.
"""

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from switchboard_sfu import appkeys, whip
from switchboard_sfu.cors import cors_middleware
from switchboard_sfu.service import SfuService
from switchboard_sfu.signalling import handle_signalling

SIGNALLING_PATH = "/ws"


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the event loop answers."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Readiness for new placements and Service endpoints only: a draining or fenced pod
    is not ready, yet keeps serving the rooms it has."""
    lifecycle = request.app[appkeys.SERVICE].lifecycle
    body = {"ready": lifecycle.ready, "draining": lifecycle.draining, "fenced": lifecycle.fenced}
    return web.json_response(body, status=200 if lifecycle.ready else 503)


async def metrics(request: web.Request) -> web.Response:
    registry = request.app[appkeys.SERVICE].metrics.registry
    response = web.Response(body=generate_latest(registry))
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


def build_app(service: SfuService) -> web.Application:
    app = web.Application(
        middlewares=[cors_middleware((whip.WHIP_PREFIX, whip.WHEP_PREFIX))],
        client_max_size=256 * 1024,
    )
    app[appkeys.SERVICE] = service
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get(SIGNALLING_PATH, handle_signalling)
    whip.add_routes(app)
    return app
