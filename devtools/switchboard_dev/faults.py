"""Fault injection for tests and benchmarks on the local cluster: a TCP proxy that can
black-hole, refuse or drop one direction; a packet black hole with iptables inside the
test's own network namespace; a CPU hog. Control-plane components are frozen, killed and
revived through `ControlPlane` (kill/revive, and `component(name).freeze()`/`thaw()`).

Nothing here touches anything outside loopback: the iptables rules are refused unless the
process runs in the private network namespace `tools/in-netns.sh` creates.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path

from switchboard_localcluster.processes import Supervised

log = logging.getLogger(__name__)

CHUNK = 64 * 1024
CONNECT_TIMEOUT_SECONDS = 2.0
HEALTH_PERIOD_SECONDS = 0.5
HEALTH_TIMEOUT_SECONDS = 0.5
"""A Service's readiness at test speed: an upstream that does not answer its health path
within this long is out until it does."""


class ProxyMode(StrEnum):
    PASS = "pass"
    """Forward both ways."""
    BLACKHOLE = "blackhole"
    """Accept, and forward nothing either way: peers see silence, not a refusal."""
    REFUSE = "refuse"
    """Close new and existing connections at once."""
    DROP_RESPONSES = "drop-responses"
    """Forward what clients send; throw away everything the upstream answers."""


class FaultProxy:
    """A TCP proxy on loopback in a thread of its own, whose behaviour a test switches, for
    every client or per client address (`set_mode(..., source=ip)`).

    With several upstreams it connects to the first that accepts and, given `health_path`,
    that answered it with 200 lately: a Service routing to the one ready replica (standbys
    do not listen; a frozen leader still accepts, but answers nothing). An upstream that
    speaks TLS is probed on another port of its own (`health_upstreams`, in order).
    """

    def __init__(
        self,
        upstreams: Sequence[tuple[str, int]],
        host: str = "127.0.0.1",
        health_path: str | None = None,
        health_upstreams: Sequence[tuple[str, int]] | None = None,
    ) -> None:
        if not upstreams:
            raise ValueError("a proxy needs at least one upstream")
        if health_upstreams is not None and len(health_upstreams) != len(upstreams):
            raise ValueError("one health upstream per upstream")
        self.upstreams = list(upstreams)
        self._probed = list(health_upstreams or upstreams)
        self.host = host
        self.port = 0
        self.mode = ProxyMode.PASS
        self.source_modes: dict[str, ProxyMode] = {}
        self._health_path = health_path
        self._healthy: set[tuple[str, int]] = set(self.upstreams)
        self._prober: concurrent.futures.Future[None] | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self._connections: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> FaultProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)
        if self._health_path is not None:
            self._prober = asyncio.run_coroutine_threadsafe(self._probe_forever(), self._loop)
        log.info("fault proxy listening address=%s upstreams=%s", self.address, self.upstreams)
        return self

    def set_mode(self, mode: ProxyMode, source: str | None = None) -> None:
        """Switch behaviour, for every client or for those connecting from `source` (PASS
        for a source clears its own mode); REFUSE also closes what is open now."""
        if source is None:
            self.mode = mode
        elif mode is ProxyMode.PASS:
            self.source_modes.pop(source, None)
        else:
            self.source_modes[source] = mode
        log.info("fault proxy mode address=%s mode=%s source=%s", self.address, mode, source)
        if mode is ProxyMode.REFUSE:
            asyncio.run_coroutine_threadsafe(self._close_all(source), self._loop).result(10)

    def _mode_for(self, source: str) -> ProxyMode:
        return self.source_modes.get(source, self.mode)

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        source = str(writer.get_extra_info("peername")[0])
        if self._mode_for(source) is ProxyMode.REFUSE:
            writer.close()
            return
        upstream = await self._connect()
        if upstream is None:
            writer.close()
            return
        up_reader, up_writer = upstream
        pair = (writer, up_writer)
        self._connections.add(pair)
        try:
            await asyncio.gather(
                self._pump(reader, up_writer, source, upstream_bound=True),
                self._pump(up_reader, writer, source, upstream_bound=False),
            )
        finally:
            self._connections.discard(pair)
            for each in pair:
                each.close()

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        for host, port in self.upstreams:
            if (host, port) not in self._healthy:
                continue
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS):
                    return await asyncio.open_connection(host, port)
        return None

    async def _probe_forever(self) -> None:
        while True:
            results = await asyncio.gather(*(self._probe(*u) for u in self._probed))
            self._healthy = {u for u, ok in zip(self.upstreams, results, strict=True) if ok}
            await asyncio.sleep(HEALTH_PERIOD_SECONDS)

    async def _probe(self, host: str, port: int) -> bool:
        request = f"GET {self._health_path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode()
        try:
            async with asyncio.timeout(HEALTH_TIMEOUT_SECONDS):
                reader, writer = await asyncio.open_connection(host, port)
                try:
                    writer.write(request)
                    status = await reader.readline()
                finally:
                    writer.close()
        except (OSError, TimeoutError):
            return False
        return b" 200 " in status

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        source: str,
        *,
        upstream_bound: bool,
    ) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(CHUNK):
                mode = self._mode_for(source)
                if mode is ProxyMode.REFUSE:
                    return
                if mode is ProxyMode.BLACKHOLE:
                    continue
                if mode is ProxyMode.DROP_RESPONSES and not upstream_bound:
                    continue
                sink.write(data)
                await sink.drain()
        with contextlib.suppress(OSError):
            if sink.can_write_eof():
                sink.write_eof()

    async def _close_all(self, source: str | None = None) -> None:
        for pair in list(self._connections):
            if source is None or pair[0].get_extra_info("peername")[0] == source:
                for writer in pair:
                    writer.transport.abort()

    async def _shutdown(self) -> None:
        if self._prober is not None:
            self._prober.cancel()
        if self._server is not None:
            self._server.close()
        await self._close_all()
        # Let cancelled probes and pumps unwind before the loop stops.
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _require_private_netns() -> None:
    if os.environ.get("SWITCHBOARD_IN_NETNS") != "1":
        raise RuntimeError(
            "packet rules are only set inside the private network namespace of "
            "tools/in-netns.sh (run the tests with `make test`)"
        )


class PacketBlackHole:
    """Drop TCP packets from `source` to `port` with iptables: connections from that
    address to that port go silent (no refusal, no reset), as when a path is cut."""

    def __init__(self, source: str, port: int) -> None:
        self.rule = ["OUTPUT", "-s", source, "-p", "tcp", "--dport", str(port), "-j", "DROP"]
        self.active = False

    def __enter__(self) -> PacketBlackHole:
        self.cut()
        return self

    def __exit__(self, *_: object) -> None:
        self.heal()

    def cut(self) -> None:
        _require_private_netns()
        subprocess.run(["iptables", "-I", *self.rule], check=True, capture_output=True)
        self.active = True
        log.info("packets dropped rule=%s", " ".join(self.rule))

    def heal(self) -> None:
        if self.active:
            subprocess.run(["iptables", "-D", *self.rule], check=True, capture_output=True)
            self.active = False
            log.info("packets flow again rule=%s", " ".join(self.rule))


class CpuHog:
    """Busy-loop processes, one per core asked for, at this process's own `nice`."""

    def __init__(self, workdir: Path, cores: int = os.cpu_count() or 1) -> None:
        self._procs = [
            Supervised(
                f"cpu-hog-{index}",
                [sys.executable, "-c", "while True:\n    pass"],
                workdir / f"cpu-hog-{index}.log",
            )
            for index in range(cores)
        ]

    def __enter__(self) -> CpuHog:
        for proc in self._procs:
            proc.start()
        return self

    def __exit__(self, *_: object) -> None:
        for proc in self._procs:
            proc.kill()
