"""Starting and signalling container processes through the launcher, from asyncio."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

LAUNCHER_MODULE = "switchboard_localcluster.nodeagent.launcher"


class StartFailed(Exception):
    """The process could not be started (namespace, mount, chdir or exec failed)."""


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    readOnly: bool = False


@dataclass(frozen=True)
class LaunchSpec:
    argv: list[str]
    env: dict[str, str]
    hostname: str | None = None
    working_dir: str | None = None
    mounts: list[Mount] = field(default_factory=list)
    join_pid: int | None = None
    keep_visible: list[str] = field(default_factory=list)

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "argv": self.argv,
                "env": self.env,
                "hostname": self.hostname,
                "workingDir": self.working_dir,
                "mounts": [asdict(m) for m in self.mounts],
                "keepVisible": self.keep_visible,
                "joinPid": self.join_pid,
                "parentPid": os.getpid(),
            },
            # Secret values may carry non-UTF-8 bytes as surrogate escapes.
            ensure_ascii=True,
        ).encode()


async def launch(spec: LaunchSpec, output: Path | None) -> asyncio.subprocess.Process:
    """Start a process in its own session (its pid is its process group id)."""
    spec_fd = os.memfd_create("launch-spec")
    os.write(spec_fd, spec.to_json())
    os.lseek(spec_fd, 0, os.SEEK_SET)
    status_read, status_write = os.pipe()
    log_fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640) if output else None
    sink = asyncio.subprocess.DEVNULL if log_fd is None else log_fd
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            LAUNCHER_MODULE,
            str(spec_fd),
            str(status_write),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=sink,
            stderr=sink,
            pass_fds=(spec_fd, status_write),
            start_new_session=True,
        )
    finally:
        os.close(spec_fd)
        os.close(status_write)
        if log_fd is not None:
            os.close(log_fd)
    error = await _read_until_eof(status_read)
    if error:
        await process.wait()
        raise StartFailed(error.decode(errors="replace"))
    return process


async def _read_until_eof(fd: int) -> bytes:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", buffering=0)
    )
    try:
        return await reader.read()
    finally:
        transport.close()


def signal_group(pgid: int, signum: signal.Signals) -> bool:
    """Signal every process of a container; False when none is left."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    return True


async def stop_group(process: asyncio.subprocess.Process, grace_seconds: float) -> int:
    """SIGTERM the group, wait up to the grace period, then SIGKILL; return the exit status."""
    signal_group(process.pid, signal.SIGTERM)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(process.wait()), timeout=max(grace_seconds, 0))
    signal_group(process.pid, signal.SIGKILL)
    return await process.wait()
