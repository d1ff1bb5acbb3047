"""The SFU's HTTP surfaces, wired to one SfuService: the public port (signalling WebSocket,
WHIP/WHEP, probes) and the internal metrics port (Prometheus `/metrics` only), so what
clients can reach never exposes the pod's internals.
"""

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

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


METRICS_PATH = "/metrics"


def build_metrics_app(registry: CollectorRegistry) -> web.Application:
    """The internal listener: Prometheus text exposition of `registry`, nothing else."""

    async def metrics(_: web.Request) -> web.Response:
        response = web.Response(body=generate_latest(registry))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    app = web.Application()
    app.router.add_get(METRICS_PATH, metrics)
    return app


def build_app(service: SfuService) -> web.Application:
    app = web.Application(
        middlewares=[cors_middleware((whip.WHIP_PREFIX, whip.WHEP_PREFIX))],
        client_max_size=256 * 1024,
    )
    app[appkeys.SERVICE] = service
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get(SIGNALLING_PATH, handle_signalling)
    whip.add_routes(app)
    return app
