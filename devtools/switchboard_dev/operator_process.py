"""Run the real `switchboard-operator` against a cluster, under its chart's ClusterRole."""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import threading
import time
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

import yaml

from switchboard_dev.flow_schema import operator_flow_schema
from switchboard_dev.images import image_reference
from switchboard_dev.paths import OPERATOR_CLUSTER_ROLE, OPERATOR_REGIONS_ROLE, OPERATOR_ROLE
from switchboard_localcluster.controlplane import free_port
from switchboard_localcluster.processes import Supervised, wait_until

log = logging.getLogger(__name__)

OPERATOR_USER = "switchboard-operator"
RESTART_BACKOFF_SECONDS = (1.0, 10.0)
"""First and longest wait before an exited operator is started again (doubling)."""
RESTART_RESET_SECONDS = 60.0
"""A run this long forgets the back-off, as the kubelet's crash-loop back-off does."""
OPERATOR_NAMESPACE = "switchboard-system"
EXIT_REASON_LINES = 3
"""Problem lines of an exited operator's log named in the stack's own log."""
LOG_TAIL_BYTES = 64 * 1024
PROBLEM_LEVELS = frozenset({"warning", "error", "critical"})


def local_operator_env(listen_port: int, report_port: int | None = None) -> dict[str, str]:
    """Configuration for an operator process on the local cluster: it listens on loopback and
    SFU pods (local processes) and clients reach its report receiver (HTTPS, certified for
    127.0.0.1 by the CA the operator publishes) and join API there. A real install sets the
    same variables (the chart does), with the in-cluster Service URLs and the join API's
    public URL."""
    report_port = report_port or free_port()
    return {
        "SWITCHBOARD_NAMESPACE": OPERATOR_NAMESPACE,
        "SWITCHBOARD_LISTEN_HOST": "127.0.0.1",
        "SWITCHBOARD_LISTEN_PORT": str(listen_port),
        "SWITCHBOARD_REPORT_PORT": str(report_port),
        "SWITCHBOARD_REPORT_URL": f"https://127.0.0.1:{report_port}/v1/capacity/reports",
        "SWITCHBOARD_JOIN_API_PUBLIC_URL": f"http://127.0.0.1:{listen_port}",
        # What the chart names by default; the node agents run them from `make images`.
        "SWITCHBOARD_SFU_IMAGE": image_reference("sfu"),
        "SWITCHBOARD_TURN_IMAGE": image_reference("turn"),
    }


def exit_reason(log_path: Path, lines: int = EXIT_REASON_LINES) -> str:
    """Why an operator process ended, as its log says last: its last warnings and errors
    (it logs JSON lines) and the exception line of a traceback, oldest first, joined by
    ' | '; '' if the log's tail names no problem. A stack whose workdir is temporary keeps
    this much of a lost lease or a crash in the log that outlives it."""
    try:
        with log_path.open("rb") as log_file:
            start = max(0, log_path.stat().st_size - LOG_TAIL_BYTES)
            log_file.seek(start)
            tail = log_file.read().decode(errors="replace").splitlines()
    except OSError:
        return ""
    if start:
        tail = tail[1:]  # begins inside a line
    problems: list[str] = []
    for line in reversed(tail):
        problem = _problem(line)
        if problem:
            problems.append(problem[:300])
            if len(problems) == lines:
                break
    return " | ".join(reversed(problems))


def _problem(line: str) -> str | None:
    """A log line's problem: the message of a warning or error, or a line of plain text
    that is not part of a traceback's frames (the exception itself)."""
    if not line.strip() or line[0].isspace() or line.startswith("Traceback "):
        return None
    try:
        record = json.loads(line)
    except ValueError:
        return line
    if isinstance(record, dict) and str(record.get("level", "")).lower() in PROBLEM_LEVELS:
        return str(record.get("message", ""))
    return None


class KubectlRunner(Protocol):
    def kubectl(self, *args: str, check: bool = True, input: str | None = None) -> object: ...


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def grant_operator_rbac(
    cluster: KubectlRunner,
    user: str = OPERATOR_USER,
    region_namespaces: Sequence[str] = (),
    operator_namespace: str = OPERATOR_NAMESPACE,
) -> None:
    """Apply the chart's ClusterRoles and Role and bind them to the operator's
    client-certificate user as the chart binds them to its ServiceAccount: the Role in
    `operator_namespace` (created if missing), the Regions' role cluster-wide, or, with
    `region_namespaces` (the chart's regionNamespaces), in each of those alone. And the
    chart's FlowSchema, for that user: its Lease requests go to the `leader-election`
    priority level as the chart's operator's do."""
    cluster.kubectl("create", "namespace", operator_namespace, check=False)
    schema = operator_flow_schema(operator_namespace, user)
    cluster.kubectl("apply", "-f", "-", input=json.dumps(schema))
    cluster.kubectl("apply", "-f", str(OPERATOR_CLUSTER_ROLE))
    cluster.kubectl("apply", "-f", str(OPERATOR_REGIONS_ROLE))
    cluster.kubectl("apply", "-n", operator_namespace, "-f", str(OPERATOR_ROLE))
    subjects = [{"kind": "User", "name": user, "apiGroup": "rbac.authorization.k8s.io"}]

    def bind(role_file: Path, namespace: str | None) -> None:
        role = yaml.safe_load(role_file.read_text())
        metadata: dict[str, str] = {"name": f"{role['metadata']['name']}-{user}"}
        if namespace is not None:
            metadata["namespace"] = namespace
        binding = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding" if namespace is None else "RoleBinding",
            "metadata": metadata,
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": role["kind"],
                "name": role["metadata"]["name"],
            },
            "subjects": subjects,
        }
        cluster.kubectl("apply", "-f", "-", input=json.dumps(binding))

    bind(OPERATOR_CLUSTER_ROLE, None)
    bind(OPERATOR_ROLE, operator_namespace)
    if not region_namespaces:
        bind(OPERATOR_REGIONS_ROLE, None)
    for namespace in region_namespaces:
        bind(OPERATOR_REGIONS_ROLE, namespace)


class OperatorProcess:
    """One operator process; ``start()`` returns once its liveness endpoint answers."""

    def __init__(
        self,
        kubeconfig: Path,
        workdir: Path,
        name: str = "switchboard-operator",
        env: Mapping[str, str] | None = None,
        restart_on_exit: bool = False,
    ) -> None:
        """With `restart_on_exit` the process is started again whenever it exits (after
        a back-off), as the kubelet restarts the chart's operator Pod: an operator that
        steps down from leadership exits, and must come back to stand by."""
        self.kubeconfig = kubeconfig
        self.workdir = workdir
        self.name = name
        self.env = dict(env or {})
        self.health_url = ""
        self.restarts = 0
        self.last_exit_reason = ""
        """What the log said last when the process last exited unasked (`exit_reason`)."""
        self.started_at = 0.0
        """When the process last started (monotonic)."""
        self._proc: Supervised | None = None
        self._restart = restart_on_exit
        self._keeper: threading.Thread | None = None
        self._lock = threading.Lock()
        """Held while a process is started: by `start()` or by the keeper, never both."""
        self._halted = threading.Event()
        """Set while the process must stay down (stop, or kill with `restart=False`)."""

    @property
    def http_url(self) -> str:
        """Base URL of the public HTTP server (the join API)."""
        host = self.env.get("SWITCHBOARD_LISTEN_HOST", "127.0.0.1")
        return f"http://{host}:{self.env['SWITCHBOARD_LISTEN_PORT']}"

    @property
    def report_url(self) -> str:
        """Where SFU pods report (the internal listener, HTTPS)."""
        return self.env["SWITCHBOARD_REPORT_URL"]

    @property
    def metrics_url(self) -> str:
        """The internal listener's /metrics (served by every replica)."""
        host = self.env.get("SWITCHBOARD_LISTEN_HOST", "127.0.0.1")
        return f"http://{host}:{self.env['SWITCHBOARD_METRICS_PORT']}/metrics"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def start(self, timeout: float = 60.0, wait: bool = True) -> None:
        """Start the process; with `wait`, return once it leads and serves (liveness up).
        A standby replica never gets there until the leader goes: pass wait=False."""
        self.health_url = f"http://127.0.0.1:{free_port()}/healthz"
        # Every replica serves /healthz (readiness); several processes share this host, and
        # a replica's env may be copied from another's: a port of its own at every start.
        self.env["SWITCHBOARD_HEALTH_PORT"] = str(free_port())
        self.env["SWITCHBOARD_METRICS_PORT"] = str(free_port())  # likewise, every replica
        with self._lock:
            if self._proc is not None and self._proc.running():
                # Restarted on exit meanwhile: one process of this replica at a time.
                self._proc.stop()
            self._spawn()
        if self._restart and (self._keeper is None or not self._keeper.is_alive()):
            self._keeper = threading.Thread(target=self._keep_running, daemon=True)
            self._keeper.start()
        if wait:
            self.wait_serving(timeout)

    def _spawn(self) -> None:
        executable = shutil.which("switchboard-operator")
        argv = [executable] if executable else [sys.executable, "-m", "switchboard_operator"]
        proc = self._proc = Supervised(
            self.name,
            [*argv, f"--liveness={self.health_url}"],
            self.log_path,
            env={**os.environ, **self.env, "KUBECONFIG": str(self.kubeconfig)},
        )
        proc.start()
        self.started_at = time.monotonic()
        self._halted.clear()

    def _keep_running(self) -> None:
        backoff = RESTART_BACKOFF_SECONDS[0]
        started = time.monotonic()
        while not self._halted.wait(0.2):
            proc = self._proc
            if proc is None or proc.running():
                continue
            if time.monotonic() - started > RESTART_RESET_SECONDS:
                backoff = RESTART_BACKOFF_SECONDS[0]
            self.last_exit_reason = exit_reason(self.log_path)
            log.warning(
                "operator exited name=%s code=%s restart_in=%.0fs why=%r",
                self.name,
                proc.exit_code,
                backoff,
                self.last_exit_reason,
            )
            if self._halted.wait(backoff):
                return
            with self._lock:
                proc = self._proc
                if proc is None or proc.running() or self._halted.is_set():
                    continue  # started again meanwhile (`start()`), or halted
                proc.start()
            self.started_at = time.monotonic()
            self.restarts += 1
            started = time.monotonic()
            backoff = min(backoff * 2, RESTART_BACKOFF_SECONDS[1])

    def wait_serving(self, timeout: float = 60.0) -> None:
        proc = self._proc
        assert proc is not None
        wait_until(
            lambda: proc.check_running() or _healthy(self.health_url),
            timeout,
            "the operator's liveness endpoint",
        )

    def running(self) -> bool:
        return self._proc is not None and self._proc.running()

    def stop(self) -> None:
        self._halted.set()
        if self._proc is not None:
            self._proc.stop()

    def kill(self, restart: bool = True) -> None:
        """SIGKILL: the operator gets no chance to finish what it was doing. With
        `restart_on_exit`, it comes back unless `restart` is False (then `start()` it)."""
        if not restart:
            self._halted.set()
        if self._proc is not None:
            self._proc.kill()

    @property
    def process(self) -> Supervised | None:
        """The process (to freeze and thaw it, or read its pid)."""
        return self._proc

    def log_tail(self, lines: int = 40) -> str:
        return self._proc.log_tail(lines) if self._proc else ""
