"""Running probe and hook actions (httpGet, tcpSocket, exec, sleep) against a container."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from switchboard_localcluster.podman import PodmanError

from .probes import Action, Exec, HttpGet, ProbeSpecError, Sleep, TcpSocket, resolve_port
from .process import StartFailed
from .runtime import RunningContainer


@dataclass(frozen=True)
class ProbeTarget:
    pod_ip: str
    ports: Sequence[Mapping[str, Any]]
    container: RunningContainer | None
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ProbeResult:
    success: bool
    detail: str = ""


class Prober:
    def __init__(self) -> None:
        # Probes open a fresh connection each time, as the kubelet's do.
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(force_close=True, ssl=False),
                headers={"User-Agent": "kube-probe/switchboard-local"},
            )
        return self._session

    async def run(self, action: Action, target: ProbeTarget, timeout_seconds: float) -> ProbeResult:
        try:
            if isinstance(action, HttpGet):
                return await self._http_get(action, target, timeout_seconds)
            if isinstance(action, TcpSocket):
                return await self._tcp(action, target, timeout_seconds)
            if isinstance(action, Exec):
                return await self._exec(action, target, timeout_seconds)
            if isinstance(action, Sleep):
                await asyncio.sleep(action.seconds)
                return ProbeResult(True)
        except ProbeSpecError as error:
            return ProbeResult(False, str(error))
        return ProbeResult(False, f"unsupported action {action!r}")

    async def _http_get(
        self, action: HttpGet, target: ProbeTarget, timeout_seconds: float
    ) -> ProbeResult:
        port = resolve_port(action.port, target.ports)
        host = action.host or target.pod_ip
        path = action.path if action.path.startswith("/") else f"/{action.path}"
        url = f"{action.scheme.lower()}://{host}:{port}{path}"
        try:
            async with self._http().get(
                url,
                headers=dict(action.headers),
                timeout=aiohttp.ClientTimeout(total=timeout_seconds),
                allow_redirects=True,
            ) as response:
                ok = 200 <= response.status < 400
                return ProbeResult(ok, f"HTTP probe {url} returned {response.status}")
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            return ProbeResult(False, f"HTTP probe {url} failed: {error!r}")

    async def _tcp(
        self, action: TcpSocket, target: ProbeTarget, timeout_seconds: float
    ) -> ProbeResult:
        port = resolve_port(action.port, target.ports)
        host = action.host or target.pod_ip
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_seconds)
        except (TimeoutError, OSError) as error:
            return ProbeResult(False, f"TCP probe {host}:{port} failed: {error!r}")
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return ProbeResult(True)

    async def _exec(self, action: Exec, target: ProbeTarget, timeout_seconds: float) -> ProbeResult:
        if target.container is None:
            return ProbeResult(False, "container is not running")
        try:
            code = await target.container.exec(action.command, target.env, timeout_seconds)
        except (StartFailed, PodmanError, OSError) as error:
            return ProbeResult(False, f"exec probe failed to start: {error}")
        except TimeoutError:
            return ProbeResult(False, f"exec probe timed out after {timeout_seconds}s")
        return ProbeResult(code == 0, f"exec probe exited with {code}")
