"""What the control plane answers a capacity report with: its acknowledgement, the pod's
complete room assignments, and drain and close commands (docs/contract.md)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from switchboard_api.contract import CapacityReport, ReportResponse, RoomAssignment
from switchboard_operator.logic.capacity import CapacityPicture, ReportOutcome
from switchboard_operator.logic.timestamps import format_time


def report_response(
    picture: CapacityPicture,
    report: CapacityReport,
    outcome: ReportOutcome,
    *,
    max_participants: Callable[[str], int],
    failover_timeout: float,
    previous: Mapping[str, RoomAssignment] | None = None,
) -> ReportResponse:
    """The answer to `report`, once applied to `picture` with `outcome`. `max_participants`
    gives each assigned room's participant limit (from its Room). `previous`: the
    assignments of the last answer to this pod, by room; those that have not changed are
    taken over as they are (a pod answers every second, and its assignments rarely change)."""
    pod = f"{report.namespace}/{report.pod_name}"
    state = picture.incarnation(pod, report.pod_uid)
    placed = picture.rooms_on(pod, report.pod_uid) if outcome.accepted else []
    deadline = state.drain_deadline if state is not None else None
    known = previous or {}
    # Validated in one call: a pod may hold thousands of rooms, and validating an
    # assignment costs more than the rest of its share of the report. One validated
    # before is passed as it is (pydantic does not validate a model instance again).
    return ReportResponse.model_validate(
        {
            "acknowledged": outcome.accepted,
            "sequence": report.sequence,
            "failoverTimeoutSeconds": failover_timeout,
            "assignments": [
                _assignment(p.room, max_participants(p.room), known.get(p.room)) for p in placed
            ],
            "drain": bool(state is not None and state.draining),
            "drainDeadline": format_time(deadline) if deadline else None,
            # A stray that lives on another pod now has moved: the SFU sees it missing from
            # its assignments and says `room-moved`. Only rooms placed nowhere are closed.
            "close": [r for r in outcome.strays if picture.placement_of(r) is None],
        }
    )


def _assignment(
    room: str, max_participants: int, previous: RoomAssignment | None
) -> RoomAssignment | dict[str, object]:
    if previous is not None and previous.max_participants == max_participants:
        return previous
    return {"room": room, "maxParticipants": max_participants}
