"""`switchboard-operator`: run the kopf operator for Regions and Rooms."""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Sequence

import kopf

from switchboard_operator import logs


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="switchboard-operator", description=__doc__)
    parser.add_argument("--log-level", default=os.environ.get("SWITCHBOARD_LOG_LEVEL", "INFO"))
    parser.add_argument(
        "--liveness",
        default=os.environ.get("SWITCHBOARD_LIVENESS_ENDPOINT"),
        help="serve kopf's liveness probe at this URL, e.g. http://0.0.0.0:8080/healthz",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    logs.configure(args.log_level)
    # Importing registers the handlers with kopf's default registry.
    from switchboard_operator import settings  # noqa: F401, PLC0415
    from switchboard_operator.adapters import handlers  # noqa: F401, PLC0415

    asyncio.run(kopf.operator(clusterwide=True, standalone=True, liveness_endpoint=args.liveness))


if __name__ == "__main__":
    main()
