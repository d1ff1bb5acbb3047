"""One pod's life on this node: sandbox, init containers, containers, status, and deletion.

Level-based: the worker is told the latest Pod object and wakes up on any change (new object,
container state change, timer); each time it compares what it runs and reports with what the
pod asks for, so a missed watch event costs nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .addresses import PodAddressPool
from .adoption import PID_HOLDER, Survivor, adoptable
from .backoff import BackoffPolicy, RestartBackoff
from .containerrunner import ContainerRunner
from .containerstate import (
    CONTAINER_CREATING,
    ERR_IMAGE_PULL,
    IMAGE_PULL_BACK_OFF,
    POD_INITIALIZING,
    ContainerSnapshot,
    Waiting,
    parse_time,
    snapshot_from_api,
)
from .kube import STRATEGIC_MERGE_PATCH, KubeError
from .podmanruntime import PodmanRuntime
from .podsandbox import NodeContext, PodSandbox
from .podstatus import (
    TERMINAL_PHASES,
    PodSnapshot,
    desired_status,
    foreign_conditions,
    owned_status,
    status_patch,
)
from .probing import Prober
from .runtime import ContainerRuntime, ImageHandle, ImagePullError, LocalHandle, ProcessRuntime
from .volumes import VolumeError

log = logging.getLogger(__name__)

DEFAULT_GRACE_SECONDS = 30
RETRY_SECONDS = 1.0
MAX_RETRY_SECONDS = 30.0


@dataclass(frozen=True)
class NodeRuntime:
    """What a pod worker needs from its node and agent."""

    context: NodeContext
    node_name: str
    host_ip: str
    allocatable: Mapping[str, str]
    addresses: PodAddressPool
    prober: Prober
    backoff: BackoffPolicy
    volume_resync_seconds: float
    podman: PodmanRuntime | None = None
    """Runs images from the node's image stores; None: only local stand-ins run."""
    processes: ContainerRuntime = field(default_factory=ProcessRuntime)


def _resource_version(obj: Mapping[str, Any]) -> int:
    try:
        return int(obj.get("metadata", {}).get("resourceVersion", "0"))
    except ValueError:
        return 0


def grace_period(pod: Mapping[str, Any]) -> float:
    metadata, spec = pod.get("metadata", {}), pod.get("spec", {})
    grace = metadata.get("deletionGracePeriodSeconds")
    if grace is None:
        grace = spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS)
    return float(grace)


class PodWorker:
    def __init__(
        self,
        runtime: NodeRuntime,
        pod: Mapping[str, Any],
        survivors: Mapping[str, Survivor] | None = None,
    ) -> None:
        """`survivors`: the pod's containers a previous agent left running, by container
        name; adopted if the pod was running, removed otherwise."""
        self.runtime = runtime
        self.pod = pod
        self._survivors = dict(survivors or {})
        meta = pod["metadata"]
        self.uid: str = meta["uid"]
        self.ref = f"{meta['namespace']}/{meta['name']}"
        self._wake = asyncio.Event()
        self._vanished = False
        self._sandbox: PodSandbox | None = None
        self._pod_ip: str | None = None
        self._start_time: datetime | None = None
        self._sandbox_ready = False
        self._init_runners: list[ContainerRunner] = []
        self._runners: list[ContainerRunner] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._placeholders: dict[str, ContainerSnapshot] = {}
        self._last_sent: dict[str, Any] | None = None
        self._stored: dict[str, Any] | None = None
        self._stored_version = 0
        self._quiet = False
        self._failed_write: dict[str, Any] | None = None
        self._write_retry_delay = RETRY_SECONDS
        self._write_retry_at = 0.0

    # --- inputs ----------------------------------------------------------------------------

    def observe(self, pod: Mapping[str, Any]) -> None:
        if _resource_version(pod) >= _resource_version(self.pod):
            self.pod = pod
            if self._sandbox is not None:
                # Label and annotation changes reach downwardAPI volumes on the next refresh.
                self._sandbox.pod = pod
        self._wake.set()

    def vanish(self) -> None:
        """The pod is gone from the API (deleted by someone else): stop, write nothing."""
        self._vanished = True
        self._wake.set()

    def _changed(self) -> None:
        self._wake.set()

    @property
    def _spec(self) -> Mapping[str, Any]:
        return self.pod.get("spec", {})

    @property
    def _deleting(self) -> bool:
        return bool(self.pod.get("metadata", {}).get("deletionTimestamp"))

    # --- main loop -------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            await self.stop_processes(min(grace_period(self.pod), RETRY_SECONDS))
            await self._remove_survivors()
            if self.runtime.podman is not None:
                await self.runtime.podman.release_pod(self.uid)
            if self._sandbox is not None:
                self._sandbox.teardown()
            self.runtime.addresses.release(self.uid)

    async def _run(self) -> None:
        if self._deleting:
            # Deleted before it ever ran here: nothing to stop, nothing to report.
            await self._finish_deletion()
            return
        observed_phase = self.pod.get("status", {}).get("phase")
        if observed_phase in TERMINAL_PHASES:
            # Finished before this agent took over: never run it again, and keep its status.
            await self._wait(lambda: self._deleting or self._vanished)
            await self._finish_deletion()
            return
        images = await self._pull_images()
        if images is None:
            await self._finish_deletion()
            return
        if not await self._prepare_sandbox():
            await self._finish_deletion()
            return
        if adoptable(self.pod) and set(self._survivors) - {PID_HOLDER}:
            await self._adopt(images)
        else:
            await self._remove_survivors()
            if await self._run_init_containers(images):
                self._start_containers(images)
        await self._supervise()
        await self._finish_deletion()

    async def _until(self, done: Callable[[], bool]) -> None:
        """Sync status on every wake-up until `done()`."""
        while True:
            await self._sync_status()
            if done():
                return
            await self._wake.wait()
            self._wake.clear()

    async def _wait(self, done: Callable[[], bool]) -> None:
        while not done():
            await self._wake.wait()
            self._wake.clear()

    async def _pull_images(self) -> dict[str, ImageHandle] | None:
        """Every container's image, as a kubelet pulls them: a failure shows ErrImagePull,
        then ImagePullBackOff until the next try. None when the pod went away meanwhile."""
        images: dict[str, ImageHandle] = {}
        backoff = RestartBackoff(self.runtime.backoff)
        for container in self._all_containers():
            self._placeholders[container["name"]] = self._waiting(container, CONTAINER_CREATING)
        while not (self._deleting or self._vanished):
            failed: dict[str, ImagePullError] = {}
            for container in self._all_containers():
                if container["name"] in images:
                    continue
                try:
                    images[container["name"]] = await self._pull(container)
                except ImagePullError as error:
                    failed[container["name"]] = error
            if not failed:
                return images
            log.warning(
                "image pull failed pod=%s images=%s",
                self.ref,
                sorted({c.get("image", "") for c in self._all_containers()}),
            )
            delay = backoff.next_delay(0)
            for name, error in failed.items():
                container = self._container(name)
                self._placeholders[name] = self._waiting(container, error.reason, str(error))
            await self._sync_status()
            await self._pause(min(RETRY_SECONDS, delay))
            for name, error in failed.items():
                container = self._container(name)
                self._placeholders[name] = self._waiting(
                    container,
                    IMAGE_PULL_BACK_OFF,
                    f'Back-off pulling image "{container.get("image", "")}": '
                    f"{error.reason}: {error}",
                )
            await self._sync_status()
            await self._pause(max(delay - RETRY_SECONDS, 0))
        return None

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake at once for a deletion."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not (self._deleting or self._vanished) and loop.time() < deadline:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), deadline - loop.time())
            self._wake.clear()

    async def _pull(self, container: Mapping[str, Any]) -> ImageHandle:
        reference = container.get("image", "")
        catalogue = self.runtime.context.catalogue
        local = catalogue.resolve(reference)
        if local is not None:
            return LocalHandle(local)
        if self.runtime.podman is None:
            raise ImagePullError(ERR_IMAGE_PULL, catalogue.not_runnable_message(reference))
        policy = container.get("imagePullPolicy") or "IfNotPresent"
        return await self.runtime.podman.pull(reference, policy)

    def _container(self, name: str) -> Mapping[str, Any]:
        return next(c for c in self._all_containers() if c["name"] == name)

    def _all_containers(self) -> list[Mapping[str, Any]]:
        return [*(self._spec.get("initContainers") or []), *(self._spec.get("containers") or [])]

    @staticmethod
    def _waiting(
        container: Mapping[str, Any], reason: str, message: str | None = None
    ) -> ContainerSnapshot:
        return ContainerSnapshot(
            name=container["name"], image=container.get("image", ""), state=Waiting(reason, message)
        )

    async def _prepare_sandbox(self) -> bool:
        """Address and volumes; retried until they work or the pod is deleted."""
        runtime = self.runtime
        if self._spec.get("hostNetwork"):
            self._pod_ip = runtime.host_ip
        else:
            reported = (self.pod.get("status") or {}).get("podIP")
            self._pod_ip = runtime.addresses.allocate(self.uid, preferred=reported)
        self._start_time = datetime.now(UTC)
        self._sandbox = PodSandbox(
            runtime.context, self.pod, self._pod_ip, runtime.host_ip, runtime.allocatable
        )
        for container in self._all_containers():
            self._placeholders[container["name"]] = self._waiting(container, CONTAINER_CREATING)
        retry = RETRY_SECONDS
        while not (self._deleting or self._vanished):
            try:
                await self._sandbox.setup()
            except (VolumeError, KubeError, OSError) as error:
                message = f"MountVolume.SetUp failed: {error}"
                log.warning("pod sandbox not ready pod=%s error=%s", self.ref, error)
                for container in self._all_containers():
                    self._placeholders[container["name"]] = self._waiting(
                        container, CONTAINER_CREATING, message
                    )
                await self._sync_status()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), retry)
                self._wake.clear()
                retry = min(retry * 2, MAX_RETRY_SECONDS)
                continue
            self._sandbox_ready = True
            for container in self._spec.get("containers") or []:
                if self._spec.get("initContainers"):
                    self._placeholders[container["name"]] = self._waiting(
                        container, POD_INITIALIZING
                    )
            return True
        return False

    def _runner(
        self, container: Mapping[str, Any], image: ImageHandle, is_init: bool
    ) -> ContainerRunner:
        sandbox = self._sandbox
        assert sandbox is not None and self._pod_ip is not None
        sidecar = is_init and container.get("restartPolicy") == "Always"
        runtime = self.runtime.processes if isinstance(image, LocalHandle) else self.runtime.podman
        assert runtime is not None
        return ContainerRunner(
            container,
            image,
            runtime,
            pod_ref=f"{self.pod['metadata']['name']}_{self.pod['metadata']['namespace']}({self.uid})",
            restart_policy="Always" if sidecar else self._spec.get("restartPolicy", "Always"),
            is_init=is_init and not sidecar,
            grace_seconds=float(
                self._spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS)
            ),
            plan=sandbox.plan,
            log_path=sandbox.log_path,
            pod_ip=self._pod_ip,
            prober=self.runtime.prober,
            backoff=self.runtime.backoff,
            on_change=self._changed,
        )

    def _spawn(self, runner: ContainerRunner) -> asyncio.Task[None]:
        task = asyncio.create_task(runner.run(), name=f"{self.ref}/{runner.name}")
        task.add_done_callback(lambda _task: self._changed())
        self._tasks.append(task)
        return task

    async def _run_init_containers(self, images: Mapping[str, ImageHandle]) -> bool:
        """Run init containers in order; True when all completed (sidecars: started)."""
        for container in self._spec.get("initContainers") or []:
            runner = self._runner(container, images[container["name"]], is_init=True)
            self._init_runners.append(runner)
            self._placeholders.pop(container["name"], None)
            task = self._spawn(runner)
            if container.get("restartPolicy") == "Always":
                await self._until(
                    lambda r=runner: r.snapshot().started or self._deleting or self._vanished
                )
            else:
                await self._until(lambda t=task: t.done() or self._deleting or self._vanished)
            if self._deleting or self._vanished:
                return False
            if container.get("restartPolicy") != "Always" and not runner.succeeded:
                return False
        return True

    def _start_containers(self, images: Mapping[str, ImageHandle]) -> None:
        for container in self._spec.get("containers") or []:
            runner = self._runner(container, images[container["name"]], is_init=False)
            self._runners.append(runner)
            self._placeholders.pop(container["name"], None)
            self._spawn(runner)

    async def _adopt(self, images: Mapping[str, ImageHandle]) -> None:
        """Carry on with a running pod whose containers a previous agent left running: keep
        the reported start time and completed init containers, wait for each survivor
        instead of starting it, and start only the containers that are not running."""
        podman = self.runtime.podman
        assert podman is not None and self._sandbox is not None
        status = self.pod.get("status") or {}
        self._start_time = parse_time(status.get("startTime")) or self._start_time
        previous = {
            s["name"]: snapshot_from_api(s)
            for s in [
                *(status.get("initContainerStatuses") or []),
                *(status.get("containerStatuses") or []),
            ]
        }
        holder = self._survivors.pop(PID_HOLDER, None)
        if holder is not None:
            podman.adopt_holder(holder)
        sidecars = [
            c for c in self._spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"
        ]
        for container in self._spec.get("initContainers") or []:
            if container not in sidecars and container["name"] in previous:
                self._placeholders[container["name"]] = previous[container["name"]]
        for container in [*sidecars, *(self._spec.get("containers") or [])]:
            name = container["name"]
            runner = self._runner(container, images[name], is_init=container in sidecars)
            survivor = self._survivors.pop(name, None)
            if survivor is not None:
                before = previous.get(name)
                log_path = self._sandbox.log_path(name, before.restart_count if before else 0)
                runner.adopt(await podman.adopt(survivor, log_path), before)
            (self._init_runners if container in sidecars else self._runners).append(runner)
            self._placeholders.pop(name, None)
            self._spawn(runner)

    async def _remove_survivors(self) -> None:
        """Survivors not adopted (the pod was not running, or no longer asks for them)."""
        survivors, self._survivors = self._survivors, {}
        if self.runtime.podman is not None:
            for survivor in survivors.values():
                log.info("leftover container removed pod=%s name=%s", self.ref, survivor.name)
                await self.runtime.podman.remove(survivor.name, None)

    async def _supervise(self) -> None:
        loop = asyncio.get_running_loop()
        next_refresh = loop.time() + self.runtime.volume_resync_seconds
        while True:
            await self._sync_status()
            if self._deleting or self._vanished:
                return
            timeout = max(next_refresh - loop.time(), 0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()
            running = any(not task.done() for task in self._tasks)
            if loop.time() >= next_refresh and self._sandbox is not None and running:
                next_refresh = loop.time() + self.runtime.volume_resync_seconds
                try:
                    await self._sandbox.refresh_volumes()
                except (VolumeError, KubeError, OSError) as error:
                    log.warning("volume refresh failed pod=%s error=%s", self.ref, error)

    # --- stopping --------------------------------------------------------------------------

    async def shut_down(self, grace: float) -> None:
        """Agent shutdown: stop the processes and write nothing more (unlike pod deletion)."""
        self._quiet = True
        await self.stop_processes(grace)

    async def stop_processes(self, grace: float) -> None:
        """Stop every container (preStop, SIGTERM, grace, SIGKILL) and wait for the runners."""
        runners = [*self._runners, *self._init_runners]
        await asyncio.gather(*(runner.stop(grace) for runner in runners))
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _finish_deletion(self) -> None:
        if self._vanished:
            await self.stop_processes(min(grace_period(self.pod), RETRY_SECONDS))
            return
        grace = grace_period(self.pod)
        log.info("pod terminating pod=%s grace_seconds=%g", self.ref, grace)
        await self.stop_processes(grace)
        if self._last_sent is not None:
            # Report how the containers ended before the pod object goes away, as the kubelet does.
            await self._sync_status()
        retry = RETRY_SECONDS
        while not self._vanished:
            try:
                await self.runtime.context.kube.request(
                    "DELETE",
                    self._pod_path,
                    {"gracePeriodSeconds": 0, "preconditions": {"uid": self.uid}},
                )
                log.info("pod deleted pod=%s", self.ref)
                return
            except KubeError as error:
                if error.not_found or error.conflict:
                    return  # already gone, or a new pod of the same name
                log.warning("pod delete failed pod=%s error=%s", self.ref, error)
            except (OSError, TimeoutError) as error:
                log.warning("pod delete failed pod=%s error=%r", self.ref, error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), retry)
            self._wake.clear()
            retry = min(retry * 2, MAX_RETRY_SECONDS)

    @property
    def _pod_path(self) -> str:
        meta = self.pod["metadata"]
        return f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}"

    # --- status ----------------------------------------------------------------------------

    def snapshot(self) -> PodSnapshot:
        def containers(
            specs: list[Mapping[str, Any]], runners: list[ContainerRunner]
        ) -> tuple[ContainerSnapshot, ...]:
            by_name = {runner.name: runner.snapshot() for runner in runners}
            return tuple(
                by_name.get(c["name"])
                or self._placeholders.get(c["name"])
                or self._waiting(c, CONTAINER_CREATING)
                for c in specs
            )

        return PodSnapshot(
            restart_policy=self._spec.get("restartPolicy", "Always"),
            host_ip=self.runtime.host_ip,
            pod_ip=self._pod_ip,
            start_time=self._start_time,
            sandbox_ready=self._sandbox_ready,
            init_containers=containers(self._spec.get("initContainers") or [], self._init_runners),
            containers=containers(self._spec.get("containers") or [], self._runners),
            readiness_gates=tuple(
                gate["conditionType"] for gate in self._spec.get("readinessGates") or []
            ),
            terminating=self._deleting,
        )

    def _diverged(self) -> bool:
        """Someone else changed the node-owned status since our last write."""
        if self._stored is None or _resource_version(self.pod) <= self._stored_version:
            return False
        return owned_status(self.pod.get("status") or {}) != self._stored

    async def _sync_status(self) -> None:
        if self._vanished or self._quiet:
            return
        status = self.pod.get("status") or {}
        previous = (self._last_sent or owned_status(status)).get("conditions") or []
        desired = desired_status(
            self.snapshot(), previous, foreign_conditions(status), datetime.now(UTC)
        )
        if desired == self._last_sent and not self._diverged():
            return
        loop = asyncio.get_running_loop()
        if desired == self._failed_write and loop.time() < self._write_retry_at:
            return
        try:
            stored = await self.runtime.context.kube.request(
                "PATCH",
                f"{self._pod_path}/status",
                status_patch(self.uid, desired),
                content_type=STRATEGIC_MERGE_PATCH,
            )
        except KubeError as error:
            if error.not_found:
                log.info("pod gone before status write pod=%s", self.ref)
                self.vanish()
                return
            self._write_failed(desired, error)
            return
        except (OSError, TimeoutError) as error:
            self._write_failed(desired, error)
            return
        self._failed_write = None
        self._write_retry_delay = RETRY_SECONDS
        self._last_sent = desired
        self._stored = owned_status(stored.get("status") or {})
        self._stored_version = _resource_version(stored)
        log.info("pod status written pod=%s phase=%s", self.ref, desired["phase"])

    def _write_failed(self, desired: dict[str, Any], error: Exception) -> None:
        """Retry the same status with a doubling delay, so a rejected write cannot spin."""
        loop = asyncio.get_running_loop()
        delay = self._write_retry_delay
        log.warning(
            "pod status write failed pod=%s retry_seconds=%g error=%s", self.ref, delay, error
        )
        self._failed_write = desired
        self._write_retry_at = loop.time() + delay
        self._write_retry_delay = min(delay * 2, MAX_RETRY_SECONDS)
        loop.call_later(delay, self._wake.set)
