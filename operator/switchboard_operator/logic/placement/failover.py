"""Failover: re-place the rooms that must leave their pod (lost, fenced, or draining past
its deadline), never back onto that pod, largest rooms first."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from switchboard_operator.logic.capacity import (
    CapacityPicture,
    Displacement,
    LossReason,
    LostPod,
    PlacedRoom,
    RoomToMove,
)
from switchboard_operator.logic.placement.model import (
    Decision,
    Placement,
    PlacementRegion,
    PlacementSettings,
    RoomRequest,
)
from switchboard_operator.logic.placement.placing import DEFAULT_SETTINGS, commit, place


@dataclass(frozen=True, slots=True)
class Replacement:
    """Where a room that had to move went, or why it could go nowhere."""

    previous: PlacedRoom
    reason: LossReason
    decision: Decision

    @property
    def room(self) -> str:
        return self.previous.room

    @property
    def message(self) -> str:
        """What the `Migrating` Event about the move says."""
        return Displacement(self.previous, self.reason).message


def failover_order(moves: Sequence[RoomToMove]) -> list[RoomToMove]:
    """The order rooms are re-placed in: largest reservations first, which packs the
    survivors best. A slice of it, re-placed in turn, keeps the order."""
    return sorted(moves, key=lambda m: (-m.placed.reservation, m.room))


def replace_rooms(
    picture: CapacityPicture,
    moves: Sequence[RoomToMove],
    requests: Mapping[str, RoomRequest],
    regions: Sequence[PlacementRegion],
    now: float,
    *,
    settings: PlacementSettings = DEFAULT_SETTINGS,
) -> list[Replacement]:
    """Take each room off its pod and place it again, excluding that pod (by name: a new
    incarnation of a crashed pod is not trusted with the rooms either).

    Largest reservations go first, which packs the survivors best. A room without a
    request (its Room is gone) is only released. A room that moved since `moves` was
    computed is left alone. Unschedulable rooms end up on no pod, displaced (the picture
    remembers where they were and why until they are placed again).
    """
    replacements: list[Replacement] = []
    for move in failover_order(moves):
        if picture.placement_of(move.room) != move.placed:
            continue
        request = requests.get(move.room)
        if request is None:
            picture.release(move.room)
            continue
        picture.displace(move.room, move.reason)
        # A moving room has participants now: it takes capacity that is up, and never
        # waits for pods that are still starting.
        decision = place(
            request,
            regions,
            picture,
            now,
            settings=settings,
            exclude={move.placed.pod},
            wait=False,
        )
        if isinstance(decision, Placement):
            commit(picture, decision, now)
        replacements.append(Replacement(move.placed, move.reason, decision))
    return replacements


def replace_rooms_of(
    picture: CapacityPicture,
    lost: LostPod,
    requests: Mapping[str, RoomRequest],
    regions: Sequence[PlacementRegion],
    now: float,
    *,
    settings: PlacementSettings = DEFAULT_SETTINGS,
) -> list[Replacement]:
    """Re-place every room of one lost pod incarnation."""
    moves = [RoomToMove(placed, lost.reason) for placed in picture.rooms_on(lost.pod, lost.uid)]
    return replace_rooms(picture, moves, requests, regions, now, settings=settings)
