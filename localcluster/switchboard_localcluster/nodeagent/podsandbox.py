"""Everything a pod's containers share: its address, its volumes on disk, and how to launch
each container (argv, environment, mounts) the way a container runtime would."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .atomicwriter import write_payload
from .downward import PodFacts
from .environment import ReferencedObjects, container_environment, env_references
from .expansion import expand, expand_all
from .images import ImageCatalogue
from .kube import Kube
from .mountpoints import MountPoints
from .process import Mount
from .quantity import parse_quantity
from .runtime import ContainerPlan, ImageHandle, LocalHandle, Resources
from .securitycontext import security_settings, verify_run_as_non_root
from .servicehosts import HOSTS_PATH, ServiceHosts
from .volumes import (
    FILE_BACKED_KINDS,
    TokenSource,
    VolumeError,
    VolumeObjects,
    token_sources,
    volume_kind,
    volume_payload,
    volume_references,
)

log = logging.getLogger(__name__)

TOKEN_REFRESH_FRACTION = 0.8
TOKEN_MAX_AGE = timedelta(hours=24)
HOSTNAME_MAX = 63


@dataclass
class IssuedToken:
    token: str
    issued: datetime
    expires: datetime

    def due(self, now: datetime) -> bool:
        lifetime = self.expires - self.issued
        return now >= self.issued + lifetime * TOKEN_REFRESH_FRACTION or (
            now - self.issued >= TOKEN_MAX_AGE
        )


@dataclass(frozen=True)
class NodeContext:
    """What every pod sandbox on this agent shares."""

    kube: Kube
    catalogue: ImageCatalogue
    mount_points: MountPoints
    work_dir: Path
    base_env: Mapping[str, str]
    service_env: Mapping[str, str]
    service_hosts: ServiceHosts | None = None
    """Keeps each pod's /etc/hosts naming the cluster's Services (None: the host's file)."""


def pod_hostname(pod: Mapping[str, Any]) -> str:
    spec = pod.get("spec", {})
    return (spec.get("hostname") or pod["metadata"]["name"])[:HOSTNAME_MAX].rstrip("-.")


def pod_log_dir(work_dir: Path, pod: Mapping[str, Any]) -> Path:
    meta = pod["metadata"]
    return work_dir / "logs" / f"{meta['namespace']}_{meta['name']}_{meta['uid']}"


class PodSandbox:
    def __init__(
        self,
        node: NodeContext,
        pod: Mapping[str, Any],
        pod_ip: str,
        host_ip: str,
        node_allocatable: Mapping[str, str],
    ) -> None:
        self.node = node
        self.pod = pod
        self.pod_ip = pod_ip
        self.host_ip = host_ip
        self._allocatable = node_allocatable
        meta = pod["metadata"]
        self.namespace: str = meta["namespace"]
        self.uid: str = meta["uid"]
        self.state_dir = node.work_dir / "pods" / self.uid
        self.log_dir = pod_log_dir(node.work_dir, pod)
        self._tokens: dict[TokenSource, IssuedToken] = {}
        self._volume_paths: dict[str, Path] = {}
        self._mount_targets: list[Path] = []
        self.hosts_file = self.state_dir / "etc-hosts"

    @property
    def facts(self) -> PodFacts:
        return PodFacts(self.pod, self.pod_ip, self.host_ip, self._allocatable)

    @property
    def volumes(self) -> list[Mapping[str, Any]]:
        return list(self.pod.get("spec", {}).get("volumes") or [])

    # --- volumes ---------------------------------------------------------------------------

    async def setup(self) -> None:
        """Materialise every volume and create the containers' mount points (idempotent)."""
        await self.refresh_volumes()
        if self.node.service_hosts is not None:
            self.node.service_hosts.attach(self.hosts_file, self.pod, self.pod_ip)
        if not self._mount_targets:
            self._acquire_mount_points()

    @property
    def fs_group(self) -> int | None:
        group = (self.pod.get("spec", {}).get("securityContext") or {}).get("fsGroup")
        return None if group is None else int(group)

    async def refresh_volumes(self) -> None:
        """Write volumes whose content changed (ConfigMap/Secret edits, token rotation).

        As the kubelet does: files are group-owned by the pod's fsGroup, and an emptyDir is
        writable by any user (group-owned by fsGroup, setgid, when there is one).
        """
        objects = await self._fetch_volume_objects()
        for volume in self.volumes:
            name = volume["name"]
            kind = volume_kind(volume)
            if kind in FILE_BACKED_KINDS:
                path = self.state_dir / "volumes" / name
                payload = volume_payload(volume, self.facts, objects)
                if write_payload(path, payload, group=self.fs_group):
                    log.info(
                        "volume written pod=%s/%s volume=%s",
                        self.namespace,
                        self.pod["metadata"]["name"],
                        name,
                    )
            elif kind == "emptyDir":
                path = self.state_dir / "volumes" / name
                if not path.is_dir():
                    path.mkdir(parents=True)
                    if self.fs_group is not None:
                        os.chown(path, -1, self.fs_group)
                    path.chmod(0o777 | (stat.S_ISGID if self.fs_group is not None else 0))
            elif kind == "hostPath":
                path = self._host_path(volume["hostPath"])
            else:
                raise VolumeError(
                    f"volume {name!r}: {kind} volumes are not supported by the local node agent"
                )
            self._volume_paths[name] = path

    def _host_path(self, spec: Mapping[str, Any]) -> Path:
        path = Path(spec["path"])
        kind = spec.get("type") or ""
        if kind == "DirectoryOrCreate":
            path.mkdir(parents=True, exist_ok=True)
        elif kind == "FileOrCreate":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(exist_ok=True)
        elif kind in ("Directory", "File") and not path.exists():
            raise VolumeError(f"hostPath {path} does not exist")
        return path

    async def _fetch_volume_objects(self) -> VolumeObjects:
        config_map_names, secret_names = volume_references(self.volumes)
        config_maps, secrets = await self._fetch(config_map_names, secret_names)
        now = datetime.now(UTC)
        for source in token_sources(self.volumes):
            issued = self._tokens.get(source)
            if issued is None or issued.due(now):
                self._tokens[source] = await self._request_token(source)
        return VolumeObjects(
            config_maps=config_maps,
            secrets=secrets,
            tokens={source: issued.token for source, issued in self._tokens.items()},
        )

    async def _fetch(
        self, config_map_names: set[str], secret_names: set[str]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        base = f"/api/v1/namespaces/{self.namespace}"
        cm_list = sorted(config_map_names)
        secret_list = sorted(secret_names)
        results = await asyncio.gather(
            *(self.node.kube.get(f"{base}/configmaps/{name}") for name in cm_list),
            *(self.node.kube.get(f"{base}/secrets/{name}") for name in secret_list),
        )
        config_maps = dict(zip(cm_list, results[: len(cm_list)], strict=True))
        secrets = dict(zip(secret_list, results[len(cm_list) :], strict=True))
        return config_maps, secrets

    async def _request_token(self, source: TokenSource) -> IssuedToken:
        account = self.pod.get("spec", {}).get("serviceAccountName") or "default"
        spec: dict[str, Any] = {
            "expirationSeconds": source.expiration_seconds,
            # Bound to the pod: the token dies with this pod incarnation.
            "boundObjectRef": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": self.pod["metadata"]["name"],
                "uid": self.uid,
            },
        }
        if source.audience:
            spec["audiences"] = [source.audience]
        response = await self.node.kube.request(
            "POST",
            f"/api/v1/namespaces/{self.namespace}/serviceaccounts/{account}/token",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec},
        )
        status = response["status"]
        expires = datetime.fromisoformat(status["expirationTimestamp"].replace("Z", "+00:00"))
        return IssuedToken(token=status["token"], issued=datetime.now(UTC), expires=expires)

    def _acquire_mount_points(self) -> None:
        """Mount points, and working directories an image would have had, on the host."""
        for container in self._all_containers():
            for mount in container.get("volumeMounts") or []:
                target = Path(mount["mountPath"])
                source = self._mount_source(mount, {})
                self.node.mount_points.acquire(target, is_file=source.is_file())
                self._mount_targets.append(target)
            working_dir = container.get("workingDir")
            if working_dir and not Path(working_dir).is_dir():
                self.node.mount_points.acquire(Path(working_dir), is_file=False)
                self._mount_targets.append(Path(working_dir))

    def _mount_source(self, mount: Mapping[str, Any], env: Mapping[str, str]) -> Path:
        name = mount["name"]
        if name not in self._volume_paths:
            raise VolumeError(f"volumeMount {mount['mountPath']!r} names unknown volume {name!r}")
        source = self._volume_paths[name]
        sub_path = mount.get("subPath") or ""
        if mount.get("subPathExpr"):
            sub_path = expand(mount["subPathExpr"], env)
        if sub_path:
            source = source / sub_path
            if not source.exists():
                # As the kubelet does for emptyDir/hostPath: a missing subPath is a new directory.
                source.mkdir(parents=True, exist_ok=True)
        return source

    # --- containers ------------------------------------------------------------------------

    def _all_containers(self) -> list[Mapping[str, Any]]:
        spec = self.pod.get("spec", {})
        return [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]

    async def plan(self, container: Mapping[str, Any], image: ImageHandle) -> ContainerPlan:
        """One start of a container: its env (re-read at every start), argv, mounts,
        security settings and limits, as the kubelet hands them to a runtime."""
        config_map_names, secret_names = env_references([container])
        config_maps, secrets = await self._fetch(config_map_names, secret_names)
        hostname = pod_hostname(self.pod)
        if isinstance(image, LocalHandle):
            # A local stand-in has no image config: it gets the agent's base environment.
            image_env = {**self.node.base_env, "HOSTNAME": hostname, **image.local.env}
            keep_visible = list(image.local.keep_visible)
        else:
            image_env, keep_visible = {"HOSTNAME": hostname}, []
            verify_run_as_non_root(self.pod, container, getattr(image, "user", ""))
        env = container_environment(
            self.facts,
            container,
            ReferencedObjects(config_maps=config_maps, secrets=secrets),
            self.node.service_env,
            image_env,
        )
        mounts = [
            Mount(
                source=str(self._mount_source(mount, env)),
                target=mount["mountPath"],
                readOnly=bool(mount.get("readOnly")),
            )
            for mount in container.get("volumeMounts") or []
        ]
        if self.node.service_hosts is not None and self.hosts_file.exists():
            mounts.append(Mount(source=str(self.hosts_file), target=HOSTS_PATH, readOnly=True))
        command = container.get("command")
        return ContainerPlan(
            name=container["name"],
            pod_key=self.uid,
            command=expand_all(list(command), env) if command else None,
            args=expand_all(list(container.get("args") or ()), env),
            env=env,
            hostname=hostname,
            working_dir=container.get("workingDir"),
            mounts=mounts,
            security=security_settings(self.pod, container),
            resources=container_resources(container),
            keep_visible=keep_visible,
            share_process_namespace=bool(self.pod.get("spec", {}).get("shareProcessNamespace")),
        )

    def log_path(self, container_name: str, restart_count: int) -> Path:
        directory = self.log_dir / container_name
        directory.mkdir(parents=True, exist_ok=True)
        return directory / f"{restart_count}.log"

    def teardown(self) -> None:
        """Release mount points and remove volume contents; logs are kept for debugging."""
        if self.node.service_hosts is not None:
            self.node.service_hosts.detach(self.hosts_file)
        for target in self._mount_targets:
            self.node.mount_points.release(target)
        self._mount_targets.clear()
        shutil.rmtree(self.state_dir, ignore_errors=True)


def container_resources(container: Mapping[str, Any]) -> Resources:
    resources = container.get("resources") or {}
    limits, requests = resources.get("limits") or {}, resources.get("requests") or {}

    def millis(value: Any) -> int | None:
        return None if value is None else int(parse_quantity(str(value)) * 1000)

    memory = limits.get("memory")
    return Resources(
        memory_limit_bytes=None if memory is None else int(parse_quantity(str(memory))),
        cpu_limit_millis=millis(limits.get("cpu")),
        cpu_request_millis=millis(requests.get("cpu")),
    )
