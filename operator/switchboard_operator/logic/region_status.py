"""A Region's status — counts, TURN URIs and the Ready/Progressing/Degraded conditions.

Computed from what was observed; the adapter writes only the fields that differ.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from switchboard_api.region import RegionConditionType
from switchboard_operator.logic.conditions import set_condition


@dataclass(frozen=True)
class Problem:
    """Why the Region cannot be reconciled as asked: a reason and a message a human can act on."""

    reason: str
    message: str


@dataclass(frozen=True)
class RegionObservation:
    generation: int | None
    sfu_desired: int
    sfu_ready: int
    sfu_draining: int
    sfu_outdated: int
    turn_enabled: bool
    turn_desired: int
    turn_ready: int
    turn_uris: Sequence[str]
    problem: Problem | None = None
    totals: RegionLoad | None = None
    """Rooms, capacity and measured load from the SFU reports (None before any)."""
    sfu_pods: Sequence[Mapping[str, str]] = ()
    """The SFU pods the operator created and trusts (`logic/sfu_trust.py`)."""
    sfu_current: int | None = None
    """SFU pods that exist and are not on their way out (cordoned or draining)."""
    scaling: Scaling | None = None
    """The autoscaler's latest decision (None: autoscaling disabled or not decided yet)."""


@dataclass(frozen=True)
class Scaling:
    """What the Region's status shows of the autoscaler."""

    at_max: bool
    needed: int
    max_replicas: int
    last_scale_time: str | None
    last_scale_reason: str | None
    held_by_reports: str | None = None
    """Why a due scale-down waits for reports (None: none does)."""


@dataclass(frozen=True)
class RegionLoad:
    """Aggregates shown in the Region's status, rounded so that noise causes no writes."""

    rooms: int
    capacity: float
    load: float


def region_status(
    observed: RegionObservation, conditions: Sequence[Mapping[str, Any]], now: str
) -> dict[str, Any]:
    o = observed
    sfu_ok = o.sfu_ready >= max(o.sfu_desired, 1)
    turn_ok = not o.turn_enabled or o.turn_ready >= max(o.turn_desired, 1)
    rolling = o.sfu_outdated > 0 or o.sfu_draining > 0

    def cond(type_: RegionConditionType, ok: bool, reason: str, message: str) -> None:
        nonlocal conditions
        conditions = set_condition(
            conditions,
            type_=type_.value,
            status="True" if ok else "False",
            reason=reason,
            message=message,
            observed_generation=o.generation,
            now=now,
        )

    if o.problem is not None:
        cond(RegionConditionType.DEGRADED, True, o.problem.reason, o.problem.message)
        cond(RegionConditionType.READY, False, o.problem.reason, o.problem.message)
    else:
        cond(RegionConditionType.DEGRADED, False, "AsExpected", "No problem found.")
        if sfu_ok and turn_ok:
            cond(RegionConditionType.READY, True, "WorkloadsReady", _counts(o))
        else:
            waiting = "SfuPodsNotReady" if not sfu_ok else "TurnNotReady"
            cond(RegionConditionType.READY, False, waiting, _counts(o))
    progressing = o.problem is None and (not sfu_ok or not turn_ok or rolling)
    if progressing:
        reason = "RollingUpdate" if o.sfu_outdated else "Scaling" if sfu_ok else "PodsStarting"
        cond(RegionConditionType.PROGRESSING, True, reason, _counts(o))
    else:
        cond(RegionConditionType.PROGRESSING, False, "Stable", "Nothing to change.")

    for type_, status, reason, message in _scaling_conditions(o.scaling, conditions):
        cond(type_, status, reason, message)

    sfu: dict[str, Any] = {
        "desiredReplicas": o.sfu_desired,
        "readyReplicas": o.sfu_ready,
        "drainingReplicas": o.sfu_draining,
        "pods": [dict(p) for p in o.sfu_pods],
    }
    if o.sfu_current is not None:
        sfu["currentReplicas"] = o.sfu_current
    if o.scaling is not None and o.scaling.last_scale_time is not None:
        sfu["lastScaleTime"] = o.scaling.last_scale_time
        sfu["lastScaleReason"] = o.scaling.last_scale_reason
    status: dict[str, Any] = {
        "observedGeneration": o.generation,
        "conditions": list(conditions),
        "sfu": sfu,
        "turnURIs": list(o.turn_uris),
    }
    if o.totals is not None:
        status["rooms"] = o.totals.rooms
        status["capacity"] = round(o.totals.capacity, 1)
        status["load"] = round(o.totals.load, 1)
    status["turn"] = (
        {"desiredReplicas": o.turn_desired, "readyReplicas": o.turn_ready}
        if o.turn_enabled
        else None
    )
    return status


def _counts(o: RegionObservation) -> str:
    text = f"SFU pods ready {o.sfu_ready}/{o.sfu_desired}"
    if o.sfu_draining:
        text += f", {o.sfu_draining} draining"
    if o.sfu_outdated:
        text += f", {o.sfu_outdated} on an outdated template"
    if o.turn_enabled:
        text += f"; TURN pods ready {o.turn_ready}/{o.turn_desired}"
    return text + "."


def _scaling_conditions(
    scaling: Scaling | None, conditions: Sequence[Mapping[str, Any]]
) -> list[tuple[RegionConditionType, bool, str, str]]:
    """AtMaxReplicas and ScaleDownHeld, as the autoscaler's decision says: set while they
    hold, cleared after, and cleared when autoscaling is turned off (never added then)."""
    shown = {c.get("type") for c in conditions}
    result: list[tuple[RegionConditionType, bool, str, str]] = []
    for type_, active, cleared in (
        (
            RegionConditionType.AT_MAX_REPLICAS,
            (
                "DemandAboveMaxReplicas",
                f"Demand needs {scaling.needed} SFU pods; maxReplicas is {scaling.max_replicas}.",
            )
            if scaling is not None and scaling.at_max
            else None,
            ("WithinMaxReplicas", "Demand fits within maxReplicas SFU pods."),
        ),
        (
            RegionConditionType.SCALE_DOWN_HELD,
            ("ReportsMissing", scaling.held_by_reports)
            if scaling is not None and scaling.held_by_reports is not None
            else None,
            ("NotHeld", "No scale-down waits for reports."),
        ),
    ):
        if active is not None:
            result.append((type_, True, *active))
        elif scaling is not None:
            result.append((type_, False, *cleared))
        elif type_.value in shown:
            result.append((type_, False, cleared[0], "Autoscaling is disabled."))
    return result
