"""Pure pod-status computation: phase, conditions and container statuses from a pod snapshot.

The agent writes status only when the result of `desired_status` differs from what it last
wrote, so everything here must be deterministic for an unchanged snapshot.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .containerstate import ContainerSnapshot, Running, Terminated, Waiting, timestamp

READY_TO_START = "PodReadyToStartContainers"
INITIALIZED = "Initialized"
CONTAINERS_READY = "ContainersReady"
READY = "Ready"
OWNED_CONDITIONS = (READY_TO_START, INITIALIZED, CONTAINERS_READY, READY)

PENDING, RUNNING, SUCCEEDED, FAILED = "Pending", "Running", "Succeeded", "Failed"
TERMINAL_PHASES = (SUCCEEDED, FAILED)

OWNED_FIELDS = (
    "phase",
    "hostIP",
    "hostIPs",
    "podIP",
    "podIPs",
    "startTime",
    "containerStatuses",
    "initContainerStatuses",
)


@dataclass(frozen=True)
class PodSnapshot:
    restart_policy: str
    host_ip: str
    pod_ip: str | None
    start_time: datetime | None
    sandbox_ready: bool
    init_containers: tuple[ContainerSnapshot, ...]
    containers: tuple[ContainerSnapshot, ...]
    readiness_gates: tuple[str, ...] = ()
    # Being deleted: once every container has stopped, the pod is finished whatever the policy.
    terminating: bool = False


@dataclass(frozen=True)
class _Counts:
    pending_init: int = 0
    failed_init: int = 0
    running: int = 0
    waiting: int = 0
    stopped: int = 0
    succeeded: int = 0


def _count(snapshot: PodSnapshot) -> _Counts:
    pending_init = failed_init = running = waiting = stopped = succeeded = 0
    for init in snapshot.init_containers:
        ended = init.state if isinstance(init.state, Terminated) else None
        if ended is None and isinstance(init.state, Waiting):
            ended = init.last_state
        if ended is None:
            pending_init += 1
        elif not ended.succeeded:
            failed_init += 1
    for container in snapshot.containers:
        state = container.state
        if isinstance(state, Running):
            running += 1
        elif isinstance(state, Terminated):
            stopped += 1
            succeeded += int(state.succeeded)
        elif container.last_state is not None:
            # Waiting to be restarted counts as stopped, as in the kubelet.
            stopped += 1
        else:
            waiting += 1
    return _Counts(pending_init, failed_init, running, waiting, stopped, succeeded)


def pod_phase(snapshot: PodSnapshot) -> str:
    """The pod phase by the kubelet's rules (getPhase), from container states alone."""
    counts = _count(snapshot)
    policy = snapshot.restart_policy
    if counts.failed_init and policy == "Never":
        return FAILED
    if counts.pending_init or counts.waiting:
        return PENDING
    if counts.running or not counts.stopped:
        return RUNNING if counts.running else PENDING
    all_succeeded = counts.stopped == counts.succeeded
    if snapshot.terminating or policy == "Never":
        return SUCCEEDED if all_succeeded else FAILED
    # Always restarts everything; OnFailure restarts what failed.
    return RUNNING if policy == "Always" or not all_succeeded else SUCCEEDED


def _names(containers: Sequence[ContainerSnapshot]) -> str:
    return "[" + " ".join(c.name for c in containers) + "]"


def _conditions(
    snapshot: PodSnapshot, phase: str, gate_conditions: Mapping[str, str]
) -> dict[str, tuple[bool, str | None, str | None]]:
    """Owned condition type -> (status, reason, message)."""
    result: dict[str, tuple[bool, str | None, str | None]] = {}
    result[READY_TO_START] = (snapshot.sandbox_ready, None, None)

    incomplete = [
        c
        for c in snapshot.init_containers
        if not (isinstance(c.state, Terminated) and c.state.succeeded)
    ]
    if incomplete:
        message = f"containers with incomplete status: {_names(incomplete)}"
        result[INITIALIZED] = (False, "ContainersNotInitialized", message)
    else:
        result[INITIALIZED] = (True, None, None)

    unready = [c for c in snapshot.containers if not c.ready]
    if phase == SUCCEEDED:
        containers_ready: tuple[bool, str | None, str | None] = (False, "PodCompleted", None)
    elif unready:
        message = f"containers with unready status: {_names(unready)}"
        containers_ready = (False, "ContainersNotReady", message)
    else:
        containers_ready = (True, None, None)
    result[CONTAINERS_READY] = containers_ready

    if not containers_ready[0]:
        result[READY] = containers_ready
    else:
        missing = [g for g in snapshot.readiness_gates if gate_conditions.get(g) != "True"]
        if missing:
            message = f'the status of pod readiness gates is not "True": {missing}'
            result[READY] = (False, "ReadinessGatesNotReady", message)
        else:
            result[READY] = (True, None, None)
    return result


def desired_status(
    snapshot: PodSnapshot,
    previous_conditions: Sequence[Mapping[str, Any]],
    other_conditions: Sequence[Mapping[str, Any]],
    now: datetime,
) -> dict[str, Any]:
    """The status fields the node owns.

    `previous_conditions` (what was last written) keeps lastTransitionTime stable while a
    condition's status is unchanged; `other_conditions` are the pod's conditions written by
    others, read for readiness gates.
    """
    phase = pod_phase(snapshot)
    gate_conditions = {c.get("type", ""): c.get("status", "") for c in other_conditions}
    previous = {c.get("type"): c for c in previous_conditions}
    conditions = []
    for kind, (ok, reason, message) in _conditions(snapshot, phase, gate_conditions).items():
        status = "True" if ok else "False"
        before = previous.get(kind)
        if before is not None and before.get("status") == status:
            transition = before["lastTransitionTime"]
        else:
            transition = timestamp(now)
        condition: dict[str, Any] = {
            "type": kind,
            "status": status,
            "lastTransitionTime": transition,
        }
        if reason:
            condition["reason"] = reason
        if message:
            condition["message"] = message
        conditions.append(condition)

    status: dict[str, Any] = {
        "phase": phase,
        "conditions": conditions,
        "hostIP": snapshot.host_ip,
        "hostIPs": [{"ip": snapshot.host_ip}],
        "containerStatuses": [c.to_api() for c in snapshot.containers],
    }
    if snapshot.pod_ip:
        status["podIP"] = snapshot.pod_ip
        status["podIPs"] = [{"ip": snapshot.pod_ip}]
    if snapshot.start_time is not None:
        status["startTime"] = timestamp(snapshot.start_time)
    if snapshot.init_containers:
        status["initContainerStatuses"] = [c.to_api() for c in snapshot.init_containers]
    return status


def owned_status(status: Mapping[str, Any]) -> dict[str, Any]:
    """The node-owned part of a pod status, comparable with `desired_status` output."""
    owned = {key: status[key] for key in OWNED_FIELDS if status.get(key) is not None}
    owned["conditions"] = [
        c for c in status.get("conditions") or [] if c.get("type") in OWNED_CONDITIONS
    ]
    return owned


def foreign_conditions(status: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [c for c in status.get("conditions") or [] if c.get("type") not in OWNED_CONDITIONS]


def status_patch(uid: str, desired: Mapping[str, Any]) -> dict[str, Any]:
    """A strategic-merge patch for pods/status: conditions merge by type, container statuses
    are replaced whole, and the UID guards against writing to a recreated namesake.

    Conditions merge field by field, so a reason or message that no longer applies is
    cleared explicitly.
    """
    status = dict(desired)
    # podIPs/hostIPs merge by IP; a changed address must replace the list, not join it.
    for key in ("podIPs", "hostIPs"):
        if key in status:
            status[key] = [*status[key], {"$patch": "replace"}]
    status["conditions"] = [
        {"reason": None, "message": None, **condition}
        for condition in desired.get("conditions", [])
    ]
    return {"metadata": {"uid": uid}, "status": status}
