"""Free loopback ports for the processes a local stack starts.

A port is picked now and bound later, seconds later for a process that is still starting.
Picked the usual way (bind to port 0, then release), the next pick can return it again
before its process has bound it: CI saw an operator replica get the same port for its HTTP
server and its liveness endpoint ("address already in use"). And it comes from the kernel's
ephemeral range, where every outgoing connection on the machine draws its source port from,
so any of the stack's own connections can take it meanwhile. So this process never hands
out the same port twice, and picks at random below the ephemeral range, where only a process
that binds a port on purpose takes one.
"""

from __future__ import annotations

import random
import socket
import threading
from pathlib import Path
from typing import Final

LOOPBACK: Final = "127.0.0.1"
LOWEST: Final = 10000
"""Below this: well-known and registered ports of services a machine may run."""
EPHEMERAL_RANGE: Final = Path("/proc/sys/net/ipv4/ip_local_port_range")
MIN_SPAN: Final = 2000
"""Fewer ports than this below the ephemeral range: pick the usual way instead."""
ATTEMPTS: Final = 1000

_lock = threading.Lock()
_handed_out: set[int] = set()


def ephemeral_start(path: Path = EPHEMERAL_RANGE) -> int | None:
    """The first port of the kernel's ephemeral range, or None where it cannot be read."""
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def free_port() -> int:
    """A loopback TCP port nothing is bound to, outside the ephemeral range where it can,
    and never one this process handed out before (while there are others left)."""
    start = ephemeral_start()
    if start is None or start - LOWEST < MIN_SPAN:
        return _kernel_pick()
    with _lock:
        if len(_handed_out) > (start - LOWEST) // 2:
            _handed_out.clear()  # a very long run: earlier ports are long bound or gone
        for _ in range(ATTEMPTS):
            port = random.randrange(LOWEST, start)
            if port not in _handed_out and _bindable(port):
                _handed_out.add(port)
                return port
    return _kernel_pick()


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def _kernel_pick() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])
