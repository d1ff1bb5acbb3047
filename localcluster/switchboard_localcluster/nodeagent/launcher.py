"""Bootstrap of one container process: enter a private mount (and UTS) namespace, bind the
pod's volumes at their mount paths, then exec the container's command.

Run as ``python -m switchboard_localcluster.nodeagent.launcher SPEC_FD STATUS_FD``. The spec is
JSON read from SPEC_FD. STATUS_FD is close-on-exec: the agent reads EOF when exec succeeded
and an error message when it did not. Only the standard library is imported, to start fast.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import sys
from typing import Any

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
MS_RDONLY = 1
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
PR_SET_PDEATHSIG = 1
EXIT_START_ERROR = 127

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _mount(source: str | None, target: str, flags: int) -> None:
    _check(
        _libc.mount(
            source.encode() if source else None, target.encode(), None, ctypes.c_ulong(flags), None
        ),
        f"mount {source} on {target}",
    )


def enter_new_sandbox(spec: dict[str, Any]) -> None:
    _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWUTS), "unshare")
    # Without this, our bind mounts would propagate back into the host's namespace.
    _mount(None, "/", MS_REC | MS_PRIVATE)
    if spec.get("hostname"):
        socket.sethostname(spec["hostname"])
    mounts = spec.get("mounts") or []
    keep = [path for path in spec.get("keepVisible") or [] if os.path.isdir(path)]
    # Hold every source open first: a volume mounted over e.g. /tmp must not hide the
    # sources of the volumes mounted after it (the agent's state may live under /tmp),
    # nor the image's own installation (which may live there too).
    sources = [os.open(m["source"], os.O_PATH | os.O_CLOEXEC) for m in mounts]
    kept = [os.open(path, os.O_PATH | os.O_CLOEXEC) for path in keep]
    try:
        for mount, fd in zip(mounts, sources, strict=True):
            _mount(f"/proc/self/fd/{fd}", mount["target"], MS_BIND | MS_REC)
            if mount.get("readOnly"):
                _mount(None, mount["target"], MS_BIND | MS_REMOUNT | MS_RDONLY)
        for path, fd in zip(keep, kept, strict=True):
            if _shadowed(path, fd):
                os.makedirs(path, exist_ok=True)
                _mount(f"/proc/self/fd/{fd}", path, MS_BIND | MS_REC)
    finally:
        for fd in [*sources, *kept]:
            os.close(fd)


def _shadowed(path: str, fd: int) -> bool:
    """True if `path` no longer names the directory `fd` was opened on."""
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return True
    then = os.fstat(fd)
    return (now.st_dev, now.st_ino) != (then.st_dev, then.st_ino)


def join_sandbox(pid: int) -> None:
    """Enter the namespaces of a running container (for exec probes and hooks)."""
    for name, flag in (("mnt", CLONE_NEWNS), ("uts", CLONE_NEWUTS)):
        fd = os.open(f"/proc/{pid}/ns/{name}", os.O_RDONLY)
        try:
            _check(_libc.setns(fd, flag), f"setns {name} of pid {pid}")
        finally:
            os.close(fd)


def main(argv: list[str]) -> None:
    spec_fd, status_fd = int(argv[1]), int(argv[2])
    os.set_inheritable(status_fd, False)
    with os.fdopen(spec_fd, "rb") as spec_file:
        spec = json.load(spec_file)
    try:
        # The process dies with the agent even if the agent is killed without cleanup.
        _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl")
        if os.getppid() != spec["parentPid"]:
            raise OSError("the node agent exited before the container started")
        if spec.get("joinPid"):
            join_sandbox(spec["joinPid"])
        else:
            enter_new_sandbox(spec)
        if spec.get("workingDir"):
            os.chdir(spec["workingDir"])
    except OSError as error:
        os.write(status_fd, str(error).encode())
        os._exit(EXIT_START_ERROR)
    command = spec["argv"]
    try:
        os.execvpe(command[0], command, spec["env"])
    except OSError as error:
        os.write(status_fd, f"exec {command[0]!r}: {error.strerror}".encode())
        os._exit(EXIT_START_ERROR)


if __name__ == "__main__":
    main(sys.argv)
