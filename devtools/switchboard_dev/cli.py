"""`switchboard-dev up`: Switchboard on the embedded local cluster, with the examples applied
and the demo page served.

It prints `kubectl get regions,rooms -A`, the pods, the demo page's, the join API's and
Prometheus' addresses, a demo API key and a join command, writes them to `<workdir>/env`, then keeps
running until Ctrl-C (or exits at once with --exit-when-ready).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from switchboard_dev.images import main as images_main
from switchboard_dev.stack import LocalStack, WorkdirInUse, example_regions
from switchboard_localcluster.cli import wait_for_signal

READY_LINE = "Press Ctrl-C to stop everything."
"""The last line `up` prints once everything is ready (and env is written)."""


def _up(args: argparse.Namespace) -> int:
    started = time.monotonic()
    try:
        stack = LocalStack(Path(args.workdir).resolve() if args.workdir else None)
    except WorkdirInUse as error:
        print(f"switchboard-dev: {error}", file=sys.stderr)
        return 1
    with stack:
        regions = example_regions()
        stack.start_node_agent({region: [f"{region}-a"] for region in regions})
        stack.install_switchboard()
        objects = stack.apply_examples()
        stack.wait_for_examples(objects)
        if args.prometheus:
            stack.start_prometheus()
        summary = stack.start_demo()
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
        env_path = summary.write_env()
        try:
            print(summary.text() + "\n", flush=True)
            if not args.exit_when_ready:
                print(READY_LINE, flush=True)
                wait_for_signal()
                print("\nStopping...", flush=True)
        finally:
            env_path.unlink(missing_ok=True)
    if not args.exit_when_ready:
        print("Stopped.", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["images"]:
        return images_main(argv[1:])
    parser = argparse.ArgumentParser(
        prog="switchboard-dev",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="bring up Switchboard on the local cluster")
    up.add_argument(
        "--workdir",
        help="keep certificates, data, logs and the env file here (default: a new temporary "
        "directory, removed on exit)",
    )
    up.add_argument("--exit-when-ready", action="store_true", help="stop once the examples are up")
    up.add_argument(
        "--no-prometheus",
        dest="prometheus",
        action="store_false",
        help="do not run Prometheus beside the cluster",
    )
    up.set_defaults(run=_up)
    commands.add_parser(
        "images", help="build the container images (cached) and print their sizes (see --help)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
