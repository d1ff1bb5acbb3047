"""Which pod incarnations are lost, and which rooms must leave their pod now: read from the
capacity picture, never merely because a pod turned not-Ready (CAPACITY.md), and on silence
only by the lease rules (docs/contract.md, "Leases", C4-C6)."""

from __future__ import annotations

from collections.abc import Collection

from switchboard_operator.logic.capacity.model import LossReason, LostPod, RoomToMove
from switchboard_operator.logic.capacity.picture import CapacityPicture
from switchboard_operator.logic.capacity.pod_state import PodState
from switchboard_operator.logic.leases import LeaseTiming, silent_and_fenced

Incarnation = tuple[str, str]
"""(pod key, UID)."""


def silent_pods(
    picture: CapacityPicture, term_start: float, now: float, timing: LeaseTiming
) -> set[Incarnation]:
    """Current incarnations whose silence alone moves their rooms now: C5 for pods that
    speak leases (or have not said yet), C6 for pods that do not, per Region."""
    regions = {state.region for state in picture.pods()}
    silent: set[Incarnation] = set()
    for region in regions:
        pods = {state.key: state for state in picture.region_pods(region)}
        ledgers = {key: state.acks for key, state in pods.items()}
        for silence in silent_and_fenced(ledgers, term_start, now, timing):
            silent.add((silence.pod, pods[silence.pod].uid))
    return silent


def lost_pods(
    picture: CapacityPicture,
    now: float,
    silent: Collection[Incarnation],
    unconfirmed_timeout: float,
) -> list[LostPod]:
    """Incarnations that still hold rooms but are lost: Pod deleted or ended, replaced by a
    new UID, fenced, or silent (`silent`, from `silent_pods`). Never merely not-Ready."""
    lost = [
        state.lost(reason)
        for state in picture.incarnations()
        if state.rooms
        and (reason := _loss_reason(state, now, silent, unconfirmed_timeout)) is not None
    ]
    return sorted(lost, key=lambda p: (p.pod, p.uid))


def rooms_to_move(
    picture: CapacityPicture,
    now: float,
    silent: Collection[Incarnation],
    unconfirmed_timeout: float,
) -> list[RoomToMove]:
    """Every room that must leave its pod now: the rooms of lost pods, and of draining
    pods past their drain deadline. Ordered by pod, then largest reservation first."""
    moves: list[RoomToMove] = []
    for state in picture.incarnations():
        if not state.rooms:
            continue
        reason = _loss_reason(state, now, silent, unconfirmed_timeout)
        if reason is None and state.draining and _past(state.drain_deadline, now):
            reason = LossReason.DRAIN_DEADLINE
        if reason is not None:
            moves.extend(RoomToMove(placed, reason) for placed in state.rooms.values())
    return sorted(
        moves, key=lambda m: (m.placed.pod, m.placed.pod_uid, -m.placed.reservation, m.room)
    )


def _loss_reason(
    state: PodState, now: float, silent: Collection[Incarnation], unconfirmed_timeout: float
) -> LossReason | None:
    if state.retired is not None:
        return state.retired
    if state.ended:
        return LossReason.POD_ENDED
    if state.fenced:
        return LossReason.FENCED
    if state.confirmed:
        silent_now = (state.key, state.uid) in silent
    else:
        # Named only by a restored Room status: neither the Pod watch (complete before
        # any Room is read) nor a report has shown it, so the Pod is gone.
        silent_now = now - state.first_seen_at > unconfirmed_timeout
    return LossReason.REPORTS_MISSING if silent_now else None


def _past(deadline: float | None, now: float) -> bool:
    return deadline is not None and now >= deadline
