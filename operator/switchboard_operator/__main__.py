"""`switchboard-operator`: run the kopf operator for Regions and Rooms.

Several replicas may run: they elect a leader with a Lease, and only the leader runs kopf
and the control-plane HTTP server. A leader that cannot renew its lease exits (its Pod is
restarted and stands by). Every replica serves its metrics on the internal port, so a
standby is seen standing by.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import socket
import sys
from collections.abc import Sequence

import kopf

from switchboard_operator import logs
from switchboard_operator.adapters import kube
from switchboard_operator.adapters.httpserver import HttpServer
from switchboard_operator.adapters.leadership import LeaderElector, LeadershipLost
from switchboard_operator.adapters.metrics import OperatorMetrics, metrics_app
from switchboard_operator.config import OperatorConfig

log = logging.getLogger("switchboard_operator")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="switchboard-operator", description=__doc__)
    parser.add_argument("--log-level", default=os.environ.get("SWITCHBOARD_LOG_LEVEL", "INFO"))
    parser.add_argument(
        "--liveness",
        default=os.environ.get("SWITCHBOARD_LIVENESS_ENDPOINT"),
        help="serve kopf's liveness probe at this URL, e.g. http://0.0.0.0:8081/healthz",
    )
    return parser.parse_args(argv)


async def run(liveness: str | None) -> int:
    config = OperatorConfig.from_env()
    identity = os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"
    api = await kube.load_client()
    elector = LeaderElector(api, config.namespace, identity)
    metrics = OperatorMetrics()
    server = None
    if config.metrics_port is not None:
        server = HttpServer(metrics_app(metrics), config.listen_host, config.metrics_port)
        await server.start()
    try:
        await elector.acquire()
        metrics.set_leader(True)
        operator = asyncio.create_task(
            kopf.operator(
                clusterwide=True,
                standalone=True,
                liveness_endpoint=liveness,
                memo=kopf.Memo(metrics=metrics),
            )
        )
        holding = asyncio.create_task(elector.hold())
        done, _ = await asyncio.wait({operator, holding}, return_when=asyncio.FIRST_COMPLETED)
        if holding in done:
            operator.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await operator
            with contextlib.suppress(LeadershipLost):
                holding.result()
            log.error("leadership lost: exiting so that a standby takes over")
            return 1
        holding.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await holding
        await elector.release()
        operator.result()
        return 0
    finally:
        metrics.set_leader(False)
        if server is not None:
            await server.stop()
        await api.close()


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    logs.configure(args.log_level)
    # Importing registers the handlers with kopf's default registry.
    from switchboard_operator import settings  # noqa: F401, PLC0415
    from switchboard_operator.adapters import handlers  # noqa: F401, PLC0415

    sys.exit(asyncio.run(run(args.liveness)))


if __name__ == "__main__":
    main()
