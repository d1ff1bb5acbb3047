"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, controller-manager, scheduler.

Started the way envtest starts it, plus what Switchboard's tests rely on: TLS with a
generated CA, RBAC (and Node) authorization, Pod Security admission, ServiceAccount
token signing, a JSON audit log of every request, and per-user client-certificate
kubeconfigs. ``stop()`` always leaves no process and no listening port behind.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import ssl
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import yaml

from switchboard_localcluster import binaries as binaries_mod
from switchboard_localcluster.pki import CertificateAuthority, KeyPair, write_service_account_keys
from switchboard_localcluster.ports import free_port
from switchboard_localcluster.processes import Supervised, wait_until

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
SERVICE_CIDR = "10.96.0.0/24"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
ADMIN_USER = "switchboard-admin"

# Metadata for every request (who, verb, object, response code); bodies stay out so
# the log stays small and carries no secrets. Health probes are noise. Writes to Rooms keep
# their request body (a Room holds no secret): a test tells a placement write from a
# participant count by what the patch names.
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [
        {"level": "None", "nonResourceURLs": ["/healthz*", "/readyz*", "/livez*", "/version"]},
        {
            "level": "Request",
            "verbs": ["create", "update", "patch"],
            "resources": [{"group": "switchboard.dev", "resources": ["rooms", "rooms/status"]}],
        },
        {"level": "Metadata"},
    ],
}

WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


@dataclass
class AuditEvent:
    """One line of the audit log, reduced to what tests ask about."""

    user: str
    verb: str
    resource: str
    subresource: str
    namespace: str
    name: str
    code: int
    raw: dict[str, object] = field(repr=False)

    @property
    def is_write(self) -> bool:
        return self.verb in WRITE_VERBS

    @property
    def request_object(self) -> dict[str, object] | None:
        """The request body, for the requests the policy logs it for (writes to Rooms)."""
        body = self.raw.get("requestObject")
        return body if isinstance(body, dict) else None


class AuditLog:
    """Reads the API server's JSON audit log; ``mark()`` lets a test look only at what follows."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def mark(self) -> int:
        """The current end of the log, to pass to :meth:`events` as ``since``."""
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def events(self, since: int = 0) -> list[AuditEvent]:
        try:
            with self.path.open("rb") as handle:
                handle.seek(since)
                data = handle.read()
        except FileNotFoundError:
            return []
        return list(_parse_audit(data))

    def writes(self, since: int = 0, user: str | None = None) -> list[AuditEvent]:
        return [e for e in self.events(since) if e.is_write and (user is None or e.user == user)]


def _parse_audit(data: bytes) -> Iterator[AuditEvent]:
    for line in data.splitlines():
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line still being written
        ref = event.get("objectRef") or {}
        yield AuditEvent(
            user=event.get("user", {}).get("username", ""),
            verb=event.get("verb", ""),
            resource=ref.get("resource", ""),
            subresource=ref.get("subresource", ""),
            namespace=ref.get("namespace", ""),
            name=ref.get("name", ""),
            code=int(event.get("responseStatus", {}).get("code", 0)),
            raw=event,
        )


class KubectlError(subprocess.CalledProcessError):
    """kubectl failed; the message carries what it printed on stderr."""

    def __init__(self, result: subprocess.CompletedProcess[str]) -> None:
        super().__init__(result.returncode, result.args, result.stdout, result.stderr)

    def __str__(self) -> str:
        return f"{super().__str__()}\n{self.stderr.strip()}"


def write_kubeconfig(path: Path, server: str, ca: Path, user: str, pair: KeyPair) -> Path:
    """A kubeconfig for `user` with a client certificate."""
    credentials = {"client-certificate": str(pair.cert), "client-key": str(pair.key)}
    return _write_kubeconfig(path, server, ca, user, credentials)


def write_token_kubeconfig(path: Path, server: str, ca: Path, user: str, token: str) -> Path:
    """A kubeconfig for `user` with a bearer token (e.g. a ServiceAccount's)."""
    return _write_kubeconfig(path, server, ca, user, {"token": token})


def _write_kubeconfig(
    path: Path, server: str, ca: Path, user: str, credentials: dict[str, str]
) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "switchboard-local",
                "cluster": {"server": server, "certificate-authority": str(ca)},
            }
        ],
        "users": [{"name": user, "user": credentials}],
        "contexts": [
            {"name": "switchboard-local", "context": {"cluster": "switchboard-local", "user": user}}
        ],
        "current-context": "switchboard-local",
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager + kube-scheduler on loopback."""

    def __init__(
        self,
        workdir: Path | None = None,
        binaries: binaries_mod.KubeBinaries | None = None,
        controllers: bool = True,
    ) -> None:
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="switchboard-cluster-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.binaries = binaries or binaries_mod.resolve()
        self.controllers = controllers
        self.pki_dir = self.workdir / "pki"
        self.port = free_port()
        self.url = f"https://{LOOPBACK}:{self.port}"
        self.audit_log = AuditLog(self.workdir / "audit.log")
        self.kubeconfig = self.workdir / "admin.kubeconfig"
        self._ca: CertificateAuthority | None = None
        self._processes: list[Supervised] = []
        self._etcd_url = ""

    # -- lifecycle -------------------------------------------------------------------

    def start(self, timeout: float = 120.0) -> ControlPlane:
        started = time.monotonic()
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise
        log.info(
            "control plane ready url=%s seconds=%.1f workdir=%s",
            self.url,
            time.monotonic() - started,
            self.workdir,
        )
        return self

    def _start(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        ca = self._ca = CertificateAuthority(self.pki_dir)
        serving = ca.issue(
            "apiserver",
            common_name="kube-apiserver",
            dns_names=["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"],
            ip_addresses=[LOOPBACK, "10.96.0.1"],
            server=True,
        )
        sa = write_service_account_keys(self.pki_dir)
        admin = ca.issue(
            "admin", common_name=ADMIN_USER, organizations=["system:masters"], client=True
        )
        write_kubeconfig(self.kubeconfig, self.url, ca.pair.cert, ADMIN_USER, admin)

        etcd_port, etcd_peer = free_port(), free_port()
        self._etcd_url = f"http://{LOOPBACK}:{etcd_port}"
        etcd = self._spawn(
            "etcd",
            [
                str(self.binaries.etcd),
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls=http://{LOOPBACK}:{etcd_port}",
                f"--advertise-client-urls=http://{LOOPBACK}:{etcd_port}",
                f"--listen-peer-urls=http://{LOOPBACK}:{etcd_peer}",
                f"--initial-advertise-peer-urls=http://{LOOPBACK}:{etcd_peer}",
                f"--initial-cluster=default=http://{LOOPBACK}:{etcd_peer}",
                "--unsafe-no-fsync=true",  # throwaway data: durability buys nothing here
                "--log-level=warn",
            ],
        )
        wait_until(
            lambda: etcd.check_running() or _http_ok(f"http://{LOOPBACK}:{etcd_port}/health"),
            max(1.0, deadline - time.monotonic()),
            "etcd to report healthy",
        )

        policy = self.workdir / "audit-policy.yaml"
        policy.write_text(yaml.safe_dump(AUDIT_POLICY))
        apiserver = self._spawn(
            "kube-apiserver",
            [
                str(self.binaries.kube_apiserver),
                f"--etcd-servers=http://{LOOPBACK}:{etcd_port}",
                f"--bind-address={LOOPBACK}",
                f"--advertise-address={LOOPBACK}",
                f"--secure-port={self.port}",
                f"--cert-dir={self.pki_dir}",
                f"--tls-cert-file={serving.cert}",
                f"--tls-private-key-file={serving.key}",
                f"--client-ca-file={ca.pair.cert}",
                "--authorization-mode=Node,RBAC",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
                f"--service-account-key-file={sa.cert}",
                f"--service-account-signing-key-file={sa.key}",
                "--allow-privileged=true",
                # Loopback is no valid endpoint address for the `kubernetes` Service.
                "--endpoint-reconciler-type=none",
                f"--audit-policy-file={policy}",
                f"--audit-log-path={self.audit_log.path}",
                "--audit-log-format=json",
                "--audit-log-mode=blocking",
                "--audit-log-maxsize=0",
                "--profiling=false",
                "--v=1",
            ],
        )
        wait_until(
            lambda: apiserver.check_running() or self._readyz(),
            max(1.0, deadline - time.monotonic()),
            "kube-apiserver /readyz",
        )
        if self.controllers:
            self._start_controllers(ca, sa, deadline)

    def _start_controllers(self, ca: CertificateAuthority, sa: KeyPair, deadline: float) -> None:
        kcm_config = self.issue_kubeconfig(
            "system:kube-controller-manager", name="controller-manager"
        )
        sched_config = self.issue_kubeconfig("system:kube-scheduler", name="scheduler")
        kcm_port, sched_port = free_port(), free_port()
        kcm = self._spawn(
            "kube-controller-manager",
            [
                str(self.binaries.kube_controller_manager),
                f"--kubeconfig={kcm_config}",
                f"--authentication-kubeconfig={kcm_config}",
                f"--authorization-kubeconfig={kcm_config}",
                f"--bind-address={LOOPBACK}",
                f"--secure-port={kcm_port}",
                f"--service-account-private-key-file={sa.key}",
                f"--root-ca-file={ca.pair.cert}",
                "--use-service-account-credentials=true",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--leader-elect=false",
                "--v=1",
            ],
        )
        sched = self._spawn(
            "kube-scheduler",
            [
                str(self.binaries.kube_scheduler),
                f"--kubeconfig={sched_config}",
                f"--authentication-kubeconfig={sched_config}",
                f"--authorization-kubeconfig={sched_config}",
                f"--bind-address={LOOPBACK}",
                f"--secure-port={sched_port}",
                "--leader-elect=false",
                "--v=1",
            ],
        )
        for proc, port in ((kcm, kcm_port), (sched, sched_port)):
            wait_until(
                lambda proc=proc, port=port: (
                    proc.check_running()
                    or _http_ok(f"https://{LOOPBACK}:{port}/healthz", insecure=True)
                ),
                max(1.0, deadline - time.monotonic()),
                f"{proc.name} /healthz",
            )

    def stop(self) -> None:
        for proc in reversed(self._processes):
            proc.stop()
        self._processes.clear()

    def cleanup(self) -> None:
        """Stop, then remove the work directory if this object created it."""
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()

    # -- clients ---------------------------------------------------------------------

    @property
    def ca_file(self) -> Path:
        return self.pki_dir / "ca.crt"

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._processes if p.pid is not None]

    def process_logs(self) -> dict[str, Path]:
        return {p.name: p.log_path for p in self._processes}

    # -- faults (tests of what survives a control-plane outage) ----------------------

    def component(self, name: str) -> Supervised:
        """One component's process: "etcd", "kube-apiserver", "kube-controller-manager"
        or "kube-scheduler"."""
        for proc in self._processes:
            if proc.name == name:
                return proc
        raise KeyError(f"no control-plane component {name!r}")

    def kill(self, name: str) -> None:
        """SIGKILL one component (its data, certificates and port stay for `revive`)."""
        self.component(name).kill()

    def revive(self, name: str, timeout: float = 120.0) -> None:
        """Start a killed component again with the same arguments; for the API server and
        etcd, return once it serves again."""
        proc = self.component(name)
        if proc.running():
            raise RuntimeError(f"{name} is running")
        proc.start()
        if name == "kube-apiserver":
            wait_until(lambda: proc.check_running() or self._readyz(), timeout, f"{name} ready")
        elif name == "etcd":
            wait_until(
                lambda: proc.check_running() or self.etcd_healthy(), timeout, f"{name} healthy"
            )

    def etcd_healthy(self) -> bool:
        return _http_ok(f"{self._etcd_url}/health")

    def ready(self) -> bool:
        """Whether the API server answers /readyz (etcd reachable)."""
        return self._readyz()

    def issue_kubeconfig(
        self, user: str, groups: Sequence[str] = (), name: str | None = None
    ) -> Path:
        """A kubeconfig authenticating as ``user`` (in ``groups``) by client certificate."""
        if self._ca is None:
            raise RuntimeError("the control plane is not started")
        file_name = name or user.replace(":", "-")
        pair = self._ca.issue(
            f"user-{file_name}", common_name=user, organizations=groups, client=True
        )
        return write_kubeconfig(
            self.workdir / f"{file_name}.kubeconfig", self.url, self._ca.pair.cert, user, pair
        )

    def kubectl(
        self,
        *args: str,
        check: bool = True,
        input: str | None = None,
        kubeconfig: Path | None = None,
        timeout: float = 60.0,
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.binaries.kubectl), f"--kubeconfig={kubeconfig or self.kubeconfig}", *args],
            check=False,
            capture_output=True,
            text=True,
            input=input,
            timeout=timeout,
            env={**os.environ, "KUBECONFIG": str(kubeconfig or self.kubeconfig)},
        )
        if check and result.returncode != 0:
            raise KubectlError(result)
        return result

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        context.load_cert_chain(str(self.pki_dir / "admin.crt"), str(self.pki_dir / "admin.key"))
        return context

    def get(self, path: str) -> bytes:
        """GET an API path as the admin user."""
        with urllib.request.urlopen(
            self.url + path, context=self.ssl_context(), timeout=10
        ) as response:
            return bytes(response.read())

    def version(self) -> str:
        return str(json.loads(self.get("/version"))["gitVersion"])

    # -- internals -------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str]) -> Supervised:
        proc = Supervised(name, argv, self.workdir / "logs" / f"{name}.log")
        self._processes.append(proc)
        proc.start()
        return proc

    def _readyz(self) -> bool:
        try:
            return self.get("/readyz") == b"ok"
        except OSError:  # refused, reset or timed out (a frozen server): not ready
            return False


def _http_ok(url: str, insecure: bool = False) -> bool:
    context = None
    if url.startswith("https"):
        context = ssl.create_default_context()
        if insecure:
            # Only for loopback health endpoints of components we just started.
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, context=context, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False
