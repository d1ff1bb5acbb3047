"""One container's life: start, probe, stop, and restart with back-off under the restart policy."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from switchboard_localcluster.podman import PodmanError

from .backoff import BackoffPolicy, RestartBackoff
from .commandline import CommandNotAvailable
from .containerstate import (
    COMPLETED,
    CONTAINER_CREATING,
    CRASH_LOOP_BACK_OFF,
    CREATE_CONTAINER_CONFIG_ERROR,
    ERROR,
    OOM_KILLED,
    RUN_CONTAINER_ERROR,
    START_ERROR,
    ContainerSnapshot,
    Running,
    State,
    Terminated,
    Waiting,
)
from .downward import DownwardAPIError
from .environment import EnvConfigError
from .kube import KubeError
from .probes import ContainerProbes, Probe, ProbeSpecError, ProbeTracker
from .probing import Prober, ProbeTarget
from .process import StartFailed
from .runtime import ContainerPlan, ContainerRuntime, ImageHandle, RunningContainer
from .securitycontext import SecurityContextError
from .volumes import VolumeError

log = logging.getLogger(__name__)

EXIT_START_ERROR = 128

Planner = Callable[[Mapping[str, Any], ImageHandle], Awaitable[ContainerPlan]]


class ContainerRunner:
    def __init__(
        self,
        container: Mapping[str, Any],
        image: ImageHandle,
        runtime: ContainerRuntime,
        *,
        pod_ref: str,
        restart_policy: str,
        is_init: bool,
        grace_seconds: float,
        plan: Planner,
        log_path: Callable[[str, int], Any],
        pod_ip: str,
        prober: Prober,
        backoff: BackoffPolicy,
        on_change: Callable[[], None],
    ) -> None:
        self.container = container
        self.name: str = container["name"]
        self.image = image
        self._runtime = runtime
        self._pod_ref = pod_ref
        self._restart_policy = restart_policy
        self._is_init = is_init
        self._grace = grace_seconds
        self._plan = plan
        self._log_path = log_path
        self._pod_ip = pod_ip
        self._prober = prober
        self._backoff = RestartBackoff(backoff)
        self._on_change = on_change
        self.probes = ContainerProbes.parse(container)

        self._state: State = Waiting(CONTAINER_CREATING)
        self._last_state: Terminated | None = None
        self._restart_count = 0
        self._container_id: str | None = None
        self._ready = False
        self._started = False
        self._running: RunningContainer | None = None
        self._env: dict[str, str] = {}
        self._stopping = asyncio.Event()
        self._kill_requested: str | None = None
        self._adopted: tuple[RunningContainer, ContainerSnapshot | None] | None = None

    def adopt(self, running: RunningContainer, previous: ContainerSnapshot | None) -> None:
        """Take over a container a previous agent started and left running (`previous`: its
        status as that agent last reported it): the first run waits for it instead of
        starting one, keeps its restart count, start time and readiness, and runs no
        postStart hook again."""
        self._adopted = (running, previous)
        if previous is not None:
            self._restart_count = previous.restart_count
            self._last_state = previous.last_state

    # --- observed state --------------------------------------------------------------------

    def snapshot(self) -> ContainerSnapshot:
        running = isinstance(self._state, Running)
        return ContainerSnapshot(
            name=self.name,
            image=self.container.get("image", ""),
            image_id=self.image.image_id,
            state=self._state,
            last_state=self._last_state,
            restart_count=self._restart_count,
            ready=running and self._ready,
            started=running and self._started,
            container_id=self._container_id,
        )

    @property
    def succeeded(self) -> bool:
        return isinstance(self._state, Terminated) and self._state.succeeded

    def _set(self, state: State) -> None:
        self._state = state
        self._on_change()

    # --- lifecycle -------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until the container is done for good (policy says no restart) or is stopped."""
        while not self._stopping.is_set():
            try:
                terminated = await self._run_once()
            except Exception as error:  # one bad start must not end the container
                log.exception("container start error pod=%s container=%s", self._pod_ref, self.name)
                self._set(Waiting(RUN_CONTAINER_ERROR, f"{type(error).__name__}: {error}"))
                terminated = None
            if terminated is None:
                # Could not be started: the waiting reason is set, retry after back-off.
                await self._wait_backoff(0)
                continue
            if self._stopping.is_set() or not self._should_restart(terminated):
                self._set(terminated)
                return
            ran_for = terminated.finished_at - (terminated.started_at or terminated.finished_at)
            delay = self._backoff.next_delay(ran_for.total_seconds())
            self._last_state = terminated
            self._restart_count += 1
            self._set(
                Waiting(
                    CRASH_LOOP_BACK_OFF,
                    f"back-off {delay:g}s restarting failed container={self.name} "
                    f"pod={self._pod_ref}",
                )
            )
            await self._sleep_unless_stopping(delay)

    async def _wait_backoff(self, ran_for: float) -> None:
        await self._sleep_unless_stopping(self._backoff.next_delay(ran_for))

    async def _sleep_unless_stopping(self, delay: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), delay)

    def _should_restart(self, terminated: Terminated) -> bool:
        if self._is_init:
            return not terminated.succeeded and self._restart_policy != "Never"
        if self._restart_policy == "Always":
            return True
        if self._restart_policy == "OnFailure":
            return not terminated.succeeded
        return False

    async def _run_once(self) -> Terminated | None:
        adopted, self._adopted = self._adopted, None
        try:
            plan = await self._plan(self.container, self.image)
        except (
            EnvConfigError,
            DownwardAPIError,
            VolumeError,
            KubeError,
            SecurityContextError,
        ) as error:
            if adopted is None:
                self._set(Waiting(CREATE_CONTAINER_CONFIG_ERROR, str(error)))
                return None
            plan = None  # it runs already: only exec probes miss their environment
        self._env = plan.env if plan is not None else {}
        started_at = datetime.now(UTC)
        previous = adopted[1] if adopted is not None else None
        if adopted is not None:
            running = adopted[0]
            if previous is not None and isinstance(previous.state, Running):
                started_at = previous.state.started_at
        else:
            assert plan is not None
            started = await self._start(plan)
            if started is None or isinstance(started, Terminated):
                return started
            running = started
        self._running = running
        self._container_id = running.container_id
        if self._stopping.is_set():
            # Stopped while starting: honour the stop instead of running on.
            await running.stop(self._grace)
        self._ready = previous.ready if previous is not None else False
        self._started = (previous is not None and previous.started) or self.probes.startup is None
        self._kill_requested = None
        log.info(
            # Only the program: arguments may carry secrets expanded from the env.
            "container %s pod=%s container=%s id=%s",
            "adopted" if adopted is not None else "started",
            self._pod_ref,
            self.name,
            running.container_id,
        )
        self._set(Running(started_at))
        watchers = asyncio.gather(
            self._probe_loops(adopted=adopted is not None), return_exceptions=True
        )
        try:
            exit = await running.wait()
        finally:
            watchers.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchers
            self._running = None
            self._ready = False
        log.info(
            "container exited pod=%s container=%s exit_code=%d oom_killed=%s",
            self._pod_ref,
            self.name,
            exit.exit_code,
            exit.oom_killed,
        )
        reason = OOM_KILLED if exit.oom_killed else (COMPLETED if exit.exit_code == 0 else ERROR)
        return Terminated(
            exit_code=exit.exit_code,
            signal=exit.signal,
            reason=reason,
            message=self._kill_requested,
            started_at=started_at,
            finished_at=datetime.now(UTC),
            container_id=running.container_id,
        )

    async def _start(self, plan: ContainerPlan) -> RunningContainer | Terminated | None:
        """One start: the running container, how a failed start ended, or None when it
        could not be tried (the waiting reason is set)."""
        try:
            return await self._runtime.start(
                self.image, plan, self._log_path(self.name, self._restart_count)
            )
        except CommandNotAvailable as error:
            self._set(Waiting(RUN_CONTAINER_ERROR, str(error)))
            return None
        except (StartFailed, PodmanError) as error:
            log.warning(
                "container start failed pod=%s container=%s error=%s",
                self._pod_ref,
                self.name,
                error,
            )
            return Terminated(
                exit_code=EXIT_START_ERROR,
                reason=START_ERROR,
                message=str(error),
                started_at=None,
                finished_at=datetime.now(UTC),
            )

    async def stop(self, grace_seconds: float) -> None:
        """Stop for good (pod deletion or agent shutdown): preStop hook, SIGTERM, then SIGKILL."""
        self._stopping.set()
        running = self._running
        if running is None:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_seconds
        if self.probes.pre_stop is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._run_hook(self.probes.pre_stop), grace_seconds)
        await running.stop(max(deadline - loop.time(), 0))

    async def _kill(self, reason: str, grace: float) -> None:
        running = self._running
        if running is None:
            return
        self._kill_requested = reason
        log.info("container killed pod=%s container=%s reason=%s", self._pod_ref, self.name, reason)
        await running.stop(grace)

    # --- probes and hooks ------------------------------------------------------------------

    def _target(self) -> ProbeTarget:
        return ProbeTarget(
            pod_ip=self._pod_ip,
            ports=self.container.get("ports") or [],
            container=self._running,
            env=self._env,
        )

    async def _run_hook(self, action: Any) -> bool:
        result = await self._prober.run(action, self._target(), self._grace)
        return result.success

    async def _probe_loops(self, adopted: bool = False) -> None:
        """Hooks and probes of one run; an adopted container ran its postStart hook under
        the previous agent, and its startup probe already passed if it was started."""
        post_start = None if adopted else self.probes.post_start
        if post_start is not None and not await self._run_hook(post_start):
            await self._kill("PostStartHookError", self._grace)
            return
        startup = None if self._started else self.probes.startup
        if startup is not None and not await self._startup(startup):
            return
        self._started = True
        if self.probes.readiness is None:
            self._ready = True
        self._on_change()
        loops = []
        if self.probes.readiness is not None:
            loops.append(self._readiness(self.probes.readiness))
        if self.probes.liveness is not None:
            loops.append(self._liveness(self.probes.liveness))
        if loops:
            await asyncio.gather(*loops)

    async def _probe_results(self, probe: Probe) -> AsyncIterator[tuple[bool, str]]:
        await asyncio.sleep(probe.initial_delay_seconds)
        while True:
            try:
                result = await self._prober.run(probe.action, self._target(), probe.timeout_seconds)
            except ProbeSpecError as error:
                result = None
                log.warning(
                    "probe misconfigured pod=%s container=%s error=%s",
                    self._pod_ref,
                    self.name,
                    error,
                )
            yield bool(result and result.success), (result.detail if result else "")
            await asyncio.sleep(probe.period_seconds)

    async def _startup(self, probe: Probe) -> bool:
        # Starts out "not failed yet": only failureThreshold failures in a row count.
        tracker = ProbeTracker(probe, initial=True)
        async for success, detail in self._probe_results(probe):
            if success:
                return True
            if not tracker.record(False):
                await self._kill(f"Startup probe failed: {detail}", self._probe_grace(probe))
                return False
        return False

    async def _readiness(self, probe: Probe) -> None:
        # An adopted container keeps the readiness it had: the pod does not flap NotReady.
        tracker = ProbeTracker(probe, initial=self._ready)
        async for success, _detail in self._probe_results(probe):
            ready = tracker.record(success)
            if ready != self._ready:
                self._ready = ready
                log.info(
                    "container readiness pod=%s container=%s ready=%s",
                    self._pod_ref,
                    self.name,
                    ready,
                )
                self._on_change()

    async def _liveness(self, probe: Probe) -> None:
        tracker = ProbeTracker(probe, initial=True)
        async for success, detail in self._probe_results(probe):
            if not tracker.record(success):
                await self._kill(f"Liveness probe failed: {detail}", self._probe_grace(probe))
                return

    def _probe_grace(self, probe: Probe) -> float:
        if probe.termination_grace_period_seconds is not None:
            return float(probe.termination_grace_period_seconds)
        return self._grace
