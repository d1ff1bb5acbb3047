"""Which pod incarnations are lost, and which rooms must leave their pod now: read from the
capacity picture, never merely because a pod turned not-Ready (CAPACITY.md)."""

from __future__ import annotations

from switchboard_operator.logic.capacity.model import LossReason, LostPod, RoomToMove
from switchboard_operator.logic.capacity.picture import CapacityPicture
from switchboard_operator.logic.capacity.pod_state import PodState


def lost_pods(picture: CapacityPicture, now: float, failover_timeout: float) -> list[LostPod]:
    """Incarnations that still hold rooms but are lost: reports missing past the failover
    timeout, Pod deleted, replaced by a new UID, or fenced. Never merely not-Ready."""
    lost = [
        state.lost(reason)
        for state in picture.incarnations()
        if state.rooms and (reason := _loss_reason(state, now, failover_timeout)) is not None
    ]
    return sorted(lost, key=lambda p: (p.pod, p.uid))


def rooms_to_move(
    picture: CapacityPicture, now: float, failover_timeout: float
) -> list[RoomToMove]:
    """Every room that must leave its pod now: the rooms of lost pods, and of draining
    pods past their drain deadline. Ordered by pod, then largest reservation first."""
    moves: list[RoomToMove] = []
    for state in picture.incarnations():
        if not state.rooms:
            continue
        reason = _loss_reason(state, now, failover_timeout)
        if reason is None and state.draining and _past(state.drain_deadline, now):
            reason = LossReason.DRAIN_DEADLINE
        if reason is not None:
            moves.extend(RoomToMove(placed, reason) for placed in state.rooms.values())
    return sorted(
        moves, key=lambda m: (m.placed.pod, m.placed.pod_uid, -m.placed.reservation, m.room)
    )


def _loss_reason(state: PodState, now: float, failover_timeout: float) -> LossReason | None:
    if state.retired is not None:
        return state.retired
    if state.fenced:
        return LossReason.FENCED
    heard_at = state.reported_at if state.reported_at is not None else state.first_seen_at
    if now - heard_at > failover_timeout:
        return LossReason.REPORTS_MISSING
    return None


def _past(deadline: float | None, now: float) -> bool:
    return deadline is not None and now >= deadline
