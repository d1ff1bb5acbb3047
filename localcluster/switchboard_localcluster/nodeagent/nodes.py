"""Node registration, the node Lease heartbeat, and node status reports.

Like the kubelet, node status is written only when it changes or when the report interval
has passed; liveness is carried by the Lease, renewed much more often.
"""

from __future__ import annotations

import asyncio
import logging
import platform
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .config import NodeConfig
from .containerstate import timestamp
from .kube import MERGE_PATCH, Kube, KubeError

log = logging.getLogger(__name__)

LEASE_NAMESPACE = "kube-node-lease"
REGION_LABEL = "topology.kubernetes.io/region"
ZONE_LABEL = "topology.kubernetes.io/zone"
HOSTNAME_LABEL = "kubernetes.io/hostname"
OS_LABEL = "kubernetes.io/os"
ARCH_LABEL = "kubernetes.io/arch"
RUNTIME_VERSION = "switchboard-local://0.1.0"
_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}

# Condition type -> (status, reason, message), as a healthy kubelet reports them.
HEALTHY_CONDITIONS = {
    "MemoryPressure": (
        "False",
        "KubeletHasSufficientMemory",
        "kubelet has sufficient memory available",
    ),
    "DiskPressure": ("False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    "PIDPressure": ("False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
    "Ready": ("True", "KubeletReady", "kubelet is posting ready status"),
}


def micro_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class NodeIdentity:
    config: NodeConfig
    address: str
    kubelet_version: str
    boot_id: str

    @property
    def name(self) -> str:
        return self.config.name


def node_labels(node: NodeConfig) -> dict[str, str]:
    return {
        **node.labels,
        HOSTNAME_LABEL: node.name,
        OS_LABEL: "linux",
        ARCH_LABEL: _ARCH.get(platform.machine(), platform.machine()),
        REGION_LABEL: node.region,
        ZONE_LABEL: node.zone,
    }


def node_object(identity: NodeIdentity) -> dict[str, Any]:
    node = identity.config
    spec: dict[str, Any] = {}
    if node.taints:
        spec["taints"] = node.taints
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": node.name,
            "labels": node_labels(node),
            "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": spec,
    }


def node_status(
    identity: NodeIdentity, heartbeat: datetime, transitions: Mapping[str, str]
) -> dict[str, Any]:
    """The status a healthy node reports; `transitions` keeps each condition's transition time."""
    capacity = dict(identity.config.capacity)
    conditions = [
        {
            "type": kind,
            "status": status,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": timestamp(heartbeat),
            "lastTransitionTime": transitions.get(kind, timestamp(heartbeat)),
        }
        for kind, (status, reason, message) in HEALTHY_CONDITIONS.items()
    ]
    return {
        "capacity": capacity,
        "allocatable": capacity,
        "conditions": conditions,
        "addresses": [
            {"type": "InternalIP", "address": identity.address},
            {"type": "Hostname", "address": identity.name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
        "nodeInfo": {
            "machineID": uuid.uuid5(uuid.NAMESPACE_DNS, identity.name).hex,
            "systemUUID": str(uuid.uuid5(uuid.NAMESPACE_URL, identity.name)),
            "bootID": identity.boot_id,
            "kernelVersion": platform.release(),
            "osImage": "Switchboard local node agent",
            "containerRuntimeVersion": RUNTIME_VERSION,
            "kubeletVersion": identity.kubelet_version,
            "operatingSystem": "linux",
            "architecture": _ARCH.get(platform.machine(), platform.machine()),
        },
    }


def lease_object(
    identity: NodeIdentity, node_uid: str, duration: int, now: datetime
) -> dict[str, Any]:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": identity.name,
            "namespace": LEASE_NAMESPACE,
            # Owned by the Node so the garbage collector removes it with the Node.
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "Node", "name": identity.name, "uid": node_uid}
            ],
        },
        "spec": {
            "holderIdentity": identity.name,
            "leaseDurationSeconds": duration,
            "renewTime": micro_time(now),
        },
    }


class NodeKeeper:
    """Registers one Node, keeps it Ready, and renews its Lease."""

    def __init__(
        self,
        kube: Kube,
        identity: NodeIdentity,
        lease_duration_seconds: int,
        lease_renew_seconds: float,
        status_report_seconds: float,
    ) -> None:
        self.kube = kube
        self.identity = identity
        self._lease_duration = lease_duration_seconds
        self._lease_renew = lease_renew_seconds
        self._status_report = status_report_seconds
        self._uid = ""
        self._transitions: dict[str, str] = {}
        self._lease_exists = False

    @property
    def path(self) -> str:
        return f"/api/v1/nodes/{self.identity.name}"

    async def register(self) -> None:
        """Create the Node (or adopt an existing one), then report status and take the Lease."""
        desired = node_object(self.identity)
        try:
            node = await self.kube.request("POST", "/api/v1/nodes", desired)
            log.info("node registered node=%s", self.identity.name)
        except KubeError as error:
            if not error.conflict:
                raise
            patch = {"metadata": {"labels": desired["metadata"]["labels"]}}
            node = await self.kube.request("PATCH", self.path, patch, content_type=MERGE_PATCH)
            log.info("node adopted node=%s", self.identity.name)
        self._uid = node["metadata"]["uid"]
        for condition in (node.get("status") or {}).get("conditions") or []:
            wanted = HEALTHY_CONDITIONS.get(condition.get("type"))
            if wanted and condition.get("status") == wanted[0]:
                self._transitions[condition["type"]] = condition["lastTransitionTime"]
        await self.report_status()
        await self.renew_lease()

    async def report_status(self) -> None:
        now = datetime.now(UTC)
        status = node_status(self.identity, now, self._transitions)
        for condition in status["conditions"]:
            self._transitions.setdefault(condition["type"], condition["lastTransitionTime"])
        await self.kube.request(
            "PATCH", f"{self.path}/status", {"status": status}, content_type=MERGE_PATCH
        )

    async def renew_lease(self) -> None:
        lease = lease_object(self.identity, self._uid, self._lease_duration, datetime.now(UTC))
        path = f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases"
        if not self._lease_exists:
            try:
                await self.kube.request("POST", path, lease)
                self._lease_exists = True
                return
            except KubeError as error:
                if not error.conflict:
                    raise
        try:
            await self.kube.request(
                "PATCH", f"{path}/{self.identity.name}", lease, content_type=MERGE_PATCH
            )
            self._lease_exists = True
        except KubeError as error:
            if error.not_found:
                self._lease_exists = False
            raise

    async def keep_alive(self) -> None:
        """Renew the Lease and re-report status periodically until cancelled."""
        loop = asyncio.get_running_loop()
        next_report = loop.time() + self._status_report
        while True:
            await asyncio.sleep(self._lease_renew)
            try:
                if loop.time() >= next_report:
                    await self.report_status()
                    next_report = loop.time() + self._status_report
                await self.renew_lease()
            except KubeError as error:
                if error.not_found:
                    # The Node was deleted under us: register it again rather than vanish.
                    await self._register_quietly()
                else:
                    log.warning("node heartbeat failed node=%s error=%s", self.identity.name, error)
            except Exception as error:  # the heartbeat must outlive any one failure
                log.warning("node heartbeat failed node=%s error=%r", self.identity.name, error)

    async def _register_quietly(self) -> None:
        try:
            await self.register()
        except Exception as error:  # retried at the next heartbeat
            log.warning("node re-registration failed node=%s error=%r", self.identity.name, error)

    async def deregister(self) -> None:
        try:
            await self.kube.request("DELETE", self.path)
            log.info("node deleted node=%s", self.identity.name)
        except KubeError as error:
            if not error.not_found:
                raise
