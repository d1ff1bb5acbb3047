"""Containers a previous agent left running, adopted by the agent that restarts.

A kubelet restart does not stop the pods it runs: the containers live on in the runtime,
and the new kubelet finds them by pod UID, keeps reporting their status and starts no
duplicates. The podman runtime names every container after its pod's UID
(`k8s_<container>_<pod UID>_<suffix>`, the process-namespace holder `k8s_POD_<pod UID>`),
so a restarted agent lists its store, hands each pod's worker that pod's running
containers, and removes the rest once every node's pods have been listed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

PREFIX = "k8s"
PID_HOLDER = "POD"
"""The pseudo container name of a pod's process-namespace holder (container names are
lowercase DNS labels, so no real container is called this)."""


def container_name(container: str, pod_uid: str, suffix: str) -> str:
    return f"{PREFIX}_{container}_{pod_uid}_{suffix}"


def holder_name(pod_uid: str) -> str:
    return f"{PREFIX}_{PID_HOLDER}_{pod_uid}"


@dataclass(frozen=True)
class Survivor:
    """One container found in the store when the agent started."""

    name: str
    """The runtime's name for it."""
    container_id: str
    pod_uid: str
    container: str
    """The pod's container it runs (PID_HOLDER for the process-namespace holder)."""
    running: bool


def parse_name(name: str) -> tuple[str, str] | None:
    """(pod UID, container) of a container this agent's runtime named; None otherwise."""
    parts = name.split("_")
    if len(parts) == 3 and parts[0] == PREFIX and parts[1] == PID_HOLDER:
        return parts[2], PID_HOLDER
    if len(parts) == 4 and parts[0] == PREFIX:
        return parts[2], parts[1]
    return None


def survivors_from_listing(listing: str) -> list[Survivor]:
    """The containers of `podman ps --all --format json` that this agent's runtime named."""
    found = []
    for entry in json.loads(listing or "[]") or []:
        names: list[str] = entry.get("Names") or []
        parsed = parse_name(names[0]) if names else None
        if parsed is None:
            continue
        found.append(
            Survivor(
                name=names[0],
                container_id=str(entry.get("Id", "")),
                pod_uid=parsed[0],
                container=parsed[1],
                running=str(entry.get("State", "")).lower() == "running",
            )
        )
    return found


class Survivors:
    """The running survivors, until each pod's worker claims its own."""

    def __init__(self, found: Iterable[Survivor] = ()) -> None:
        self._by_pod: dict[str, dict[str, Survivor]] = {}
        for survivor in found:
            if survivor.running:
                self._by_pod.setdefault(survivor.pod_uid, {})[survivor.container] = survivor

    def claim(self, pod_uid: str) -> Mapping[str, Survivor]:
        """The pod's running containers by container name (each handed out once)."""
        return self._by_pod.pop(pod_uid, {})

    def unclaimed(self) -> list[Survivor]:
        """Every survivor no worker claimed; forgotten here (the caller removes them)."""
        left = [s for pod in self._by_pod.values() for s in pod.values()]
        self._by_pod.clear()
        return left

    def __len__(self) -> int:
        return sum(len(pod) for pod in self._by_pod.values())


def adoptable(pod: Mapping[str, Any]) -> bool:
    """Whether a pod's survivors may be adopted: the API says the pod was running.
    Otherwise (pending, finished) its survivors are removed and the pod handled as new."""
    return (pod.get("status") or {}).get("phase") == "Running"
