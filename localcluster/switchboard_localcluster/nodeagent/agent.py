"""The node agent: registers its Nodes, watches the Pods bound to them, and runs one worker each."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from switchboard_localcluster.podman import Podman

from .addresses import PodAddressPool
from .adoption import Survivors
from .config import AgentConfig, NodeConfig
from .kube import Kube, KubeError
from .mountpoints import MountPoints
from .nodes import NodeIdentity, NodeKeeper
from .podmanruntime import PodmanRuntime
from .podsandbox import NodeContext
from .podworker import NodeRuntime, PodWorker
from .probing import Prober
from .servicehosts import ServiceHosts

log = logging.getLogger(__name__)

WATCH_TIMEOUT_SECONDS = 300
REGISTER_RETRY_SECONDS = 1.0
# UIDs of pods this agent finished with, so late watch events for them start nothing.
FINISHED_MEMORY = 4096


def service_env(api_server_url: str) -> dict[str, str]:
    """The `kubernetes` Service's link variables, pointing where pods reach the API server here.

    There is no kube-proxy on this machine, so the Service's ClusterIP would lead nowhere;
    the variables name the API server's real (loopback) address instead.
    """
    url = urlparse(api_server_url)
    host = url.hostname or "127.0.0.1"
    port = str(url.port or 443)
    prefix = f"KUBERNETES_PORT_{port}_TCP"
    return {
        "KUBERNETES_SERVICE_HOST": host,
        "KUBERNETES_SERVICE_PORT": port,
        "KUBERNETES_SERVICE_PORT_HTTPS": port,
        "KUBERNETES_PORT": f"tcp://{host}:{port}",
        prefix: f"tcp://{host}:{port}",
        f"{prefix}_PROTO": "tcp",
        f"{prefix}_PORT": port,
        f"{prefix}_ADDR": host,
    }


def base_env(config: AgentConfig) -> dict[str, str]:
    inherited = {name: os.environ[name] for name in config.inherit_env if name in os.environ}
    return {"HOME": "/root", **inherited}


def podman_runtime(config: AgentConfig) -> PodmanRuntime | None:
    """The podman runtime over the configured image stores (None when there are none)."""
    if not config.image_stores:
        return None
    return PodmanRuntime(
        Podman(
            root=config.work_dir.resolve() / "containers",
            image_stores=tuple(Path(store) for store in config.image_stores),
        )
    )


def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


class NodeAgent:
    def __init__(self, config: AgentConfig, kube: Kube) -> None:
        self.config = config
        self.kube = kube
        self.prober = Prober()
        self.mount_points = MountPoints()
        addresses = config.node_addresses()
        self.addresses = PodAddressPool(
            config.pod_address_range, reserved=frozenset(addresses.values())
        )
        self._node_addresses = addresses
        api_server = config.api_server_for_pods or kube.server
        self.service_hosts = (
            ServiceHosts(kube, urlparse(api_server).hostname) if config.service_hosts else None
        )
        self.context = NodeContext(
            kube=kube,
            catalogue=config.catalogue(),
            mount_points=self.mount_points,
            work_dir=config.work_dir,
            base_env=base_env(config),
            service_env=service_env(api_server),
            service_hosts=self.service_hosts,
        )
        self.podman = podman_runtime(config)
        self.workers: dict[str, PodWorker] = {}
        self._worker_tasks: dict[str, asyncio.Task[None]] = {}
        self._finished: OrderedDict[str, None] = OrderedDict()
        self._keepers: list[NodeKeeper] = []
        self.survivors = Survivors()
        """Containers a previous agent left running, until their pods' workers adopt them."""
        self._listed: set[str] = set()

    async def run(self, stop: asyncio.Event) -> None:
        self.config.work_dir.mkdir(parents=True, exist_ok=True)
        background: list[asyncio.Task[Any]] = []
        if self.podman is not None:
            await self._find_survivors(self.podman)
        if self.service_hosts is not None:
            background.append(asyncio.create_task(self.service_hosts.run(), name="hosts"))
        try:
            version = await self._kubelet_version()
            for node in self.config.nodes:
                keeper = NodeKeeper(
                    self.kube,
                    NodeIdentity(node, self._node_addresses[node.name], version, boot_id()),
                    self.config.lease_duration_seconds,
                    self.config.lease_renew_seconds,
                    self.config.node_status_report_seconds,
                )
                await self._register(keeper, stop)
                self._keepers.append(keeper)
                background.append(
                    asyncio.create_task(keeper.keep_alive(), name=f"lease/{node.name}")
                )
                background.append(
                    asyncio.create_task(self._watch_pods(node), name=f"pods/{node.name}")
                )
            log.info("node agent ready nodes=%s", [n.name for n in self.config.nodes])
            await stop.wait()
        finally:
            log.info("node agent stopping pods=%d", len(self.workers))
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await self._stop_all_pods()
            if self.config.on_shutdown == "delete":
                for keeper in self._keepers:
                    with contextlib.suppress(Exception):
                        await keeper.deregister()
            self.mount_points.release_all()
            if self.podman is not None:
                await asyncio.to_thread(self.podman.remove_all)
            await self.prober.close()
            log.info("node agent stopped")

    async def _find_survivors(self, podman: PodmanRuntime) -> None:
        """A previous agent's containers: the running ones wait for their pods' workers
        (a restarted agent adopts them, as a restarted kubelet does); the rest go."""
        found = await podman.survivors()
        for survivor in found:
            if not survivor.running:
                await podman.remove(survivor.name, None)
        self.survivors = Survivors(found)
        log.info("containers of a previous agent running=%d", len(self.survivors))

    async def _remove_unclaimed(self) -> None:
        """Every node's pods are listed: survivors of pods no longer here hold ports and
        run for nobody."""
        if self.podman is None:
            return
        for survivor in self.survivors.unclaimed():
            log.info("orphan container removed name=%s pod_uid=%s", survivor.name, survivor.pod_uid)
            await self.podman.remove(survivor.name, None)

    async def _kubelet_version(self) -> str:
        info = await self.kube.request("GET", "/version")
        return str(info.get("gitVersion", "v0.0.0"))

    async def _register(self, keeper: NodeKeeper, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await keeper.register()
                return
            except (KubeError, OSError) as error:
                log.warning(
                    "node registration failed node=%s error=%s", keeper.identity.name, error
                )
                await asyncio.sleep(REGISTER_RETRY_SECONDS)

    def _runtime(self, node: NodeConfig) -> NodeRuntime:
        return NodeRuntime(
            context=self.context,
            node_name=node.name,
            host_ip=self._node_addresses[node.name],
            allocatable=node.capacity,
            addresses=self.addresses,
            prober=self.prober,
            backoff=self.config.backoff_policy(),
            volume_resync_seconds=self.config.volume_resync_seconds,
            podman=self.podman,
        )

    async def _watch_pods(self, node: NodeConfig) -> None:
        """List then watch this node's pods; on any error or expiry, list again."""
        runtime = self._runtime(node)
        selector = {"fieldSelector": f"spec.nodeName={node.name}"}
        while True:
            try:
                listing = await self.kube.request("GET", "/api/v1/pods", params=selector)
                version = listing["metadata"]["resourceVersion"]
                self._reconcile(runtime, listing.get("items") or [])
                if node.name not in self._listed:
                    self._listed.add(node.name)
                    if len(self._listed) == len(self.config.nodes):
                        await self._remove_unclaimed()
                params = {**selector, "resourceVersion": version, "allowWatchBookmarks": "true"}
                async for event in self.kube.watch("/api/v1/pods", params, WATCH_TIMEOUT_SECONDS):
                    kind, obj = event.get("type"), event.get("object") or {}
                    if kind == "ERROR":
                        log.info(
                            "pod watch expired node=%s reason=%s", node.name, obj.get("reason")
                        )
                        break
                    if kind == "BOOKMARK":
                        continue
                    if kind == "DELETED":
                        self._forget(obj)
                    else:
                        self._observe(runtime, obj)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the watch must outlive any one failure
                log.warning("pod watch failed node=%s error=%r", node.name, error)
                await asyncio.sleep(REGISTER_RETRY_SECONDS)

    def _reconcile(self, runtime: NodeRuntime, pods: list[dict[str, Any]]) -> None:
        listed = {pod["metadata"]["uid"] for pod in pods}
        for uid, worker in list(self.workers.items()):
            if worker.runtime.node_name == runtime.node_name and uid not in listed:
                worker.vanish()
        for pod in pods:
            self._observe(runtime, pod)

    def _observe(self, runtime: NodeRuntime, pod: dict[str, Any]) -> None:
        uid = pod["metadata"]["uid"]
        worker = self.workers.get(uid)
        if worker is not None:
            worker.observe(pod)
            return
        if uid in self._finished:
            return
        worker = PodWorker(runtime, pod, self.survivors.claim(uid))
        self.workers[uid] = worker
        task = asyncio.create_task(worker.run(), name=f"pod/{worker.ref}")
        self._worker_tasks[uid] = task
        task.add_done_callback(lambda done, uid=uid: self._worker_done(uid, done))

    def _forget(self, pod: dict[str, Any]) -> None:
        worker = self.workers.get(pod["metadata"]["uid"])
        if worker is not None:
            worker.vanish()

    def _worker_done(self, uid: str, task: asyncio.Task[None]) -> None:
        worker = self.workers.pop(uid, None)
        self._worker_tasks.pop(uid, None)
        self._finished[uid] = None
        while len(self._finished) > FINISHED_MEMORY:
            self._finished.popitem(last=False)
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "pod worker failed pod=%s",
                worker.ref if worker else uid,
                exc_info=task.exception(),
            )

    async def _stop_all_pods(self) -> None:
        grace = self.config.shutdown_grace_seconds
        workers = list(self.workers.values())
        await asyncio.gather(
            *(worker.shut_down(grace) for worker in workers), return_exceptions=True
        )
        tasks = list(self._worker_tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
