"""`switchboard-operator`: run the Switchboard control plane for Regions and Rooms.

Several replicas may run: they elect a leader with a Lease, and only the leader runs the
reconcilers and the control-plane HTTP server. A leader that cannot renew its lease exits
(its Pod is restarted and stands by). Every replica serves its health and its metrics on
internal ports, so a standby is seen standing by.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
from collections.abc import Sequence

from switchboard_operator import logs
from switchboard_operator.config import OperatorConfig
from switchboard_operator.manager import Manager, Options


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="switchboard-operator", description=__doc__)
    parser.add_argument("--log-level", default=os.environ.get("SWITCHBOARD_LOG_LEVEL", "INFO"))
    parser.add_argument(
        "--liveness",
        default=os.environ.get("SWITCHBOARD_LIVENESS_ENDPOINT"),
        help="serve kopf's liveness probe at this URL, e.g. http://0.0.0.0:8081/healthz",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    logs.configure(args.log_level)
    identity = os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"
    manager = Manager(OperatorConfig.from_env(), Options(identity, liveness=args.liveness))
    sys.exit(asyncio.run(manager.run()))


if __name__ == "__main__":
    main()
