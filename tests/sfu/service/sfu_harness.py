"""Test harness for the SFU service: join keys and token signing (the control plane's side),
the SFU as a real `switchboard-sfu` subprocess, and a capacity-report receiver.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prometheus_client.parser import text_string_to_metric_families

from switchboard_api.contract import (
    JOIN_PUBLIC_KEY_SUFFIX,
    JOIN_TOKEN_ALGORITHM,
    REPORT_PATH,
    JoinGrants,
    JoinTokenClaims,
    ReportResponse,
    RoomAssignment,
    SfuEnv,
)

LOOPBACK = "127.0.0.1"
STARTUP_DEADLINE_SECONDS = 30.0
"""Generous: only catches a hung start (the machine is shared with other builds)."""


async def wait_for(
    condition: Callable[[], object], deadline: float = 20.0, what: str = "condition"
) -> object:
    """Poll `condition` (sync or async) until truthy; fail after `deadline` seconds."""
    end = time.monotonic() + deadline
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {deadline}s waiting for {what}")
        await asyncio.sleep(0.05)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


# Join tokens, signed as the control plane's join API signs them.


@dataclass
class JoinKeys:
    """An Ed25519 signing key with its public half written as `<kid>.pub` into `directory`."""

    directory: Path
    kid: str = "test-key-1"
    private_key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        pem = self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        (self.directory / f"{self.kid}{JOIN_PUBLIC_KEY_SUFFIX}").write_bytes(pem)


@dataclass
class PodIdentity:
    name: str = "sfu-0"
    uid: str = "3f1c7e55-0000-4000-8000-000000000001"
    namespace: str = "switchboard-media"
    region: str = "test-region"


def sign_join_token(
    keys: JoinKeys,
    pod: PodIdentity,
    *,
    room: str = "default/standup",
    identity: str = "alice",
    grants: JoinGrants | None = None,
    ttl_seconds: int = 300,
    now: float | None = None,
    signing_key: Ed25519PrivateKey | None = None,
    kid: str | None = None,
    claims: dict[str, object] | None = None,
) -> str:
    """A join token as the join API issues it; `claims` replace wire claims verbatim."""
    issued = int(time.time() if now is None else now)
    wire = JoinTokenClaims(
        sub=identity,
        room=room,
        pod=pod.name,
        pod_uid=pod.uid,
        grants=grants or JoinGrants(),
        exp=issued + ttl_seconds,
        iat=issued,
        nbf=issued,
    ).model_dump(mode="json", by_alias=True)
    wire.update(claims or {})
    return jwt.encode(
        wire,
        signing_key or keys.private_key,
        algorithm=JOIN_TOKEN_ALGORITHM,
        headers={"kid": kid or keys.kid},
    )


# The control plane's report receiver.


class ReportReceiver:
    """An aiohttp server standing in for the control plane's capacity receiver.

    It records every report with its arrival time and answers with `response_for(report)`;
    set `acknowledge = False` to leave reports unacknowledged (the SFU then fences).
    """

    def __init__(self) -> None:
        self.reports: list[tuple[float, dict, str | None]] = []
        self.acknowledge = True
        self.failover_timeout_seconds = 6.0
        self.assignments: list[RoomAssignment] = []
        self.drain = False
        self.close: list[str] = []
        self.status = 200
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}{REPORT_PATH}"

    def response_for(self, report: dict) -> dict:
        return ReportResponse(
            acknowledged=self.acknowledge,
            sequence=report["sequence"],
            failover_timeout_seconds=self.failover_timeout_seconds,
            assignments=self.assignments,
            drain=self.drain,
            close=self.close,
        ).to_wire()

    async def _handle(self, request: web.Request) -> web.Response:
        report = await request.json()
        self.reports.append((time.monotonic(), report, request.headers.get("Authorization")))
        if self.status != 200:
            return web.Response(status=self.status, text="unavailable")
        return web.json_response(self.response_for(report))

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post(REPORT_PATH, self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, LOOPBACK, 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def latest(self) -> dict | None:
        return self.reports[-1][1] if self.reports else None


# The SFU process.


class SfuProcess:
    """`switchboard-sfu` started as a subprocess with the environment a pod gets."""

    def __init__(
        self,
        workdir: Path,
        keys: JoinKeys,
        pod: PodIdentity,
        report_url: str | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.keys = keys
        self.pod = pod
        self.port = free_port()
        self.log_path = workdir / "sfu.log"
        self.env = {
            SfuEnv.REGION: pod.region,
            SfuEnv.POD_NAME: pod.name,
            SfuEnv.POD_NAMESPACE: pod.namespace,
            SfuEnv.POD_UID: pod.uid,
            SfuEnv.POD_IP: LOOPBACK,
            SfuEnv.ANNOUNCE_ADDRESS: LOOPBACK,
            SfuEnv.LISTEN_HOST: LOOPBACK,
            SfuEnv.SIGNALLING_PORT: str(self.port),
            SfuEnv.CAPACITY: "20",
            SfuEnv.JOIN_KEYS_DIR: str(keys.directory),
            SfuEnv.DRAIN_GRACE_SECONDS: "30",
        }
        if report_url:
            token_file = workdir / "report-token"
            token_file.write_text("report-token-1\n")
            self.env[SfuEnv.REPORT_URL] = report_url
            self.env[SfuEnv.REPORT_TOKEN_FILE] = str(token_file)
            self.env[SfuEnv.REPORT_INTERVAL_SECONDS] = "0.5"
        self.env.update(extra_env or {})
        self.process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{LOOPBACK}:{self.port}/ws"

    async def start(self) -> None:
        """Start the process and wait until it answers /healthz."""
        self.spawn()
        await self.wait_healthy()

    def spawn(self) -> None:
        executable = shutil.which("switchboard-sfu")
        assert executable, "switchboard-sfu is not installed (pip install -e .)"
        env = {
            key: value for key, value in os.environ.items() if not key.startswith("SWITCHBOARD_")
        }
        env.update({str(key): value for key, value in self.env.items()})
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [executable], env=env, stdout=log, stderr=subprocess.STDOUT
            )

    async def wait_healthy(self) -> None:
        async def healthy() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"SFU exited at start:\n{self.log()}")
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with (
                    aiohttp.ClientSession() as session,
                    session.get(f"{self.base_url}/healthz") as reply,
                ):
                    return reply.status == 200
            return False

        await wait_for(healthy, STARTUP_DEADLINE_SECONDS, "the SFU to answer /healthz")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def exited(self) -> int | None:
        assert self.process is not None
        return self.process.poll()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def rss_bytes(self) -> int:
        assert self.process is not None
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS in /proc status")

    async def metrics(self) -> dict[str, float]:
        """Scrape /metrics: {sample name with sorted labels: value}."""
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{self.base_url}/metrics") as reply,
        ):
            assert reply.status == 200
            text = await reply.text()
        samples = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
        return samples

    async def get(self, path: str) -> tuple[int, str]:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{self.base_url}{path}") as reply,
        ):
            return reply.status, await reply.text()


def json_body(text: str) -> dict:
    return json.loads(text)
