"""The local control plane on cores of its own, as a cluster's control-plane nodes are.

On one small machine the API server, etcd and the controllers share every core with the
operator, the SFU pods and the benchmark, so a failover's rate against the API server's
ceiling mixes two questions: whether the operator keeps the API server busy, and what the
others' CPU takes from it. `placement_e2e.py --split-cores` asks the first alone: the
control plane gets the first half of the CPUs this process may use, everything else (the
benchmark, and every process it starts, which inherit its affinity) the other half.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def halves() -> tuple[set[int], set[int]]:
    """(control-plane CPUs, everyone else's CPUs): the CPUs this process may use, split."""
    available = sorted(os.sched_getaffinity(0))
    if len(available) < 2:
        raise SystemExit("--split-cores needs at least two CPUs")
    middle = len(available) // 2
    return set(available[:middle]), set(available[middle:])


def pin_self(cpus: set[int]) -> None:
    """This thread, and every thread and process it starts from now on, runs on `cpus`."""
    os.sched_setaffinity(0, cpus)


def pin_process(pid: int, cpus: set[int]) -> None:
    """Every thread of a running process (a Go binary has many) runs on `cpus`; threads it
    starts later inherit it."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(ProcessLookupError, FileNotFoundError):
            os.sched_setaffinity(int(task.name), cpus)


def describe(cpus: set[int]) -> str:
    return ",".join(str(c) for c in sorted(cpus))
