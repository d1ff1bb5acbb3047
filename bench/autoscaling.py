"""Autoscaling on one scripted load trace (ramp up, plateau, spike, ramp down): the built-in
autoscaler on the local cluster, beside two baselines simulated from the same trace.

By default the trace is compressed `--compress` times (about seven minutes) and played on
its own local stack (control plane, operator, node agent with real SFU pods): Rooms are
created and deleted as the trace says, and their reservations are the demand (no
participants). Printed: decision time (demand crossing the target -> SFU pod created, from
the watch), time to new capacity (crossing -> that pod Ready), room-seconds waiting
(create -> Scheduled), pod-minutes against an oracle that knows the trace, and rooms cut
(must be 0); beside them, on the same trace, the built-in policy, an HPA-style policy and
the LiveKit-chart pattern simulated second by second (`autoscaling_sim.py`).

`--simulate` runs only the simulation, on the full-length trace (about 2.3 hours of
simulated time, in seconds), as this benchmark did before the cluster run existed.

    PATH=$PWD/.venv/bin:$PATH tools/in-netns.sh .venv/bin/python bench/autoscaling.py \\
        [--compress 20] [--load 0.02] [--window 15] [--workdir DIR]
    .venv/bin/python bench/autoscaling.py --simulate [--seed 1] [--startup 20]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from autoscaling_bounds import print_bounds
from autoscaling_cluster import run
from autoscaling_sim import HPA_WINDOW, Shape, Sim, oracle_pod_seconds, simulate, trace
from autoscaling_table import print_breakdown, print_table

from switchboard_api.region import PlacementPolicy


def simulation_only(args: argparse.Namespace) -> None:
    rooms = trace(args.seed)
    placement = PlacementPolicy(args.placement)
    window = args.window or HPA_WINDOW
    results = simulate(
        rooms,
        startup=args.startup,
        window=window,
        metrics_lag=args.metrics_lag,
        placement=placement,
    )
    end = Sim(rooms, args.startup, "").end
    oracle = oracle_pod_seconds(rooms, end)
    print(
        f"trace: {len(rooms)} rooms over {end / 60:.0f} min (ramp, plateau, spike, ramp "
        f"down), {placement.value} placement, pod start-up {args.startup} s, HPA metrics "
        f"{args.metrics_lag} s old, stabilisation {window} s; "
        f"oracle {oracle / 60:.0f} pod-minutes"
    )
    print_table(results, oracle)
    print()
    print_breakdown(results, oracle)
    print_bounds(rooms, oracle, Shape())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--simulate", action="store_true", help="simulation only, no cluster")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--startup", type=int, default=20, help="simulated pod start-up, s")
    parser.add_argument("--metrics-lag", type=int, default=30, help="HPA metrics age, s")
    parser.add_argument(
        "--window",
        type=int,
        help="scale-down stabilisation, s (default: 300 simulated; 300/--compress on the "
        "cluster, the same for the simulated HPA there)",
    )
    parser.add_argument("--placement", choices=[p.value for p in PlacementPolicy], default="Packed")
    parser.add_argument(
        "--compress", type=float, default=20.0, help="cluster: play the trace this much faster"
    )
    parser.add_argument(
        "--load",
        type=float,
        default=0.02,
        help="cluster: rooms alive at once, as a share of the full trace's (~580 on the plateau)",
    )
    parser.add_argument("--workdir", type=Path, help="cluster: keep the stack's files and logs")
    args = parser.parse_args()
    if args.simulate:
        simulation_only(args)
    else:
        run(args)


if __name__ == "__main__":
    main()
