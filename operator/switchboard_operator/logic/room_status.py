"""A Room's status from its placement and its live counters, as a pure function.

The adapter writes only the difference, so an unchanged room costs nothing and a placement
costs exactly one status write.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from switchboard_api.room import RoomConditionType, RoomPhase
from switchboard_operator.logic.conditions import set_condition


@dataclass(frozen=True)
class PlacedOn:
    region: str
    pod: str
    """The pod's name (in the region's namespace)."""
    pod_uid: str
    endpoint: str | None
    reservation: float


@dataclass(frozen=True)
class RoomOutcome:
    """What the control plane decided and observed for a room."""

    placed: PlacedOn | None = None
    participants: int = 0
    unschedulable: tuple[str, str] | None = None
    """(reason, message) when nothing can take the room."""
    migrating: tuple[str, str] | None = None
    """(reason, message) when it lost its pod and waits for another."""
    waiting: tuple[str, str] | None = None
    """(reason, message) when it waits for its region's SFU pods to start: still Pending."""
    closed_at: str | None = None


def room_status(
    current: Mapping[str, Any], generation: int | None, outcome: RoomOutcome, now: str
) -> dict[str, Any]:
    conditions: Sequence[Mapping[str, Any]] = current.get("conditions") or []
    status: dict[str, Any] = {"observedGeneration": generation}

    def scheduled(ok: bool, reason: str, message: str) -> None:
        nonlocal conditions
        conditions = set_condition(
            conditions,
            type_=RoomConditionType.SCHEDULED.value,
            status="True" if ok else "False",
            reason=reason,
            message=message,
            observed_generation=generation,
            now=now,
        )

    if outcome.closed_at is not None:
        status.update(
            phase=RoomPhase.CLOSED.value,
            closedAt=outcome.closed_at,
            message="The room was empty for its emptyTimeoutSeconds.",
            participants=0,
        )
        scheduled(False, "Closed", "The room is closed.")
        status.update(pod=None, podUID=None, endpoint=None)
    elif outcome.placed is not None:
        placed = outcome.placed
        phase = RoomPhase.RUNNING if outcome.participants > 0 else RoomPhase.SCHEDULED
        status.update(
            phase=phase.value,
            region=placed.region,
            pod=placed.pod,
            podUID=placed.pod_uid,
            endpoint=placed.endpoint,
            reservation=placed.reservation,
            participants=outcome.participants,
            message=None,
        )
        scheduled(True, "Placed", f"Placed on SFU pod {placed.pod} in region {placed.region}.")
    elif outcome.migrating is not None:
        reason, message = outcome.migrating
        status.update(
            phase=RoomPhase.MIGRATING.value, message=message, pod=None, podUID=None, endpoint=None
        )
        scheduled(False, reason, message)
    elif (refusal := outcome.unschedulable or outcome.waiting) is not None:
        # Nothing takes the room (Unschedulable), or it waits for pods starting (Pending).
        reason, message = refusal
        phase = RoomPhase.UNSCHEDULABLE if outcome.unschedulable else RoomPhase.PENDING
        status.update(
            phase=phase.value, message=message, pod=None, podUID=None, endpoint=None, region=None
        )
        scheduled(False, reason, message)
    else:
        status.update(phase=RoomPhase.PENDING.value)
        scheduled(False, "Pending", "Waiting for placement.")
    status["conditions"] = list(conditions)
    return status
