"""How many SFU pods a Region wants: the fewest that keep its demand (room reservations)
at or below `targetUtilization` of their capacity, plus the buffer, within
`[minReplicas, maxReplicas]`; up at once, down only after demand stayed low for the
stabilisation window, and never on missing reports.

Pure: demand, the reports' freshness and the clock are arguments; what must outlive one
decision is in `ScalingMemory`, which the caller keeps. Which pods go is not decided here
(`sfu_pod_plan`: the emptiest are cordoned and deleted once they hold no room).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from switchboard_api.region import Region

DEMAND_TOLERANCE: Final = 1e-6
"""Slack for float sums: demand exactly at the target needs no further pod."""


@dataclass(frozen=True, slots=True)
class ScalingSpec:
    """The Region fields the decision reads."""

    min_replicas: int
    max_replicas: int
    capacity_per_pod: float
    target_utilization: float
    stabilization_seconds: float
    buffer: int | str | None = None
    enabled: bool = True

    @classmethod
    def of(cls, region: Region) -> ScalingSpec:
        sfu = region.spec.sfu
        scaling = sfu.autoscaling
        return cls(
            min_replicas=sfu.min_replicas,
            max_replicas=sfu.max_replicas,
            capacity_per_pod=sfu.capacity_per_pod,
            target_utilization=scaling.target_utilization,
            stabilization_seconds=float(scaling.scale_down_stabilization_seconds),
            buffer=scaling.buffer,
            enabled=scaling.enabled,
        )


def pods_needed(demand: float, spec: ScalingSpec) -> int:
    """The fewest pods whose capacity at the target utilisation covers `demand`."""
    per_pod = spec.capacity_per_pod * spec.target_utilization
    if demand <= DEMAND_TOLERANCE:
        return 0
    return max(1, math.ceil(demand / per_pod - DEMAND_TOLERANCE))


def buffer_pods(buffer: int | str | None, base: int) -> int:
    """Spare pods on top of `base`: a count, or a percentage of `base` rounded up."""
    if buffer is None:
        return 0
    if isinstance(buffer, int):
        return buffer
    percent = int(buffer.rstrip("%"))
    return math.ceil(base * percent / 100)


def recommend(demand: float, spec: ScalingSpec) -> int:
    """Pods wanted for `demand` now, before stabilisation: within `[min, max]`."""
    if not spec.enabled:
        return spec.min_replicas
    base = max(pods_needed(demand, spec), spec.min_replicas)
    return max(spec.min_replicas, min(spec.max_replicas, base + buffer_pods(spec.buffer, base)))


class Direction(StrEnum):
    UP = "up"
    DOWN = "down"


@dataclass(frozen=True, slots=True)
class ScalingMemory:
    """What the decision needs from the ones before it."""

    desired: int | None = None
    """The count last decided; None before the first decision (e.g. after a restart)."""
    peaks: tuple[tuple[float, int], ...] = ()
    """Recommendations of the stabilisation window that a later one did not exceed, oldest
    first (so the largest is first): their maximum is what scale-down may go down to."""
    last_scale_time: float | None = None
    last_scale_reason: str | None = None


@dataclass(frozen=True, slots=True)
class ScalingDecision:
    desired: int
    needed: int
    at_max: bool
    """Demand needs more pods than maxReplicas (AtMaxReplicas)."""
    direction: Direction | None
    """Set when `desired` changed."""
    reason: str
    """Why `desired` is what it is, for the Region's status and Event."""
    memory: ScalingMemory
    recheck_at: float | None
    """When a scale-down held back by the window may happen, if nothing changes before."""
    held_by_reports: bool = False
    """A scale-down is due but held back because some pod's reports are missing or stale."""
    unreported: tuple[str, ...] = ()
    """When held by reports: the pods (keys) whose reports are missing or stale."""


def decide(
    demand: float,
    spec: ScalingSpec,
    memory: ScalingMemory,
    now: float,
    *,
    current: int,
    unreported: tuple[str, ...] = (),
) -> ScalingDecision:
    """The Region's desired SFU pod count.

    `current` stands in for the previous decision when there was none (after a restart:
    the pods that are up and not cordoned), so a restart neither adds nor removes pods
    until demand says so, and never removes one before a whole window has passed.
    `unreported` are the pods whose reports are missing or stale (`unreported_pods`).
    Scale-up is immediate. Scale-down goes to the largest recommendation of the last
    `stabilization_seconds`, only with every pod's report fresh. A lowered maxReplicas
    applies at once (nothing is cut: the excess pods are cordoned until they are empty).
    """
    needed = pods_needed(demand, spec)
    at_max = spec.enabled and needed > spec.max_replicas
    wanted = recommend(demand, spec)
    previous = memory.desired
    window = spec.stabilization_seconds
    if previous is None:
        previous = max(spec.min_replicas, min(spec.max_replicas, current))
        # Nothing is known of the window before now: it counts as full.
        peaks: tuple[tuple[float, int], ...] = ((now, previous),)
    else:
        peaks = tuple((t, r) for t, r in memory.peaks if t > now - window)
    kept = tuple((t, r) for t, r in peaks if r > wanted)
    peaks = (*kept, (now, wanted))
    ceiling = max(r for _, r in peaks)
    usage = (
        f"demand {demand:.1f} units needs {needed} pod(s) at "
        f"{spec.target_utilization:.0%} of {spec.capacity_per_pod:g} units each"
    )
    held_by_reports = False
    if not spec.enabled:
        desired, reason = spec.min_replicas, "autoscaling is disabled: minReplicas"
    elif wanted >= previous:
        desired = wanted
        reason = _reason(usage, wanted, needed, spec)
    elif ceiling >= previous or unreported:
        # Demand fell, but not for a whole window yet, or some pod's reports are missing.
        desired, held_by_reports = previous, ceiling < previous
        reason = memory.last_scale_reason or _reason(usage, previous, needed, spec)
    else:
        desired = ceiling
        reason = _reason(usage, ceiling, needed, spec)
    desired = max(spec.min_replicas, min(spec.max_replicas, desired))
    direction = None
    if memory.desired is not None and desired != memory.desired:
        direction = Direction.UP if desired > memory.desired else Direction.DOWN
    recheck_at = None
    if spec.enabled and wanted < desired:
        recheck_at = min((t + window for t, r in peaks if r > wanted), default=None)
    changed = direction is not None
    return ScalingDecision(
        desired=desired,
        needed=needed,
        at_max=at_max,
        direction=direction,
        reason=reason,
        memory=ScalingMemory(
            desired=desired,
            peaks=peaks if spec.enabled else (),
            last_scale_time=now if changed else memory.last_scale_time,
            last_scale_reason=reason if changed else memory.last_scale_reason,
        ),
        recheck_at=recheck_at,
        held_by_reports=held_by_reports,
        unreported=unreported if held_by_reports else (),
    )


def hold_started(previous: ScalingDecision | None, decision: ScalingDecision) -> bool:
    """Whether `decision` starts a scale-down hold by missing reports (an Event, once)."""
    return decision.held_by_reports and not (previous is not None and previous.held_by_reports)


def shown_differently(previous: ScalingDecision | None, decision: ScalingDecision) -> bool:
    """Whether the Region's status shows `decision` differently from `previous`: only then
    is the Region reconciled (an unchanged decision costs no API write)."""
    if previous is None:
        return True
    return _shown(previous) != _shown(decision)


def scale_down_held_message(decision: ScalingDecision) -> str:
    """What the ScaleDownHeld condition and Event say: which pods it waits for."""
    pods = ", ".join(decision.unreported)
    return (
        f"Demand needs fewer than {decision.desired} SFU pods, but the reports of {pods} "
        "are missing or stale: no pod is removed until they report again."
    )


def _shown(decision: ScalingDecision) -> tuple[object, ...]:
    return (decision.desired, decision.at_max, decision.held_by_reports, decision.unreported)


def _reason(usage: str, desired: int, needed: int, spec: ScalingSpec) -> str:
    if needed > spec.max_replicas:
        return f"{usage}; capped at maxReplicas {spec.max_replicas}"
    if desired == spec.min_replicas and needed <= spec.min_replicas and not spec.buffer:
        return f"{usage}; minReplicas {spec.min_replicas}"
    extra = f" plus buffer {spec.buffer}" if spec.buffer else ""
    return f"{usage}{extra}: {desired} pod(s)"
