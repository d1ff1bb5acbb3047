"""Rebalance suggestions: hot pods shed rooms that are still empty to cooler pods of the
same region, so that load arriving later lands where there is room for it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from switchboard_operator.logic.capacity import CapacityPicture, PlacedRoom, PodState, assign
from switchboard_operator.logic.placement.model import (
    Placement,
    PlacementRegion,
    PlacementSettings,
)
from switchboard_operator.logic.placement.pods import choose_pod
from switchboard_operator.logic.placement.scheduler import DEFAULT_SETTINGS


@dataclass(frozen=True, slots=True)
class Move:
    """Suggestion: move an empty room from a hot pod to `target`."""

    source: PlacedRoom
    target: Placement

    @property
    def room(self) -> str:
        return self.source.room


def rebalance(
    picture: CapacityPicture,
    regions: Sequence[PlacementRegion],
    now: float,
    settings: PlacementSettings = DEFAULT_SETTINGS,
    threshold: float | None = None,
) -> list[Move]:
    """Suggest moves that bring hot pods back to `threshold` utilization (default: each
    region's high-water mark), without making any target pod hot.

    Only rooms that the pod's fresh report shows empty and that are past the reservation
    hold move: nobody is connected and no participant is likely still arriving. The
    suggestions are decided on a copy of the picture, consistent with one another; the
    caller applies them with `assign` in one synchronous step (or not at all).
    """
    what_if = picture.copy()
    moves: list[Move] = []
    for region in sorted(regions, key=lambda r: r.name):
        limit = region.high_water_mark if threshold is None else threshold
        for pod in list(what_if.region_pods(region.name)):
            if not _hot(pod, limit) or not _fresh(what_if, pod, now):
                continue
            for placed in _empty_rooms(what_if, pod, now):
                target = choose_pod(
                    what_if,
                    region,
                    placed.reservation,
                    now=now,
                    search=settings.search,
                    room=placed.room,
                    exclude={pod.key},
                )
                if target is None or target.used + placed.reservation > limit * target.capacity:
                    continue
                assign(
                    what_if,
                    placed.room,
                    placed.reservation,
                    pod=target.key,
                    pod_uid=target.uid,
                    now=now,
                )
                moves.append(
                    Move(
                        placed,
                        Placement(
                            room=placed.room,
                            region=region.name,
                            pod=target.key,
                            pod_uid=target.uid,
                            reservation=placed.reservation,
                        ),
                    )
                )
                if not _hot(pod, limit):
                    break
    return moves


def _hot(pod: PodState, limit: float) -> bool:
    return pod.capacity > 0 and pod.used > limit * pod.capacity


def _fresh(picture: CapacityPicture, pod: PodState, now: float) -> bool:
    return pod.reported_at is not None and (
        pod.reported_at >= now - picture.model.report_freshness_seconds
    )


def _empty_rooms(picture: CapacityPicture, pod: PodState, now: float) -> list[PlacedRoom]:
    hold = picture.model.reservation_hold_seconds
    empty = [
        placed
        for room, placed in pod.rooms.items()
        if (measured := pod.measured.get(room)) is not None
        and measured.participants == 0
        and now - placed.placed_at >= hold
    ]
    # Largest first: fewest moves to cool the pod down.
    return sorted(empty, key=lambda p: (-pod.effective[p.room], p.room))
