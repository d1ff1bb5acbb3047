"""`switchboard-operator`: run the kopf operator for Regions and Rooms.

Several replicas may run: they elect a leader with a Lease, and only the leader runs kopf
and the control-plane HTTP server. A leader that cannot renew its lease exits (its Pod is
restarted and stands by).
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
from kubernetes_asyncio import client

from switchboard_operator import logs
from switchboard_operator.adapters import kube, release
from switchboard_operator.adapters.health import HealthServer
from switchboard_operator.adapters.leadership import LeaderElector, LeadershipLost
from switchboard_operator.adapters.podlabel import LeaderLabel
from switchboard_operator.config import OperatorConfig

log = logging.getLogger("switchboard_operator")
LABEL_CLEAR_SECONDS = 2.0


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
    owners = await release.owner_references(api, config.namespace, config.service_account)
    elector = LeaderElector(
        api,
        config.namespace,
        identity,
        owners=[client.V1OwnerReference(**_snake(owner)) for owner in owners],
    )
    health = HealthServer(config.listen_host, config.health_port)
    label = LeaderLabel(api, config.namespace, config.pod_name) if config.pod_name else None
    try:
        await health.start()
        if label is not None:
            await label.clear()
        await elector.acquire()
        operator = asyncio.create_task(
            kopf.operator(clusterwide=True, standalone=True, liveness_endpoint=liveness)
        )
        holding = asyncio.create_task(elector.hold())
        marking = asyncio.create_task(label.mark() if label else asyncio.sleep(0))
        done, _ = await asyncio.wait({operator, holding}, return_when=asyncio.FIRST_COMPLETED)
        marking.cancel()
        if holding in done:
            operator.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await operator
            with contextlib.suppress(LeadershipLost):
                holding.result()
            log.error("leadership lost: exiting so that a standby takes over")
            await _clear(label)
            return 1
        holding.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await holding
        await _clear(label)
        await elector.release()
        operator.result()
        return 0
    finally:
        await health.stop()
        await api.close()


def _snake(owner: dict[str, str]) -> dict[str, str]:
    return {
        "api_version": owner["apiVersion"],
        "kind": owner["kind"],
        **{key: owner[key] for key in ("name", "uid")},
    }


async def _clear(label: LeaderLabel | None) -> None:
    """Drop the leader label on the way out, briefly: the container's restart clears it too."""
    if label is not None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(label.clear(), LABEL_CLEAR_SECONDS)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    logs.configure(args.log_level)
    # Importing registers the handlers with kopf's default registry.
    from switchboard_operator import settings  # noqa: F401, PLC0415
    from switchboard_operator.adapters import handlers  # noqa: F401, PLC0415

    sys.exit(asyncio.run(run(args.liveness)))


if __name__ == "__main__":
    main()
