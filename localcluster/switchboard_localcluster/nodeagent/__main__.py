"""Command line of the node agent: ``python -m switchboard_localcluster.nodeagent``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from . import logs
from .agent import NodeAgent
from .config import load_config
from .kube import Kube

log = logging.getLogger("switchboard_localcluster.nodeagent")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="switchboard-local node-agent",
        description="Register local Nodes and run the Pods bound to them as local processes.",
    )
    parser.add_argument(
        "--kubeconfig", type=Path, required=True, help="kubeconfig of the API server"
    )
    parser.add_argument("--config", type=Path, required=True, help="agent configuration (YAML)")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    return parser.parse_args(argv)


async def run(kubeconfig: Path, config_path: Path) -> None:
    config = load_config(config_path)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    kube = await Kube.from_kubeconfig(kubeconfig)
    try:
        await NodeAgent(config, kube).run(stop)
    finally:
        await kube.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logs.configure(args.log_level)
    asyncio.run(run(args.kubeconfig, args.config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
