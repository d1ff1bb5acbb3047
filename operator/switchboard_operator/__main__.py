"""`switchboard-operator`: run the Switchboard control plane for Regions and Rooms.

Several replicas may run: they elect a leader with a Lease, and only the leader runs the
reconcilers and the control-plane HTTP server. A leader that cannot renew its lease exits
(its Pod is restarted and stands by). Every replica serves its health and its metrics on
internal ports, so a standby is seen standing by.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence

from switchboard_operator import logs
from switchboard_operator.config import OperatorConfig
from switchboard_operator.manager import Manager, Options

log = logging.getLogger(__name__)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="switchboard-operator", description=__doc__)
    parser.add_argument("--log-level", default=os.environ.get("SWITCHBOARD_LOG_LEVEL", "INFO"))
    parser.add_argument(
        "--liveness",
        default=os.environ.get("SWITCHBOARD_LIVENESS_ENDPOINT"),
        help="serve kopf's liveness probe at this URL, e.g. http://0.0.0.0:8081/healthz",
    )
    return parser.parse_args(argv)


GC_THRESHOLDS = (10_000, 20, 20)
"""The cyclic garbage collector's generation thresholds (Python's are 700, 10, 10). The
operator holds every Room, Pod and placement, and each capacity report or watch event
allocates thousands of short-lived objects: at Python's thresholds those trigger young
collections often enough to promote them, and then full collections over the whole heap,
which took about a fifth of the operator's CPU in a failover (bench/placement_e2e.py)."""


def main(argv: Sequence[str] | None = None) -> None:
    gc.set_threshold(*GC_THRESHOLDS)
    args = parse_args(argv)
    logs.configure(args.log_level)
    identity = os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"
    manager = Manager(OperatorConfig.from_env(), Options(identity, liveness=args.liveness))
    sys.exit(asyncio.run(serve(manager)))


async def serve(manager: Manager) -> int:
    """Run the manager; SIGTERM (how the kubelet stops a container) ends it cleanly at any
    point. Python sets no handler for SIGTERM, and a container's process 1 ignores a signal
    it has no handler for: without this, a standby or a starting replica would sit out the
    whole termination grace period and be SIGKILLed. kopf sets its own handler while it
    runs, and stops the leader gracefully. Either way a replica that took the Lease hands
    it back on its way out (`Manager.run`), starting or leading."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await manager.run()
    except asyncio.CancelledError:
        log.info("stopped by SIGTERM")
        return 0


if __name__ == "__main__":
    main()
