"""What the control plane answers a capacity report with: its acknowledgement, the pod's
complete room assignments, and drain and close commands (docs/contract.md)."""

from __future__ import annotations

from collections.abc import Callable

from switchboard_api.contract import CapacityReport, ReportResponse
from switchboard_operator.logic.capacity import CapacityPicture, ReportOutcome
from switchboard_operator.logic.timestamps import format_time


def report_response(
    picture: CapacityPicture,
    report: CapacityReport,
    outcome: ReportOutcome,
    *,
    max_participants: Callable[[str], int],
    failover_timeout: float,
) -> ReportResponse:
    """The answer to `report`, once applied to `picture` with `outcome`. `max_participants`
    gives each assigned room's participant limit (from its Room)."""
    pod = f"{report.namespace}/{report.pod_name}"
    state = picture.incarnation(pod, report.pod_uid)
    placed = picture.rooms_on(pod, report.pod_uid) if outcome.accepted else []
    deadline = state.drain_deadline if state is not None else None
    # Validated in one call from plain data: a pod may hold thousands of rooms, and one
    # model per assignment would cost more than the rest of the report together.
    return ReportResponse.model_validate(
        {
            "acknowledged": outcome.accepted,
            "sequence": report.sequence,
            "failoverTimeoutSeconds": failover_timeout,
            "assignments": [
                {"room": p.room, "maxParticipants": max_participants(p.room)} for p in placed
            ],
            "drain": bool(state is not None and state.draining),
            "drainDeadline": format_time(deadline) if deadline else None,
            # A stray that lives on another pod now has moved: the SFU sees it missing from
            # its assignments and says `room-moved`. Only rooms placed nowhere are closed.
            "close": [r for r in outcome.strays if picture.placement_of(r) is None],
        }
    )
