"""coturn's `turns:` listener follows a renewed certificate without a restart: the secret
sync sidecar (the real program) sees the mounted Secret change and signals Debian's
turnserver, which reloads it for new TLS connections while an allocation made over TLS
before the renewal keeps working."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aioice import stun
from aioice.turn import TurnClientTcpProtocol

from fixtures.tls import TestCa, mount_tls_secret, serial_of, served_serial
from fixtures.waiting import eventually, wait_for
from switchboard_turn.coturn import (
    MINTED_SECRET_KEY,
    SECRET_SYNC_COMMAND,
    CoturnSettings,
    TlsFiles,
    turnserver_args,
)
from switchboard_turn.credentials import mint_turn_credential

TURNSERVER = shutil.which("turnserver")
SYNC = shutil.which(SECRET_SYNC_COMMAND)
REALM = "turn.switchboard.test"
SECRET = "tls-reload-secret-0123456789"
HOST = "turn.example.test"

pytestmark = pytest.mark.skipif(not (TURNSERVER and SYNC), reason="coturn is not installed")


def _free_tcp_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


@dataclass
class TlsTurn:
    ca: TestCa
    tls_dir: Path
    tls_port: int
    server: subprocess.Popen


@pytest.fixture
def tls_turn(tmp_path: Path) -> Iterator[TlsTurn]:
    """coturn with a TLS listener and the secret sync sidecar watching its certificate."""
    ca = TestCa(tmp_path)
    tls_dir, secrets_dir = tmp_path / "tls", tmp_path / "secrets"
    mount_tls_secret(tls_dir, ca.issue(HOST))
    secrets_dir.mkdir()
    (secrets_dir / MINTED_SECRET_KEY).write_text(SECRET)
    userdb, pidfile = tmp_path / "turndb", tmp_path / "turnserver.pid"
    port, tls_port = _free_tcp_port(), _free_tcp_port()
    relay_min = 41000 + tls_port % 100 * 100
    settings = CoturnSettings(
        realm=REALM,
        listening_port=port,
        relay_port_min=relay_min,
        relay_port_max=relay_min + 99,
        userdb_path=str(userdb),
        pidfile_path=str(pidfile),
        listening_ip="127.0.0.1",
        tls=TlsFiles(
            port=tls_port, cert_path=str(tls_dir / "tls.crt"), key_path=str(tls_dir / "tls.key")
        ),
    )
    sync = [SYNC, f"--secrets-dir={secrets_dir}", f"--userdb={userdb}", f"--realm={REALM}"]
    subprocess.run([*sync, "--once"], check=True, capture_output=True)
    logs = (tmp_path / "turnserver.log").open("w"), (tmp_path / "sync.log").open("w")
    server = subprocess.Popen(
        [TURNSERVER, *turnserver_args(settings)], stdout=logs[0], stderr=subprocess.STDOUT
    )
    sidecar = subprocess.Popen(
        [*sync, f"--tls-dir={tls_dir}", f"--pidfile={pidfile}", "--interval=0.2"],
        stdout=logs[1],
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: _accepts(tls_port) and pidfile.exists(), 30, "coturn's TLS listener")
        yield TlsTurn(ca, tls_dir, tls_port, server)
    finally:
        for process in (sidecar, server):
            process.terminate()
            process.wait(timeout=10)
        for log in logs:
            log.close()
    assert SECRET not in (tmp_path / "sync.log").read_text()


async def test_a_renewed_certificate_reaches_coturn_and_allocations_survive(tls_turn):
    ca, tls_port, server = tls_turn.ca, tls_turn.tls_port, tls_turn.server
    credential = mint_turn_credential(SECRET.encode(), "alice", time.time(), 600)
    transport, turn_client = await asyncio.get_running_loop().create_connection(
        lambda: TurnClientTcpProtocol(
            ("127.0.0.1", tls_port),
            username=credential.username,
            password=credential.password,
            lifetime=600,
            channel_refresh_time=500,
        ),
        "127.0.0.1",
        tls_port,
        ssl=ca.client_context(),
        server_hostname=HOST,
    )
    try:
        await asyncio.wait_for(turn_client.connect(), 20)
        assert turn_client.relayed_address is not None
        pid = server.pid

        renewed = ca.issue(HOST)
        mount_tls_secret(tls_turn.tls_dir, renewed)

        async def renewed_served() -> bool:
            return await served_serial("127.0.0.1", tls_port, ca, HOST) == serial_of(renewed)

        await eventually(renewed_served, 30, "coturn to serve the renewed certificate")
        assert server.poll() is None and server.pid == pid
        # The allocation made under the old certificate is still live on its connection.
        refresh = stun.Message(message_method=stun.Method.REFRESH, message_class=stun.Class.REQUEST)
        refresh.attributes["LIFETIME"] = 600
        response, _ = await asyncio.wait_for(turn_client.request_with_retry(refresh), 20)
        assert response.attributes["LIFETIME"] == 600
    finally:
        transport.close()
