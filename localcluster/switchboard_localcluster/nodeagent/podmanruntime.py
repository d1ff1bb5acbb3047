"""The podman runtime: a Pod's containers from their images, through runc.

Each start is `podman create` (the container spec: user, capabilities, read-only root,
mounts, limits) then `podman start --attach`, whose exit is the container's exit. Containers
share the agent's network namespace (`--network=host`): a pod's own 127.x address is where
it binds, as with the process runtime. The images come from read-only image stores
(`make images`); a missing image is ErrImagePull, never a fallback.

Environment values (Secrets among them) reach podman through its own environment
(`--env NAME` without a value), never on a command line.

A pod with `shareProcessNamespace` gets one process namespace for all its containers, as
a kubelet's pause container provides: a holder container (`sleep infinity` from the
pod's first image, no capabilities, read-only) is its PID 1, and every container of the
pod joins it (`--pid=container:`), so a sidecar can signal its neighbour by the PID in
its pidfile. The holder outlives container restarts and goes with the pod.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import resource
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from switchboard_localcluster.podman import Podman, PodmanError

from .adoption import Survivor, container_name, holder_name, survivors_from_listing
from .cgroups import PARENT, MemoryCgroup, memory_cgroups_available, remove_tree
from .runtime import ContainerPlan, Exit, ImageHandle, ImagePullError, RunningContainer
from .securitycontext import SecuritySettings

log = logging.getLogger(__name__)

CONTAINER_ID_SCHEME = "podman"
# The capabilities containerd (and so a kubelet) gives a container by default.
DEFAULT_CAPABILITIES = (
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
)
NPROC_LIMIT = 4096
EXEC_GRACE_SECONDS = 5.0


@dataclass(frozen=True)
class PodmanImage:
    reference: str
    id: str
    user: str

    @property
    def image_id(self) -> str:
        return f"sha256:{self.id}"


def _capability(name: str) -> str:
    name = name.upper()
    return name if name.startswith("CAP_") or name == "ALL" else f"CAP_{name}"


def capabilities(security: SecuritySettings) -> list[str]:
    """The effective capability set as cap-drop/cap-add flags (starting from containerd's)."""
    if security.privileged:
        return []
    drop = {_capability(c) for c in security.cap_drop}
    base = set() if "ALL" in drop else {f"CAP_{c}" for c in DEFAULT_CAPABILITIES} - drop
    added = {_capability(c) for c in security.cap_add}
    wanted = sorted(base | added) if "ALL" not in added else ["ALL"]
    return ["--cap-drop=ALL", *(f"--cap-add={c}" for c in wanted)]


def _user(security: SecuritySettings, image: PodmanImage) -> list[str]:
    if security.run_as_user is None and security.run_as_group is None:
        return []
    user = str(security.run_as_user) if security.run_as_user is not None else ""
    if not user:
        user = image.user.split(":", 1)[0] or "0"
    if security.run_as_group is not None:
        user += f":{security.run_as_group}"
    return [f"--user={user}"]


def _ulimits() -> list[str]:
    """The agent's own hard limit of open files (podman's default exceeds it here)."""
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return [f"--ulimit=nofile={nofile}:{nofile}", f"--ulimit=nproc={NPROC_LIMIT}:{NPROC_LIMIT}"]


def create_arguments(
    image: PodmanImage,
    plan: ContainerPlan,
    name: str,
    cgroup_parent: str | None,
    pid_holder: str | None = None,
) -> list[str]:
    """`podman create` arguments for one start of a container (no values of env vars);
    `pid_holder`: the container whose process namespace it joins."""
    security = plan.security
    args = [
        "create",
        f"--name={name}",
        "--pull=never",
        "--network=host",
        "--no-hosts",
        "--log-driver=none",
        f"--hostname={plan.hostname}",
        *_ulimits(),
        *_user(security, image),
        *(f"--group-add={group}" for group in security.supplemental_groups),
        *capabilities(security),
        *(f"--env={key}" for key in plan.env),
    ]
    if pid_holder is not None:
        args.append(f"--pid=container:{pid_holder}")
    if security.read_only_root:
        # Exactly the spec: no tmpfs on /tmp, /run and /var/tmp that the kubelet would not add.
        args += ["--read-only", "--read-only-tmpfs=false"]
    if security.privileged:
        args.append("--privileged")
    if security.no_new_privileges:
        args.append("--security-opt=no-new-privileges")
    if security.seccomp_unconfined and not security.privileged:
        args.append("--security-opt=seccomp=unconfined")
    args += [f"--sysctl={key}={value}" for key, value in security.sysctls.items()]
    if plan.working_dir:
        args.append(f"--workdir={plan.working_dir}")
    for mount in plan.mounts:
        options = f"type=bind,source={mount.source},destination={mount.target}"
        args.append(f"--mount={options}{',ro=true' if mount.readOnly else ''}")
    resources = plan.resources
    if resources.cpu_limit_millis:
        args.append(f"--cpus={resources.cpu_limit_millis / 1000:g}")
    if resources.cpu_request_millis:
        args.append(f"--cpu-shares={max(2, resources.cpu_request_millis * 1024 // 1000)}")
    if cgroup_parent:
        args.append(f"--cgroup-parent={cgroup_parent}")
    elif resources.memory_limit_bytes:
        args.append(f"--memory={resources.memory_limit_bytes}")
    if plan.command is not None:
        args.append(f"--entrypoint={json.dumps(plan.command)}")
    args += ["--", image.reference, *plan.args]
    return args


class PodmanContainer:
    def __init__(
        self,
        runtime: PodmanRuntime,
        name: str,
        container_id: str,
        process: asyncio.subprocess.Process,
        memory: MemoryCgroup | None,
    ) -> None:
        self._runtime = runtime
        self.name = name
        self.container_id = f"{CONTAINER_ID_SCHEME}://{container_id}"
        self._process = process
        self._memory = memory

    async def wait(self) -> Exit:
        podman = self._runtime.podman
        await self._process.wait()
        code, out, _ = await podman.run_async("inspect", "--type=container", self.name, check=False)
        state = json.loads(out)[0]["State"] if code == 0 else {}
        exit_code = int(state.get("ExitCode", self._process.returncode or 0))
        oom = bool(state.get("OOMKilled")) or (
            self._memory is not None and self._memory.oom_killed()
        )
        await self._runtime.remove(self.name, self._memory)
        return Exit(exit_code, None, oom)

    async def stop(self, grace_seconds: float) -> None:
        seconds = max(math.ceil(grace_seconds), 0)
        await self._runtime.podman.run_async(
            "stop", f"--time={seconds}", self.name, check=False, timeout_seconds=seconds + 60
        )

    async def exec(
        self, argv: Sequence[str], env: Mapping[str, str], timeout_seconds: float
    ) -> int:
        process = await asyncio.create_subprocess_exec(
            *self._runtime.podman.argv("exec", *(f"--env={key}" for key in env), self.name, *argv),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            env={**os.environ, **env},
        )
        try:
            return await asyncio.wait_for(process.wait(), timeout_seconds)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise


class PodmanRuntime:
    """Containers of one agent, in a store of its own that reads images from `image_stores`."""

    def __init__(self, podman: Podman) -> None:
        self.podman = podman
        # Named after the store, so a restarted agent finds its predecessor's cgroups.
        self.cgroup_root = f"/{PARENT}/{podman.runroot.name}"
        self._memory_cgroups = memory_cgroups_available()
        self._pid_holders: dict[str, str] = {}
        self._pid_holder_lock = asyncio.Lock()

    async def pull(self, reference: str, pull_policy: str) -> PodmanImage:
        """The image from this node's stores; what a kubelet's pull would report if absent.

        The stores stand in for the registry (none is reachable here), so every pull
        policy uses an image that is present, and none can fetch one that is not.
        """
        code, out, _ = await self.podman.run_async("image", "inspect", reference, check=False)
        if code == 0:
            info = json.loads(out)[0]
            return PodmanImage(
                reference=reference,
                id=str(info["Id"]),
                user=str((info.get("Config") or {}).get("User") or ""),
            )
        if pull_policy == "Never":
            raise ImagePullError(
                "ErrImageNeverPull",
                f'Container image "{reference}" is not present with pull policy of Never',
            )
        stores = ", ".join(str(store) for store in self.podman.image_stores) or "none"
        raise ImagePullError(
            "ErrImagePull",
            f'failed to pull image "{reference}": not found in this node\'s image stores '
            f"({stores}), and the local cluster reaches no registry: build it with "
            "`make images`",
        )

    async def start(
        self, image: ImageHandle, plan: ContainerPlan, log_path: Path
    ) -> RunningContainer:
        assert isinstance(image, PodmanImage)
        name = container_name(plan.name, plan.pod_key, secrets.token_hex(4))
        memory: MemoryCgroup | None = None
        cgroup_parent = None
        if self._memory_cgroups:
            cgroup_parent = f"{self.cgroup_root}/{name}"
            if plan.resources.memory_limit_bytes:
                memory = MemoryCgroup(cgroup_parent, plan.resources.memory_limit_bytes)
                memory.create()
        holder = await self._pid_holder(image, plan) if plan.share_process_namespace else None
        args = create_arguments(image, plan, name, cgroup_parent, holder)
        env = {**os.environ, **plan.env}
        process = await asyncio.create_subprocess_exec(
            *self.podman.argv(*args),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        out, err = await process.communicate()
        if process.returncode != 0:
            await self.remove(name, memory)
            raise PodmanError(_last_line(err) or f"podman create exited {process.returncode}")
        container_id = out.decode().strip().splitlines()[-1]
        attached = await self._attached(log_path, "start", "--attach", name)
        return PodmanContainer(self, name, container_id, attached, memory)

    async def _attached(self, log_path: Path, *args: str) -> asyncio.subprocess.Process:
        """`podman <args>` attached to a container, its output appended to `log_path`; the
        process ends when the container does."""
        log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        try:
            return await asyncio.create_subprocess_exec(
                *self.podman.argv(*args),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_fd,
                stderr=log_fd,
            )
        finally:
            os.close(log_fd)

    async def _pid_holder(self, image: PodmanImage, plan: ContainerPlan) -> str:
        """The container holding the pod's shared process namespace, started once."""
        async with self._pid_holder_lock:
            holder = self._pid_holders.get(plan.pod_key)
            if holder is not None:
                return holder
            holder = holder_name(plan.pod_key)
            user = plan.security.run_as_user if plan.security.run_as_user is not None else 65534
            await self.podman.run_async("rm", "--force", "--time=0", holder, check=False)
            code, _, err = await self.podman.run_async(
                "run",
                "--detach",
                f"--name={holder}",
                "--pull=never",
                "--network=host",
                "--no-hosts",
                "--log-driver=none",
                *_ulimits(),
                f"--user={user}",
                "--cap-drop=ALL",
                "--security-opt=no-new-privileges",
                "--read-only",
                "--read-only-tmpfs=false",
                '--entrypoint=["sleep", "infinity"]',
                image.reference,
                check=False,
            )
            if code != 0:
                raise PodmanError(_last_line(err) or f"podman run of {holder} exited {code}")
            self._pid_holders[plan.pod_key] = holder
            return holder

    async def survivors(self) -> list[Survivor]:
        """The containers a previous agent left in this store (running or not)."""
        _, out, _ = await self.podman.run_async("ps", "--all", "--format=json", check=False)
        return survivors_from_listing(out)

    async def adopt(self, survivor: Survivor, log_path: Path) -> PodmanContainer:
        """A running container of a previous agent, waited for (and its output appended to
        the container's log) by attaching to it: nothing is started or signalled."""
        attached = await self._attached(
            log_path, "attach", "--no-stdin", "--sig-proxy=false", survivor.name
        )
        return PodmanContainer(self, survivor.name, survivor.container_id, attached, None)

    def adopt_holder(self, survivor: Survivor) -> None:
        """A pod's process-namespace holder, still running: its containers keep joining it."""
        self._pid_holders[survivor.pod_uid] = survivor.name

    async def release_pod(self, pod_key: str) -> None:
        """The pod is gone: remove its process namespace holder, if it had one."""
        async with self._pid_holder_lock:
            holder = self._pid_holders.pop(pod_key, None)
        if holder is not None:
            await self.remove(holder, None)

    async def remove(self, name: str, memory: MemoryCgroup | None) -> None:
        with contextlib.suppress(PodmanError, OSError):
            await self.podman.run_async("rm", "--force", "--time=0", name, check=False)
        if memory is not None:
            memory.remove()
        elif self._memory_cgroups:
            remove_tree(f"{self.cgroup_root}/{name}")

    def remove_all(self) -> None:
        """Every container of this store (a previous agent's leftovers, or at shutdown)."""
        with contextlib.suppress(PodmanError, OSError):
            self.podman.run("rm", "--all", "--force", "--time=0", check=False, timeout=300)
        remove_tree(self.cgroup_root)


def _last_line(stderr: bytes | str) -> str:
    text = stderr if isinstance(stderr, str) else stderr.decode(errors="replace")
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""
