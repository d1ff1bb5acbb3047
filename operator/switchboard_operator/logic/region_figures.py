"""Per-Region figures from the capacity picture, as the operator's metrics export them (and
as the autoscaler reads them): capacity, reserved and measured load, utilisation, and the
SFU pods whose reports are late. Pure: the clock is an argument.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from switchboard_operator.logic.capacity import CapacityPicture, PodState


@dataclass(frozen=True)
class RegionFigures:
    capacity: float
    """Units offered by the Region's pods that take rooms (Ready, reporting, not draining)."""
    reserved: float
    """Units held by the Region's rooms and unattributed load, on every current pod."""
    load: float
    """Load the Region's pods measured, as last reported."""
    reports_late: int
    """Pods whose last report is older than the freshness bound, or that never reported
    once their start-up grace ran out."""

    @property
    def utilization(self) -> float:
        """Reserved over capacity; 0 with no capacity (nothing to divide, nothing used)."""
        return self.reserved / self.capacity if self.capacity > 0 else 0.0


def region_figures(
    picture: CapacityPicture, regions: Iterable[str], now: float
) -> dict[str, RegionFigures]:
    """Figures for each of `regions` (a Region without pods gets zeros)."""
    figures = {}
    for region in regions:
        totals = picture.region_totals(region, now)
        figures[region] = RegionFigures(
            capacity=totals.capacity,
            reserved=totals.used,
            load=totals.load,
            reports_late=sum(_late(picture, pod, now) for pod in picture.region_pods(region)),
        )
    return figures


def _late(picture: CapacityPicture, pod: PodState, now: float) -> bool:
    if pod.retired is not None or pod.failed or not pod.confirmed:
        return False
    if pod.reported_at is None:
        deadline = picture.startup_deadline(pod)
        return deadline is not None and now > deadline
    return pod.reported_at < now - picture.model.report_freshness_seconds


WAITING_PHASES = frozenset({"Pending", "Unschedulable"})


@dataclass(frozen=True)
class RegionRow:
    """Everything the metrics say about one Region."""

    figures: RegionFigures
    sfu_desired: int
    sfu_current: int
    sfu_ready: int
    sfu_draining: int
    turn_desired: int
    turn_ready: int
    min_replicas: int
    max_replicas: int
    target_utilization: float
    rooms_waiting: int


@dataclass(frozen=True)
class ControlPlaneFigures:
    regions: dict[str, RegionRow]
    rooms: dict[tuple[str, str], int]
    """Room count by (Region placed in, or "" while not placed; phase)."""


def control_plane_figures(
    regions: Mapping[str, Mapping[str, Any]],
    sfu_pods: Mapping[str, Iterable[Mapping[str, Any]]],
    rooms: Iterable[Mapping[str, Any]],
    picture: CapacityPicture,
    now: float,
) -> ControlPlaneFigures:
    """The control plane's figures from what the operator caches: Region bodies (spec and
    the status it wrote), SFU pod bodies by Region, Room bodies, and the capacity picture.

    A waiting room (Pending or Unschedulable) counts for the Region its spec pins, if any;
    unpinned rooms count under "" until the autoscaler attributes demand to Regions.
    """
    by_phase: dict[tuple[str, str], int] = {}
    waiting: dict[str, int] = {}
    for room in rooms:
        status = room.get("status") or {}
        phase = status.get("phase") or "Pending"
        region = status.get("region") or ""
        by_phase[(region, phase)] = by_phase.get((region, phase), 0) + 1
        if phase in WAITING_PHASES:
            wanted = (room.get("spec") or {}).get("region") or ""
            waiting[wanted] = waiting.get(wanted, 0) + 1
    figures = region_figures(picture, regions, now)
    rows = {}
    for name, body in regions.items():
        autoscaling = ((body.get("spec") or {}).get("sfu") or {}).get("autoscaling") or {}
        status = body.get("status") or {}
        sfu_status = status.get("sfu") or {}
        turn_status = status.get("turn") or {}
        pods = [p for p in sfu_pods.get(name, ()) if not _ended(p)]
        rows[name] = RegionRow(
            figures=figures[name],
            sfu_desired=int(sfu_status.get("desiredReplicas") or 0),
            sfu_current=len(pods),
            sfu_ready=sum(_ready(p) for p in pods),
            sfu_draining=int(sfu_status.get("drainingReplicas") or 0),
            turn_desired=int(turn_status.get("desiredReplicas") or 0),
            turn_ready=int(turn_status.get("readyReplicas") or 0),
            min_replicas=int(autoscaling.get("minReplicas") or 0),
            max_replicas=int(autoscaling.get("maxReplicas") or 0),
            target_utilization=float(autoscaling.get("targetUtilization") or 0.0),
            rooms_waiting=waiting.get(name, 0),
        )
    return ControlPlaneFigures(regions=rows, rooms=by_phase)


def _ended(pod: Mapping[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def _ready(pod: Mapping[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
