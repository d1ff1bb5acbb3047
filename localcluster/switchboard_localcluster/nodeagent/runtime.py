"""Container runtimes: how one container start becomes a running thing the agent can wait for,
stop and exec into.

Two runtimes implement it. `podman` (podmanruntime.py) runs the Pod's image through runc,
with its security context and resource limits. `process` runs a configured local
installation standing in for an image (the agent's `images:`), a fast inner loop chosen
per image in the agent's configuration, never as a fallback.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from .commandline import container_argv
from .images import LocalImage
from .process import LaunchSpec, Mount, StartFailed, launch, signal_group, stop_group
from .securitycontext import SecuritySettings


class ImagePullError(Exception):
    """The image cannot be had: `reason` is the kubelet's (ErrImagePull, ErrImageNeverPull)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Resources:
    """A container's resources as the runtime applies them (cgroup limits)."""

    memory_limit_bytes: int | None = None
    cpu_limit_millis: int | None = None
    cpu_request_millis: int | None = None


@dataclass(frozen=True)
class ContainerPlan:
    """One start of one container, with `$(VAR)` references already expanded."""

    name: str
    pod_key: str
    """Unique per pod (its UID): names the runtime's objects."""
    command: list[str] | None
    args: list[str]
    env: dict[str, str]
    hostname: str
    working_dir: str | None
    mounts: list[Mount]
    security: SecuritySettings = field(default_factory=SecuritySettings)
    resources: Resources = field(default_factory=Resources)
    keep_visible: list[str] = field(default_factory=list)
    share_process_namespace: bool = False
    """The pod's `shareProcessNamespace`: its containers see and may signal each other."""


@dataclass(frozen=True)
class Exit:
    exit_code: int
    signal: int | None = None
    oom_killed: bool = False


class RunningContainer(Protocol):
    container_id: str

    async def wait(self) -> Exit: ...

    async def stop(self, grace_seconds: float) -> None:
        """SIGTERM (the image's stop signal), then SIGKILL after the grace period."""

    async def exec(
        self, argv: Sequence[str], env: Mapping[str, str], timeout_seconds: float
    ) -> int:
        """Run a command in the container (exec probes and hooks); its exit code."""


class ImageHandle(Protocol):
    @property
    def image_id(self) -> str: ...


class ContainerRuntime(Protocol):
    async def start(
        self, image: ImageHandle, plan: ContainerPlan, log_path: Path
    ) -> RunningContainer: ...


def exit_of(returncode: int) -> Exit:
    """A process's return code as a container runtime reports it."""
    if returncode < 0:
        return Exit(128 - returncode, -returncode)
    return Exit(returncode)


# --- the process runtime ---------------------------------------------------------------------


@dataclass(frozen=True)
class LocalHandle:
    """An image served by a local installation."""

    local: LocalImage

    @property
    def image_id(self) -> str:
        return f"local://{self.local.entrypoint[0]}"


class LocalProcess:
    def __init__(self, process: asyncio.subprocess.Process, container_id: str) -> None:
        self.process = process
        self.container_id = container_id

    async def wait(self) -> Exit:
        returncode = await self.process.wait()
        # Whatever the main process left behind in its group goes with it.
        await stop_group(self.process, 0)
        return exit_of(returncode)

    async def stop(self, grace_seconds: float) -> None:
        await stop_group(self.process, grace_seconds)

    async def exec(
        self, argv: Sequence[str], env: Mapping[str, str], timeout_seconds: float
    ) -> int:
        spec = LaunchSpec(argv=list(argv), env=dict(env), join_pid=self.process.pid)
        process = await launch(spec, output=None)
        try:
            return await asyncio.wait_for(process.wait(), timeout_seconds)
        except TimeoutError:
            signal_group(process.pid, signal.SIGKILL)
            await process.wait()
            raise


class ProcessRuntime:
    """Runs a container's local stand-in as a process in a private mount namespace."""

    async def start(
        self, image: ImageHandle, plan: ContainerPlan, log_path: Path
    ) -> RunningContainer:
        assert isinstance(image, LocalHandle)
        argv = container_argv(image.local, plan.command, plan.args, plan.env)
        spec = LaunchSpec(
            argv=argv,
            env=plan.env,
            hostname=plan.hostname,
            # Images without a WORKDIR start in the root directory.
            working_dir=plan.working_dir or "/",
            mounts=plan.mounts,
            keep_visible=plan.keep_visible,
        )
        process = await launch(spec, log_path)
        return LocalProcess(process, f"local://{process.pid}")


__all__ = [
    "ContainerPlan",
    "ContainerRuntime",
    "Exit",
    "ImageHandle",
    "ImagePullError",
    "LocalHandle",
    "ProcessRuntime",
    "Resources",
    "RunningContainer",
    "StartFailed",
]
