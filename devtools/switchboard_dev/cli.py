"""`switchboard-dev up`: Switchboard on the embedded local cluster, with the examples applied.

It prints `kubectl get regions,rooms -A` and the KUBECONFIG to use, then keeps running
until Ctrl-C (or exits at once with --exit-when-ready, as the test suite does).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from switchboard_dev.stack import LocalStack, example_regions
from switchboard_localcluster.cli import wait_for_signal


def _up(args: argparse.Namespace) -> int:
    started = time.monotonic()
    stack = LocalStack(Path(args.workdir) if args.workdir else None)
    with stack:
        regions = example_regions()
        stack.start_node_agent({region: [f"{region}-a"] for region in regions})
        objects = stack.apply_examples()
        stack.wait_for_examples(objects)
        plane = stack.plane
        print(
            f"\nSwitchboard is up in {time.monotonic() - started:.1f}s "
            f"(Kubernetes {plane.version()}).\n",
            flush=True,
        )
        print("$ kubectl get regions,rooms -A")
        print(plane.kubectl("get", "regions,rooms", "-A").stdout, flush=True)
        print("$ kubectl get pods -A -l app.kubernetes.io/part-of=switchboard -o wide")
        print(
            plane.kubectl(
                "get", "pods", "-A", "-l", "app.kubernetes.io/part-of=switchboard", "-o", "wide"
            ).stdout,
            flush=True,
        )
        print(f"Use it:  export KUBECONFIG={plane.kubeconfig}")
        print(f"         {plane.binaries.kubectl} get switchboard -A")
        print(f"Logs:    {stack.workdir}", flush=True)
        if not args.exit_when_ready:
            print("Press Ctrl-C to stop everything.", flush=True)
            wait_for_signal()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="switchboard-dev",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="bring up Switchboard on the local cluster")
    up.add_argument("--workdir", help="keep certificates, data and logs here")
    up.add_argument("--exit-when-ready", action="store_true", help="stop once the examples are up")
    up.set_defaults(run=_up)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
