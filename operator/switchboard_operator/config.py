"""The operator's own configuration, from its environment (set by the Helm chart)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from switchboard_api import defaults, ports
from switchboard_api.contract import REPORT_PATH
from switchboard_tls import CertificateFiles

DEFAULT_NAMESPACE = "switchboard-system"
SERVICE_NAME = "switchboard-operator"
TLS_CERT_FILE_ENV = "SWITCHBOARD_TLS_CERT_FILE"
TLS_KEY_FILE_ENV = "SWITCHBOARD_TLS_KEY_FILE"


class OperatorConfigError(ValueError):
    """The environment does not describe a runnable operator (the message names the
    variable)."""


@dataclass(frozen=True)
class OperatorConfig:
    namespace: str
    """Where the operator runs and keeps its own Secrets (join-token signing keys)."""
    report_url: str
    """URL at which SFU pods reach the control plane's report receiver."""
    join_api_public_url: str
    """Base URL at which clients reach the join API; SFU pods name rooms' join endpoints
    below it when they tell participants to migrate."""
    listen_host: str
    listen_port: int
    """Where the control-plane HTTP server (reports, join API) listens."""
    metrics_port: int | None
    """The internal port serving /metrics on `listen_host` (every replica); None: off."""
    sfu_image: str
    turn_propagation_seconds: float
    """How long a TURN Secret change takes to reach every coturn pod (kubelet sync + sidecar)."""
    tls: CertificateFiles | None = None
    """Certificate and key the control-plane HTTP server serves HTTPS with (re-read when
    they change); None: plain HTTP, for a listener only reachable inside the cluster."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OperatorConfig:
        env = os.environ if env is None else env
        namespace = (
            env.get("SWITCHBOARD_NAMESPACE") or env.get("POD_NAMESPACE") or DEFAULT_NAMESPACE
        )
        port = int(env.get("SWITCHBOARD_LISTEN_PORT", ports.CONTROL_PLANE_HTTP_PORT))
        tls = _tls_files(env)
        scheme = "http" if tls is None else "https"
        service_url = f"{scheme}://{SERVICE_NAME}.{namespace}.svc:{port}"
        return cls(
            namespace=namespace,
            report_url=env.get("SWITCHBOARD_REPORT_URL", service_url + REPORT_PATH),
            # The Service only serves clients inside the cluster; the chart sets the real one.
            join_api_public_url=env.get("SWITCHBOARD_JOIN_API_PUBLIC_URL") or service_url,
            listen_host=env.get("SWITCHBOARD_LISTEN_HOST", "0.0.0.0"),
            listen_port=port,
            metrics_port=int(env.get("SWITCHBOARD_METRICS_PORT", ports.OPERATOR_INTERNAL_PORT))
            or None,
            sfu_image=env.get("SWITCHBOARD_SFU_IMAGE", defaults.SFU_IMAGE),
            turn_propagation_seconds=float(env.get("SWITCHBOARD_TURN_PROPAGATION_SECONDS", "90")),
            tls=tls,
        )


def _tls_files(env: Mapping[str, str]) -> CertificateFiles | None:
    cert, key = env.get(TLS_CERT_FILE_ENV, "").strip(), env.get(TLS_KEY_FILE_ENV, "").strip()
    if bool(cert) != bool(key):
        raise OperatorConfigError(
            f"{TLS_CERT_FILE_ENV} and {TLS_KEY_FILE_ENV} must be set together (or neither)"
        )
    return CertificateFiles(Path(cert), Path(key)) if cert else None
