"""The autoscaling benchmark's tables: the figures the issue asks for per policy, and where
each policy's pod-minutes go (`autoscaling_sim.SPENT`)."""

from __future__ import annotations

import statistics

from autoscaling_sim import SPENT, Result


def print_table(results: list[Result], oracle: float) -> None:
    """One row per policy: the figures the issue asks for, pod-minutes against the oracle."""
    width = max(14, *(len(r.name) for r in results))
    header = (
        f"{'policy':<{width}} {'decision s (p50/max)':>21} {'to capacity s (p50)':>20} "
        f"{'room-s waiting':>15} {'pod-min':>8} {'vs oracle':>10} {'creates':>8} "
        f"{'rooms cut':>10}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        decisions = (
            f"{_seconds(statistics.median(r.decision_times))}/{_seconds(max(r.decision_times))}"
            if r.decision_times
            else "-"
        )
        capacity = _seconds(statistics.median(r.capacity_times)) if r.capacity_times else "-"
        print(
            f"{r.name:<{width}} {decisions:>21} {capacity:>20} {r.waiting_room_seconds:>15.0f} "
            f"{r.pod_seconds / 60:>8.1f} {r.pod_seconds / oracle:>9.2f}x {r.creates:>8} "
            f"{r.cut:>10}"
        )


def _seconds(value: float) -> str:
    # Whole seconds in the simulation; measured ones keep a decimal.
    return f"{value:.0f}" if value == int(value) else f"{value:.1f}"


def print_breakdown(results: list[Result], oracle: float) -> None:
    """Per simulated policy: its pod-minutes by where they went, and against the oracle."""
    width = max(14, *(len(r.name) for r in results))
    header = f"{'pod-minutes':<{width}} " + " ".join(f"{k:>14}" for k in SPENT)
    print(header + f" {'total':>8} {'held after last arrival':>24}")
    print("-" * (len(header) + 34))
    for r in results:
        cells = " ".join(f"{r.spent[k] / 60:>14.1f}" for k in SPENT)
        print(
            f"{r.name:<{width}} {cells} {sum(r.spent.values()) / 60:>8.1f} "
            f"{r.held_after_arrivals / 60:>24.1f}"
        )
    print(f"{'oracle':<{width}} {oracle / 60:>14.1f}")
