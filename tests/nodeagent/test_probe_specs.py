"""Probe specs parse with Kubernetes defaults, and thresholds decide when state flips."""

import pytest

from switchboard_localcluster.nodeagent.probes import (
    ContainerProbes,
    Exec,
    HttpGet,
    Probe,
    ProbeSpecError,
    ProbeTracker,
    Sleep,
    TcpSocket,
    resolve_port,
)

PORTS = [{"name": "http", "containerPort": 8080}, {"name": "metrics", "containerPort": 9090}]


def test_http_probe_with_defaults() -> None:
    probe = Probe.parse({"httpGet": {"port": "http", "path": "/ready"}})
    assert probe.action == HttpGet(port="http", path="/ready")
    assert (probe.period_seconds, probe.timeout_seconds) == (10, 1)
    assert (probe.success_threshold, probe.failure_threshold) == (1, 3)
    assert probe.initial_delay_seconds == 0


def test_probe_timings_and_handlers() -> None:
    probe = Probe.parse(
        {
            "tcpSocket": {"port": 5349},
            "initialDelaySeconds": 2,
            "periodSeconds": 1,
            "timeoutSeconds": 3,
            "successThreshold": 2,
            "failureThreshold": 5,
        }
    )
    assert probe.action == TcpSocket(port=5349)
    assert (probe.initial_delay_seconds, probe.period_seconds, probe.timeout_seconds) == (2, 1, 3)
    assert (probe.success_threshold, probe.failure_threshold) == (2, 5)
    exec_probe = Probe.parse({"exec": {"command": ["cat", "/tmp/healthy"]}})
    assert exec_probe.action == Exec(command=("cat", "/tmp/healthy"))


def test_http_headers_and_scheme() -> None:
    probe = Probe.parse(
        {
            "httpGet": {
                "port": 443,
                "scheme": "HTTPS",
                "httpHeaders": [{"name": "X-Probe", "value": "1"}],
            }
        }
    )
    assert probe.action == HttpGet(port=443, path="/", scheme="HTTPS", headers=(("X-Probe", "1"),))


def test_grpc_probes_are_reported_unsupported() -> None:
    with pytest.raises(ProbeSpecError, match="grpc"):
        Probe.parse({"grpc": {"port": 9000}})


def test_container_probes_and_hooks() -> None:
    probes = ContainerProbes.parse(
        {
            "readinessProbe": {"httpGet": {"port": 8080, "path": "/ready"}},
            "lifecycle": {
                "preStop": {"sleep": {"seconds": 2}},
                "postStart": {"exec": {"command": ["touch", "/tmp/started"]}},
            },
        }
    )
    assert probes.readiness is not None
    assert probes.liveness is None and probes.startup is None
    assert probes.pre_stop == Sleep(seconds=2)
    assert probes.post_start == Exec(command=("touch", "/tmp/started"))


@pytest.mark.parametrize(("port", "number"), [(8080, 8080), ("9090", 9090), ("metrics", 9090)])
def test_ports_by_number_or_name(port: int | str, number: int) -> None:
    assert resolve_port(port, PORTS) == number


def test_unknown_named_port() -> None:
    with pytest.raises(ProbeSpecError, match="grpc"):
        resolve_port("grpc", PORTS)


def test_readiness_needs_success_threshold_in_a_row() -> None:
    tracker = ProbeTracker(
        Probe(action=TcpSocket(port=1), success_threshold=2, failure_threshold=2), initial=False
    )
    assert [tracker.record(r) for r in (True, False, True, True)] == [False, False, False, True]


def test_failure_threshold_counts_consecutive_failures() -> None:
    tracker = ProbeTracker(Probe(action=TcpSocket(port=1), failure_threshold=3), initial=True)
    assert [tracker.record(r) for r in (False, False, True, False, False, False)] == [
        True,
        True,
        True,
        True,
        True,
        False,
    ]
