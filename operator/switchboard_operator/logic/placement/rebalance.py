"""Rebalance suggestions: hot pods shed rooms that are still empty to cooler pods of the
same region, so that load arriving later lands where there is room for it; and the
per-region limit on how many rooms may move in any minute."""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Final

from switchboard_operator.logic.capacity import (
    FIT_TOLERANCE,
    CapacityPicture,
    PlacedRoom,
    PodState,
)
from switchboard_operator.logic.placement.model import (
    Placement,
    PlacementRegion,
    PlacementSettings,
)
from switchboard_operator.logic.placement.placing import DEFAULT_SETTINGS
from switchboard_operator.logic.placement.pods import choose_pod

MOVE_WINDOW_SECONDS: Final = 60.0
"""The window `maxMovesPerMinute` counts moves in."""


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
    *,
    settings: PlacementSettings = DEFAULT_SETTINGS,
    threshold: float | None = None,
    max_moves: int | None = None,
) -> list[Move]:
    """Suggest moves that bring hot pods back to `threshold` utilization (default: each
    region's high-water mark), without making any target pod hot; at most `max_moves`.

    Only rooms that the pod's fresh report shows empty and that are past the reservation
    hold move: nobody is connected and no participant is likely still arriving. The
    suggestions are decided on a copy of the picture, consistent with one another; the
    caller applies them with `apply_moves` in one synchronous step (or not at all).
    """
    what_if = picture.copy()
    moves: list[Move] = []
    for region in sorted(regions, key=lambda r: r.name):
        limit = region.high_water_mark if threshold is None else threshold
        # Pods are chosen by the region's policy among those that stay at or below the
        # threshold: Packed must not pick a fuller pod that the move would make hot.
        cooler = dataclasses.replace(region, high_water_mark=min(region.high_water_mark, limit))
        for pod in list(what_if.region_pods(region.name)):
            if not _hot(pod, limit) or not _fresh(what_if, pod, now):
                continue
            for placed in _empty_rooms(what_if, pod, now):
                if max_moves is not None and len(moves) >= max_moves:
                    return moves
                target = choose_pod(
                    what_if,
                    cooler,
                    placed.reservation,
                    now=now,
                    search=settings.search,
                    room=placed.room,
                    exclude={pod.key},
                )
                if target is None or (
                    target.used + placed.reservation > limit * target.capacity + FIT_TOLERANCE
                ):
                    continue
                what_if.assign(
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


def apply_moves(picture: CapacityPicture, moves: Sequence[Move], now: float) -> None:
    """Reserve decided moves in the picture (in the same synchronous step as `rebalance`).

    A moved room keeps the time it has been empty: its new SFU counts from the move, so
    the picture carries the earlier time over and moving never postpones its closing.
    """
    for move in moves:
        source = picture.incarnation(move.source.pod, move.source.pod_uid)
        measured = source.measured.get(move.room) if source is not None else None
        if measured is not None and measured.empty_since_seconds is not None:
            picture.carry_emptiness(move.room, now - measured.empty_since_seconds)
        picture.assign(
            move.room,
            move.source.reservation,
            pod=move.target.pod,
            pod_uid=move.target.pod_uid,
            now=now,
        )


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


class MoveLimiter:
    """The rooms each region's rebalance moved in the last minute, so that it moves at
    most `per_minute` in any 60 s window: rebalance can never churn rooms faster than its
    Region allows, whatever the picture does."""

    def __init__(self) -> None:
        self._moves: dict[str, deque[float]] = {}

    def allowance(self, region: str, per_minute: int, now: float) -> int:
        """Moves `region` may still make at `now`."""
        moved = self._moves.get(region)
        if moved is None:
            return per_minute
        while moved and moved[0] <= now - MOVE_WINDOW_SECONDS:
            moved.popleft()
        return max(0, per_minute - len(moved))

    def record(self, region: str, count: int, now: float) -> None:
        """`count` rooms of `region` moved at `now`."""
        if count > 0:
            self._moves.setdefault(region, deque()).extend([now] * count)

    def retain(self, regions: Collection[str]) -> None:
        """Forget regions that no longer rebalance."""
        for region in self._moves.keys() - set(regions):
            del self._moves[region]
