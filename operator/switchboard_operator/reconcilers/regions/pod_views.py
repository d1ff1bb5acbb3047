"""What the SFU pod plan is told about each SFU pod, read off the Pod as the watch shows it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from switchboard_api import labels as keys
from switchboard_operator.kube import bodies
from switchboard_operator.logic import manifests
from switchboard_operator.logic.pod_readiness import ready_changed_after
from switchboard_operator.logic.sfu_pod_plan import SfuPodView
from switchboard_operator.logic.timestamps import parse_time

HostsRooms = Callable[[str, str], bool]
"""Whether the pod `<namespace>/<name>` with that UID has rooms placed on it (the capacity
picture, which leads the pod's hosts-rooms label)."""
Occupancy = Callable[[str], tuple[int, float]]
"""Rooms placed on the pod `<namespace>/<name>` and the units they count (the picture)."""


def pod_view(
    pod: Mapping[str, Any], hosts_rooms: HostsRooms, occupancy: Occupancy | None = None
) -> SfuPodView:
    """What the SFU pod plan needs to know about a pod, as the Pod watch shows it."""
    meta = pod["metadata"]
    pod_labels = meta.get("labels") or {}
    phase = (pod.get("status") or {}).get("phase")
    key = f"{meta['namespace']}/{meta['name']}"
    rooms, used = (0, 0.0) if occupancy is None else occupancy(key)
    return SfuPodView(
        name=meta["name"],
        template_hash=pod_labels.get(manifests.POD_TEMPLATE_HASH, ""),
        ready=bodies.pod_ready(pod),
        deleting=bool(meta.get("deletionTimestamp")),
        terminated=phase in ("Failed", "Succeeded"),
        failed=bodies.pod_failed(pod),
        draining=(meta.get("annotations") or {}).get(keys.DRAIN) == "true",
        cordoned=bool((meta.get("annotations") or {}).get(keys.CORDONED)),
        rooms=rooms,
        used=used,
        hosts_rooms=pod_labels.get(manifests.HOSTS_ROOMS) == manifests.HOSTS_ROOMS_VALUE
        or hosts_rooms(f"{meta['namespace']}/{meta['name']}", meta["uid"]),
        created=meta.get("creationTimestamp") or "",
        exit_reason=_exit_reason(pod),
        never_ready_since=_never_ready_since(pod),
    )


def _never_ready_since(pod: Mapping[str, Any]) -> float | None:
    """When its SFU container started, if it has never been Ready since: the Ready
    condition has not changed after the start (None: Ready once, or not started yet)."""
    if bodies.pod_ready(pod):
        return None
    status = pod.get("status") or {}
    started = [
        parse_time(((c.get("state") or {}).get("running") or {}).get("startedAt"))
        for c in status.get("containerStatuses") or []
    ]
    if not started or None in started:
        return None
    start = max(t for t in started if t is not None)
    if ready_changed_after(pod, start):
        return None  # Ready after the start, and not any more: e.g. fenced, not stalled.
    return start


def _exit_reason(pod: Mapping[str, Any]) -> str:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        terminated = (status.get("state") or {}).get("terminated")
        if terminated:
            return (
                f"{terminated.get('reason', 'Terminated')}, exit code {terminated.get('exitCode')}"
            )
    status = pod.get("status") or {}
    return status.get("reason") or (status.get("phase") or "failed").lower()
