"""Probe and lifecycle-hook specs of a container, and the threshold bookkeeping of a probe."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Defaults the API server would fill in; repeated so specs parse even when built by hand.
DEFAULT_PERIOD_SECONDS = 10
DEFAULT_TIMEOUT_SECONDS = 1
DEFAULT_SUCCESS_THRESHOLD = 1
DEFAULT_FAILURE_THRESHOLD = 3


class ProbeSpecError(ValueError):
    """A probe or hook this agent cannot run (unknown handler, unknown named port)."""


@dataclass(frozen=True)
class HttpGet:
    port: int | str
    path: str = "/"
    host: str | None = None
    scheme: str = "HTTP"
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class TcpSocket:
    port: int | str
    host: str | None = None


@dataclass(frozen=True)
class Exec:
    command: tuple[str, ...]


@dataclass(frozen=True)
class Sleep:
    seconds: int


Action = HttpGet | TcpSocket | Exec | Sleep


def parse_action(spec: Mapping[str, Any], allow_sleep: bool = False) -> Action:
    if "httpGet" in spec:
        http = spec["httpGet"]
        return HttpGet(
            port=http["port"],
            path=http.get("path") or "/",
            host=http.get("host") or None,
            scheme=(http.get("scheme") or "HTTP").upper(),
            headers=tuple((h["name"], h["value"]) for h in http.get("httpHeaders") or []),
        )
    if "tcpSocket" in spec:
        tcp = spec["tcpSocket"]
        return TcpSocket(port=tcp["port"], host=tcp.get("host") or None)
    if "exec" in spec:
        command = tuple((spec["exec"] or {}).get("command") or ())
        if not command:
            raise ProbeSpecError("exec handler without a command")
        return Exec(command=command)
    if allow_sleep and "sleep" in spec:
        return Sleep(seconds=int(spec["sleep"]["seconds"]))
    handlers = sorted(k for k in spec if k in {"grpc", "sleep", "httpGet", "tcpSocket", "exec"})
    raise ProbeSpecError(f"unsupported handler {handlers or sorted(spec)}")


@dataclass(frozen=True)
class Probe:
    action: Action
    initial_delay_seconds: float = 0
    period_seconds: float = DEFAULT_PERIOD_SECONDS
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    success_threshold: int = DEFAULT_SUCCESS_THRESHOLD
    failure_threshold: int = DEFAULT_FAILURE_THRESHOLD
    termination_grace_period_seconds: int | None = None

    @classmethod
    def parse(cls, spec: Mapping[str, Any]) -> Probe:
        return cls(
            action=parse_action(spec),
            initial_delay_seconds=spec.get("initialDelaySeconds") or 0,
            period_seconds=spec.get("periodSeconds") or DEFAULT_PERIOD_SECONDS,
            timeout_seconds=spec.get("timeoutSeconds") or DEFAULT_TIMEOUT_SECONDS,
            success_threshold=spec.get("successThreshold") or DEFAULT_SUCCESS_THRESHOLD,
            failure_threshold=spec.get("failureThreshold") or DEFAULT_FAILURE_THRESHOLD,
            termination_grace_period_seconds=spec.get("terminationGracePeriodSeconds"),
        )


@dataclass(frozen=True)
class ContainerProbes:
    startup: Probe | None
    liveness: Probe | None
    readiness: Probe | None
    post_start: Action | None
    pre_stop: Action | None

    @classmethod
    def parse(cls, container: Mapping[str, Any]) -> ContainerProbes:
        lifecycle = container.get("lifecycle") or {}

        def probe(key: str) -> Probe | None:
            spec = container.get(key)
            return Probe.parse(spec) if spec else None

        def hook(key: str) -> Action | None:
            spec = lifecycle.get(key)
            return parse_action(spec, allow_sleep=True) if spec else None

        return cls(
            startup=probe("startupProbe"),
            liveness=probe("livenessProbe"),
            readiness=probe("readinessProbe"),
            post_start=hook("postStart"),
            pre_stop=hook("preStop"),
        )


def resolve_port(port: int | str, container_ports: Sequence[Mapping[str, Any]]) -> int:
    """A probe port given by number, numeric string, or the name of a container port."""
    if isinstance(port, int):
        return port
    if port.isdigit():
        return int(port)
    for declared in container_ports:
        if declared.get("name") == port:
            return int(declared["containerPort"])
    raise ProbeSpecError(f"container has no port named {port!r}")


class ProbeTracker:
    """Turns individual probe results into a state, honouring success/failure thresholds."""

    def __init__(self, probe: Probe, initial: bool) -> None:
        self.probe = probe
        self.state = initial
        self._successes = 0
        self._failures = 0

    def record(self, success: bool) -> bool:
        """Record one result; return the state, which flips only after enough results in a row."""
        if success:
            self._successes += 1
            self._failures = 0
            if self._successes >= self.probe.success_threshold:
                self.state = True
        else:
            self._failures += 1
            self._successes = 0
            if self._failures >= self.probe.failure_threshold:
                self.state = False
        return self.state
