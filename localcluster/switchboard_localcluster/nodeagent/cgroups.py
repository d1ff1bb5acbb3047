"""A container's memory limit as a cgroup (v1) of the agent's own, which records OOM kills.

podman places the container in a child of this cgroup (`--cgroup-parent`). The limit is set
here rather than on the container's own cgroup because the kernel counts an OOM kill in the
cgroup whose limit was hit, and the container's cgroup is gone once it exits: an eventfd
registered on this one (`cgroup.event_control`) still tells, after the exit, whether the
kernel's OOM killer ended the container.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")
PARENT = "switchboard-nodeagent"


def memory_cgroups_available() -> bool:
    return (CGROUP_ROOT / "memory" / "cgroup.event_control").exists()


class MemoryCgroup:
    def __init__(self, relative: str, limit_bytes: int) -> None:
        self.relative = relative
        """The cgroup's path below each hierarchy's root, e.g. /switchboard-nodeagent/x."""
        self.limit_bytes = limit_bytes
        self._event_fd: int | None = None
        self._control_fd: int | None = None

    @property
    def path(self) -> Path:
        return CGROUP_ROOT / "memory" / self.relative.lstrip("/")

    def create(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / "memory.limit_in_bytes").write_text(str(self.limit_bytes))
        memsw = self.path / "memory.memsw.limit_in_bytes"
        if memsw.exists():
            # No swapping past the limit either, as the kubelet configures it.
            with contextlib.suppress(OSError):
                memsw.write_text(str(self.limit_bytes))
        self._event_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._control_fd = os.open(self.path / "memory.oom_control", os.O_RDONLY | os.O_CLOEXEC)
        (self.path / "cgroup.event_control").write_text(f"{self._event_fd} {self._control_fd}")

    def oom_killed(self) -> bool:
        """Whether the OOM killer acted in this cgroup since the last call."""
        if self._event_fd is None:
            return False
        try:
            return os.eventfd_read(self._event_fd) > 0
        except BlockingIOError:
            return False

    def remove(self) -> None:
        for fd in (self._event_fd, self._control_fd):
            if fd is not None:
                os.close(fd)
        self._event_fd = self._control_fd = None
        remove_tree(self.relative)


def remove_tree(relative: str) -> None:
    """Remove a cgroup and the children podman made in it, in every controller hierarchy."""
    for hierarchy in CGROUP_ROOT.iterdir():
        top = hierarchy / relative.lstrip("/")
        if not top.is_dir() or top.is_symlink():
            continue
        for directory in sorted(
            (p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)
        ):
            with contextlib.suppress(OSError):
                directory.rmdir()
        try:
            top.rmdir()
        except OSError as error:
            log.warning("cgroup kept path=%s error=%s", top, error)
