"""What the control plane answers a capacity report with: its acknowledgement, the pod's
complete room assignments, drain and close commands, and the lease it grants
(docs/contract.md, "Leases", C2)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from switchboard_api.contract import CapacityReport, ReportResponse, RoomAssignment
from switchboard_operator.logic.capacity import CapacityPicture, PodState, ReportOutcome
from switchboard_operator.logic.timestamps import format_time


def report_response(
    picture: CapacityPicture,
    report: CapacityReport,
    outcome: ReportOutcome,
    *,
    max_participants: Callable[[str], int],
    failover_timeout: float,
    term: int | None = None,
    lease_seconds: float | None = None,
    previous: Mapping[str, RoomAssignment] | None = None,
) -> ReportResponse:
    """The answer to `report`, once applied to `picture` with `outcome`. `max_participants`
    gives each assigned room's participant limit (from its Room). With `term` and
    `lease_seconds`, a pod that announces a peer endpoint is granted a lease and told its
    Region's other lease-capable pods. `previous`: the assignments of the last answer to
    this pod, by room; those that have not changed are taken over as they are (a pod
    answers every second, and its assignments rarely change)."""
    pod = f"{report.namespace}/{report.pod_name}"
    state = picture.incarnation(pod, report.pod_uid)
    # A fenced pod's rooms are moving (C4): an answer that assigned them would unfence it
    # with rooms another pod is about to get (S4).
    placed = picture.rooms_on(pod, report.pod_uid) if outcome.accepted and not report.fenced else []
    deadline = state.drain_deadline if state is not None else None
    grants_lease = outcome.accepted and lease_seconds is not None and report.peer is not None
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
            "term": term,
            "leaseSeconds": lease_seconds if grants_lease else None,
            "peers": _peers(picture, state) if grants_lease and state is not None else [],
        }
    )


def _peers(picture: CapacityPicture, state: PodState) -> list[dict[str, Any]]:
    """Every other current lease-capable pod of the pod's Region (C2)."""
    return [
        {
            "url": other.peer.url,
            "publicKey": other.peer.public_key,
            "pod": other.key.split("/", 1)[1],
            "podUID": other.uid,
        }
        for other in picture.region_pods(state.region)
        if other is not state and other.peer is not None
    ]


def _assignment(
    room: str, max_participants: int, previous: RoomAssignment | None
) -> RoomAssignment | dict[str, object]:
    if previous is not None and previous.max_participants == max_participants:
        return previous
    return {"room": room, "maxParticipants": max_participants}
