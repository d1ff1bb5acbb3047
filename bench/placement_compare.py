"""`placement_e2e.py` on two checkouts, interleaved on the same machine: base, branch, base,
branch, ... Each run is the checkout's own benchmark in its own network namespace, with its
own virtualenv, control plane, operator and SFU processes. Prints each run's headline as it
comes, then a table: the median of each side, the ratio branch/base of the medians, and the
ratio of each branch run to the base run just before it (the pair least apart in time).
No thresholds.

    .venv/bin/python bench/placement_compare.py --base ../base-worktree [--repeat 3] \
        [--outdir DIR] [-- placement_e2e.py arguments]

The base checkout needs its own `make bootstrap` (its `.venv`).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

Figures = dict[str, float]

STEP_ROW = re.compile(
    r"^(?P<label>\S+/s|burst)\s+(?P<offered>\d+)\s+(?P<created>\d+|inf)\s+(?P<placed>\d+)\s+"
    r"(?P<c50>[\d.]+)\s+(?P<c99>[\d.]+)\s+(?P<s50>[\d.]+)\s+(?P<s99>[\d.]+)\s+[\d.]+\s+"
    r"[\d.]+x\s+[\d.]+x\s+(?P<writes>[\d.]+)\s+(?P<other>\d+)\s+\S+$"
)
CPU_ROW = re.compile(r"^(?P<label>\S+/s|burst)((?:\s+[\d.]+){8})\s+\d+%$")
PATTERNS: dict[str, re.Pattern[str]] = {
    "write round trip p50 ms": re.compile(r"^baseline: one API write round trip p50 ([\d.]+) ms"),
    "max sustained rooms/s": re.compile(r"^highest rate sustained without backlog: (\d+)"),
    "burst placements/s": re.compile(r"^burst of \d+ rooms created at once: (\d+)"),
    "ceiling create+status/s": re.compile(r"^\s+create \+ status write\s+(\d+)/s"),
    "ceiling status write/s": re.compile(r"^\s+status write only\s+(\d+)/s"),
    "ceiling status write after/s": re.compile(r"^status-write ceiling again, .*: (\d+)/s"),
    "failover % of mean ceiling": re.compile(
        r"^\s+failover \(detection -> all\) .* (\d+)% of their"
    ),
    "failover rooms": re.compile(r"^failover: .* which held (\d+) rooms"),
    "failover detection->all ms": re.compile(r"^\s+detection -> all re-placed\s+([\d.]+) ms"),
    "failover rooms/s": re.compile(r"^\s+detection -> all re-placed .*, (\d+) rooms/s"),
    "failover % of ceiling": re.compile(r"^\s+detection -> all re-placed .*, (\d+)% of the API"),
    "failover kill->all ms": re.compile(r"^\s+kill -> all rooms re-placed\s+([\d.]+) ms"),
    "failover kill->first ms": re.compile(r"^\s+kill -> first room re-placed\s+([\d.]+) ms"),
    "failover kill->Pod Failed ms": re.compile(r"^\s+kill -> Pod seen Failed\s+([\d.]+) ms"),
    "failover kill->Pod deleted ms": re.compile(r"^\s+kill -> Pod seen deleted\s+([\d.]+) ms"),
    "failover status writes/room": re.compile(r"^\s+per moved room: ([\d.]+) Room status"),
    "failover operator CPU ms/room": re.compile(r"^\s+per moved room: .*, ([\d.]+) ms operator"),
}
COMPLETE = "failover rooms/s"
"""The failover's own figure, printed once its last room has moved: a run without it
ended early."""
OPERATOR_EXITED = "operator exited"
"""The stack's log line when the operator process ended (e.g. its lease renewal timed out
on a loaded machine): that run's figures include a failover of the operator itself."""


def parse(output: str) -> Figures:
    """The figures one placement_e2e.py run printed."""
    figures: Figures = {"operator restarts": 0.0}
    for line in output.splitlines():
        if OPERATOR_EXITED in line:
            figures["operator restarts"] += 1
        for name, pattern in PATTERNS.items():
            match = pattern.match(line)
            if match:
                figures[name] = float(match.group(1))
        step = STEP_ROW.match(line)
        if step:
            label = step["label"]
            figures[f"{label} client p50 ms"] = float(step["c50"])
            figures[f"{label} client p99 ms"] = float(step["c99"])
            figures[f"{label} server p50 ms"] = float(step["s50"])
            figures[f"{label} server p99 ms"] = float(step["s99"])
            figures[f"{label} placed/s"] = float(step["placed"])
            figures[f"{label} status writes/room"] = float(step["writes"])
            figures[f"{label} other writes"] = float(step["other"])
            continue
        cpu = CPU_ROW.match(line)
        if cpu:
            values = [float(v) for v in cpu.group(2).split()]
            label = cpu["label"]
            figures[f"{label} CPU ms/placement: operator"] = values[0]
            figures[f"{label} CPU ms/placement: apiserver"] = values[1]
            figures[f"{label} CPU ms/placement: all ours"] = sum(values[:7])
            figures[f"{label} CPU ms/placement: not ours"] = values[7]
    first, last = figures.get("failover kill->first ms"), figures.get("failover kill->all ms")
    rooms, ceiling = figures.get("failover rooms"), figures.get("ceiling status write/s")
    if first is not None and last is not None and rooms and last > first:
        # The re-placement itself, without the time it took to see the pod lost.
        rate = rooms / ((last - first) / 1000)
        figures["failover first->all rooms/s"] = rate
        if ceiling:
            figures["failover first->all % of ceiling"] = 100 * rate / ceiling
    return figures


@dataclass
class Side:
    name: str
    checkout: Path
    runs: list[Figures]


def wait_for_quieter_machine(max_load: float | None, patience: float) -> None:
    """Wait (at most `patience` seconds) until the 1-minute load average is below
    `max_load`: on a shared machine, a run started under a burst of other work can lose
    its operator's lease and measure nothing."""
    if max_load is None:
        return
    deadline = time.monotonic() + patience
    while os.getloadavg()[0] >= max_load and time.monotonic() < deadline:
        time.sleep(10)


def run_once(
    side: Side, index: int, args: Sequence[str], outdir: Path, attempt: int = 0
) -> Figures:
    env = dict(os.environ)
    env.pop("SWITCHBOARD_IN_NETNS", None)  # each run in a namespace of its own
    env["PATH"] = f"{side.checkout / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    command = [
        "tools/in-netns.sh",
        ".venv/bin/python",
        "bench/placement_e2e.py",
        *args,
    ]
    started = time.monotonic()
    done = subprocess.run(
        command,
        cwd=side.checkout,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )
    out = outdir / f"{index}-{side.name}{f'-retry{attempt}' if attempt else ''}.txt"
    out.write_text(done.stdout)
    figures = parse(done.stdout)
    summary = ", ".join(
        f"{k} {figures[k]:g}"
        for k in ("max sustained rooms/s", "burst placements/s", "failover % of ceiling")
        if k in figures
    )
    print(
        f"run {index} {side.name}{' (again)' if attempt else ''}: exit {done.returncode}, "
        f"{time.monotonic() - started:.0f}s, load {os.getloadavg()[0]:.1f}, "
        f"{summary or 'no figures'} ({out})",
        flush=True,
    )
    return figures


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.2f}"


def ratio(branch: float | None, base: float | None) -> str:
    if branch is None or base is None or base == 0:
        return "-"
    return f"{branch / base:.2f}"


def median(runs: list[Figures], name: str) -> float | None:
    values = [run[name] for run in runs if name in run]
    return statistics.median(values) if values else None


def order(names: set[str]) -> list[str]:
    """Top-level figures first, then the steps in rate order, then the burst."""

    def key(name: str) -> tuple[int, float, str]:
        head = name.split(" ", 1)[0]
        if head.endswith("/s") and head[:-2].replace(".", "").isdigit():
            return (1, float(head[:-2]), name)
        if head == "burst":
            return (2, 0.0, name)
        return (0, 0.0, name)

    return sorted(names, key=key)


def print_table(base: Side, branch: Side) -> None:
    names = set().union(*base.runs, *branch.runs)
    pairs = list(zip(base.runs, branch.runs, strict=False))
    width = max(len(n) for n in names) if names else 10
    print(
        f"\n{'figure':<{width}} {'base runs':>20} {'branch runs':>20} {'base':>7} "
        f"{'branch':>7} {'ratio':>6}  per pair"
    )
    for name in order(names):
        base_runs = " ".join(fmt(r.get(name)) for r in base.runs)
        branch_runs = " ".join(fmt(r.get(name)) for r in branch.runs)
        b, n = median(base.runs, name), median(branch.runs, name)
        per_pair = " ".join(ratio(after.get(name), before.get(name)) for before, after in pairs)
        print(
            f"{name:<{width}} {base_runs:>20} {branch_runs:>20} {fmt(b):>7} {fmt(n):>7} "
            f"{ratio(n, b):>6}  {per_pair}"
        )
    print(
        "\nbase/branch: the median of each side's runs; ratio: branch/base of the medians; "
        "per pair: each branch run over the base run just before it. For rates and the share "
        "of the ceiling higher is better; for latencies, writes and CPU lower is better. "
        "Steps a side did not reach (not sustained the rate before) are missing from its "
        "median. Raw outputs are kept in --outdir."
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, required=True, help="the base checkout")
    parser.add_argument(
        "--branch", type=Path, default=Path.cwd(), help="the checkout compared (default: here)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side")
    parser.add_argument("--outdir", type=Path, help="keep each run's output here")
    parser.add_argument(
        "--retries", type=int, default=1, help="runs again a run that ended without figures"
    )
    parser.add_argument(
        "--max-load",
        type=float,
        help="start a run only once the 1-minute load average is below this (or --patience "
        "seconds have passed)",
    )
    parser.add_argument("--patience", type=float, default=300.0)
    parser.add_argument("bench_args", nargs="*", help="after --: placement_e2e.py arguments")
    args = parser.parse_args(argv)
    outdir = args.outdir or Path(f"/tmp/placement-compare-{int(time.time())}")
    outdir.mkdir(parents=True, exist_ok=True)
    base = Side("base", args.base.resolve(), [])
    branch = Side("branch", args.branch.resolve(), [])
    for side in (base, branch):
        if not (side.checkout / ".venv" / "bin" / "python").exists():
            sys.exit(f"{side.checkout} has no .venv: run `make bootstrap` there first")
    print(f"base {base.checkout}, branch {branch.checkout}, outputs in {outdir}", flush=True)
    for i in range(args.repeat):
        for side in (base, branch):
            for attempt in range(1 + args.retries):
                wait_for_quieter_machine(args.max_load, args.patience)
                figures = run_once(side, i, args.bench_args, outdir, attempt)
                if COMPLETE in figures:
                    break
            side.runs.append(figures)
    print_table(base, branch)


if __name__ == "__main__":
    main()
