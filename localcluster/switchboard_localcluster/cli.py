"""`switchboard-local`: build, start and inspect the local Kubernetes on its own.

switchboard-local build        # build (or find) the pinned control-plane binaries
switchboard-local up           # run a control plane until Ctrl-C, print its KUBECONFIG
switchboard-local node-agent   # run the node agent (see --help)
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from switchboard_localcluster import binaries
from switchboard_localcluster.controlplane import ControlPlane


def wait_for_signal() -> None:
    """Block until SIGINT or SIGTERM."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()


def _build(_: argparse.Namespace) -> int:
    found = binaries.resolve(build=True)
    for name, path in vars(found).items():
        print(f"{name:24} {path}")
    return 0


def _up(args: argparse.Namespace) -> int:
    plane = ControlPlane(workdir=Path(args.workdir) if args.workdir else None)
    with plane:
        print(f"export KUBECONFIG={plane.kubeconfig}", flush=True)
        print(f"# audit log: {plane.audit_log.path}", flush=True)
        wait_for_signal()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["node-agent"]:
        from switchboard_localcluster.nodeagent.__main__ import main as agent_main  # noqa: PLC0415

        return int(agent_main(argv[1:]) or 0)
    parser = argparse.ArgumentParser(
        prog="switchboard-local",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("build", help="build or locate the control-plane binaries").set_defaults(
        run=_build
    )
    up = commands.add_parser("up", help="run a local control plane until interrupted")
    up.add_argument("--workdir", help="directory for certificates, etcd data and logs")
    up.set_defaults(run=_up)
    commands.add_parser("node-agent", help="run the node agent (arguments follow)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
