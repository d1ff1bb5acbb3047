"""The fault-injection tools the fault suite and bench/faults.py rely on: each fault looks
to its victims as the real one would (silence, refusal, lost answers, a stopped server),
and goes away again."""

from __future__ import annotations

import json
import os
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.waiting import wait_for
from switchboard_dev.faults import CpuHog, FaultProxy, PacketBlackHole, ProxyMode
from switchboard_dev.operator_process import OperatorProcess, exit_reason
from switchboard_localcluster.controlplane import ControlPlane

REPLY_TIMEOUT = 1.0


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(1024):
            self.server.seen.append(data)  # type: ignore[attr-defined]
            self.request.sendall(data)


@pytest.fixture
def echo() -> Iterator[socketserver.ThreadingTCPServer]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    server.seen = []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def proxy(echo) -> Iterator[FaultProxy]:
    proxy = FaultProxy([echo.server_address]).start()
    yield proxy
    proxy.stop()


def exchange(port: int, payload: bytes = b"ping", source: str = "127.0.0.1") -> bytes | str:
    """Send `payload` on a new connection from `source`: the echo, or what went wrong."""
    try:
        with socket.create_connection(
            ("127.0.0.1", port), timeout=REPLY_TIMEOUT, source_address=(source, 0)
        ) as sock:
            sock.sendall(payload)
            return sock.recv(1024) or "closed"
    except TimeoutError:
        return "silence"
    except OSError as error:
        return type(error).__name__


def test_the_proxy_passes_black_holes_drops_answers_and_refuses(proxy, echo) -> None:
    assert exchange(proxy.port) == b"ping"

    proxy.set_mode(ProxyMode.BLACKHOLE)
    assert exchange(proxy.port, b"lost") == "silence"
    assert b"lost" not in echo.seen

    proxy.set_mode(ProxyMode.DROP_RESPONSES)
    assert exchange(proxy.port, b"heard") == "silence"
    wait_for(lambda: b"heard" in echo.seen, 5, "the request to arrive upstream")

    proxy.set_mode(ProxyMode.REFUSE)
    assert exchange(proxy.port) in ("closed", "ConnectionResetError")

    proxy.set_mode(ProxyMode.PASS)
    assert exchange(proxy.port) == b"ping"


def test_the_proxy_faults_one_client_address_alone(proxy, echo) -> None:
    proxy.set_mode(ProxyMode.BLACKHOLE, source="127.0.0.66")
    assert exchange(proxy.port, source="127.0.0.66") == "silence"
    assert exchange(proxy.port, source="127.0.0.67") == b"ping"
    proxy.set_mode(ProxyMode.PASS, source="127.0.0.66")
    assert exchange(proxy.port, source="127.0.0.66") == b"ping"


class _Health(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        line = self.rfile.readline()
        if line.startswith(b"GET /healthz"):
            self.wfile.write(b"HTTP/1.0 200 OK\r\n\r\n")
        else:
            self.wfile.write(self.server.name + b"\n")  # type: ignore[attr-defined]


def test_the_proxy_routes_to_the_upstream_that_answers_its_health_path() -> None:
    servers = []
    for name in (b"first", b"second"):
        server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Health)
        server.daemon_threads = True
        server.name = name  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    proxy = FaultProxy([s.server_address for s in servers], health_path="/healthz").start()
    try:
        assert exchange(proxy.port, b"hello\n") == b"first\n"
        # The first stops answering but still accepts (a frozen process): out of rotation.
        servers[0].shutdown()
        wait_for(lambda: exchange(proxy.port, b"hello\n") == b"second\n", 10, "failover")
    finally:
        proxy.stop()
        for server in servers:
            server.server_close()


def test_the_proxy_goes_to_the_first_upstream_that_accepts(echo) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        nobody = unused.getsockname()
    proxy = FaultProxy([nobody, echo.server_address]).start()
    try:
        assert exchange(proxy.port) == b"ping"
    finally:
        proxy.stop()


def test_packets_from_one_address_to_one_port_are_dropped_until_healed(echo) -> None:
    port = echo.server_address[1]
    source = "127.0.0.77"

    def from_source() -> bytes | str:
        try:
            with socket.create_connection(
                ("127.0.0.1", port), timeout=REPLY_TIMEOUT, source_address=(source, 0)
            ) as sock:
                sock.sendall(b"hello")
                return sock.recv(1024)
        except TimeoutError:
            return "silence"

    with PacketBlackHole(source, port):
        assert from_source() == "silence"
        assert exchange(port) == b"ping"  # other sources still get through
    assert from_source() == b"hello"


def test_the_cpu_hog_keeps_every_core_busy(tmp_path: Path) -> None:
    def busy_seconds() -> float:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        user, nice, system = (int(x) for x in fields[:3])
        return (user + nice + system) / os.sysconf("SC_CLK_TCK")

    with CpuHog(tmp_path, cores=1):
        before, started = busy_seconds(), time.monotonic()
        wait_for(lambda: time.monotonic() - started > 1.0, 5, "a second of hogging")
        used = busy_seconds() - before
    assert used > 0.5, f"{used:.2f} CPU-seconds in a second"


def test_an_operator_that_exits_is_started_again(tmp_path: Path) -> None:
    # Without a readable kubeconfig the operator exits at once, as one that stepped down.
    operator = OperatorProcess(
        tmp_path / "missing.kubeconfig",
        tmp_path,
        env={"SWITCHBOARD_NAMESPACE": "x", "SWITCHBOARD_LISTEN_PORT": "1"},
        restart_on_exit=True,
    )
    operator.start(wait=False)
    try:
        wait_for(lambda: operator.restarts >= 1, 30, "a restart after the exit")
    finally:
        operator.stop()
    restarts = operator.restarts
    # Nothing restarts a stopped operator.
    assert not operator.running() and operator.restarts == restarts
    # The stack's own log says why it exited: the traceback's exception.
    assert "ConfigException" in operator.last_exit_reason


def test_an_exit_reason_is_the_logs_last_problems(tmp_path: Path) -> None:
    def record(level: str, message: str) -> str:
        return json.dumps({"level": level, "logger": "x", "message": message})

    log_path = tmp_path / "operator.log"
    log_path.write_text(
        "\n".join(
            [
                record("warning", "an old warning"),
                record("info", "leading lease=switchboard-operator term=1"),
                record("warning", "lease renewal failed error=TimeoutError()"),
                record("info", "rooms re-placed count=64"),
                record("error", "leadership lost: exiting so that a standby takes over"),
                "Traceback (most recent call last):",
                '  File "x.py", line 1, in <module>',
                "RuntimeError: boom",
                "",
            ]
        )
    )
    assert exit_reason(log_path) == (
        "lease renewal failed error=TimeoutError() | "
        "leadership lost: exiting so that a standby takes over | RuntimeError: boom"
    )
    assert exit_reason(log_path, lines=1) == "RuntimeError: boom"
    assert exit_reason(tmp_path / "missing.log") == ""
    log_path.write_text(record("info", "serving") + "\n")
    assert exit_reason(log_path) == ""


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    cluster = ControlPlane(workdir=tmp_path_factory.mktemp("faults"), controllers=False).start()
    yield cluster
    cluster.stop()


@pytest.mark.cluster
def test_the_api_server_killed_and_revived_keeps_its_data(plane: ControlPlane) -> None:
    plane.kubectl("create", "configmap", "survivor", "--from-literal=k=v")
    plane.kill("kube-apiserver")
    assert not plane.ready()
    plane.revive("kube-apiserver")
    assert plane.kubectl("get", "configmap", "survivor", "-o", "name").stdout.strip()


@pytest.mark.cluster
def test_a_frozen_api_server_is_silence_not_refusal(plane: ControlPlane) -> None:
    host, port = "127.0.0.1", int(plane.url.rsplit(":", 1)[1])
    apiserver = plane.component("kube-apiserver")
    apiserver.freeze()
    try:
        with socket.create_connection((host, port), timeout=REPLY_TIMEOUT) as sock:
            sock.sendall(b"\x16\x03\x01\x00\x05hello")  # the kernel still accepts...
            with pytest.raises(TimeoutError):
                sock.recv(1024)  # ...but nothing answers
    finally:
        apiserver.thaw()
    wait_for(plane.ready, 60, "the API server to answer again")


@pytest.mark.cluster
def test_etcd_killed_makes_the_api_server_unready_until_revived(plane: ControlPlane) -> None:
    plane.kill("etcd")
    wait_for(lambda: not plane.ready(), 60, "the API server to notice etcd is gone")
    plane.revive("etcd")
    wait_for(plane.ready, 60, "the API server ready again")
    assert plane.kubectl("get", "namespaces", "-o", "name").stdout
