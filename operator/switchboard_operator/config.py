"""The operator's own configuration, from its environment (set by the Helm chart)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from switchboard_api import ports
from switchboard_api.contract import REPORT_PATH
from switchboard_operator.logic.capacity import RESERVATION_HOLD_SECONDS, CapacityModel
from switchboard_operator.logic.region_namespaces import parse_region_namespaces
from switchboard_tls import CertificateFiles

DEFAULT_NAMESPACE = "switchboard-system"
SERVICE_NAME = "switchboard-operator"
REPORT_SERVICE_NAME = "switchboard-operator-reports"
"""The internal Service SFU pods report to (the chart's, when its names are not overridden)."""
TLS_CERT_FILE_ENV = "SWITCHBOARD_TLS_CERT_FILE"
TLS_KEY_FILE_ENV = "SWITCHBOARD_TLS_KEY_FILE"
REGION_NAMESPACES_ENV = "SWITCHBOARD_REGION_NAMESPACES"
RESERVATION_HOLD_ENV = "SWITCHBOARD_RESERVATION_HOLD_SECONDS"


class OperatorConfigError(ValueError):
    """The environment does not describe a runnable operator (the message names the
    variable)."""


@dataclass(frozen=True)
class OperatorConfig:
    namespace: str
    """Where the operator runs and keeps its own Secrets (join-token signing keys)."""
    report_url: str
    """URL at which SFU pods reach the control plane's report receiver (https: the
    receiver's certificate names its host and chains to the CA SFU pods are given)."""
    join_api_public_url: str
    """Base URL at which clients reach the join API; SFU pods name rooms' join endpoints
    below it when they tell participants to migrate."""
    listen_host: str
    listen_port: int
    """Where the public HTTP server (the join API) listens."""
    report_port: int
    """Where the internal report receiver listens (HTTPS, on `listen_host`)."""
    health_port: int
    """Where every replica serves /healthz (on listen_host)."""
    service_account: str | None
    """The operator's ServiceAccount (the chart's): it owns what the operator creates in
    its namespace, so an uninstall removes it. None outside a cluster."""
    metrics_port: int | None
    """The internal port serving /metrics on `listen_host` (every replica); None: off."""
    pod_name: str | None
    """This replica's pod (POD_NAME): the leader labels it. None outside a cluster."""
    sfu_image: str
    """The SFU image of Regions that name none (the chart's); empty: they must name one."""
    turn_image: str
    """coturn and the TURN secret-sync sidecar (the chart's); empty: TURN cannot run."""
    image_pull_policy: str
    turn_image_prometheus: bool
    """Whether the TURN image's coturn has a Prometheus exporter (Debian's has none)."""
    turn_propagation_seconds: float
    """How long a TURN Secret change takes to reach every coturn pod (kubelet sync + sidecar)."""
    region_namespaces: frozenset[str] = frozenset()
    """The only namespaces Regions may use (the chart's regionNamespaces, where its RBAC
    grants the writes); empty: every namespace."""
    reservation_hold_seconds: float = RESERVATION_HOLD_SECONDS
    """How long after placement a room counts at least its full reservation (CAPACITY.md,
    "How reservation and measurement combine"); the default suits real clients."""
    tls: CertificateFiles | None = None
    """Certificate and key the join API serves HTTPS with (re-read when they change);
    None: plain HTTP (TLS ends at the ingress)."""

    def capacity_model(self) -> CapacityModel:
        """The capacity model placement uses, with the settings this config makes."""
        return CapacityModel(reservation_hold_seconds=self.reservation_hold_seconds)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OperatorConfig:
        env = os.environ if env is None else env
        namespace = (
            env.get("SWITCHBOARD_NAMESPACE") or env.get("POD_NAMESPACE") or DEFAULT_NAMESPACE
        )
        port = int(env.get("SWITCHBOARD_LISTEN_PORT", ports.CONTROL_PLANE_HTTP_PORT))
        report_port = int(env.get("SWITCHBOARD_REPORT_PORT", ports.OPERATOR_REPORT_PORT))
        tls = _tls_files(env)
        scheme = "http" if tls is None else "https"
        service_url = f"{scheme}://{SERVICE_NAME}.{namespace}.svc:{port}"
        report_service = f"https://{REPORT_SERVICE_NAME}.{namespace}.svc:{report_port}"
        report_url = env.get("SWITCHBOARD_REPORT_URL") or report_service + REPORT_PATH
        if not report_url.startswith("https://"):
            raise OperatorConfigError(
                f"SWITCHBOARD_REPORT_URL must be an https URL (the report receiver serves "
                f"HTTPS only), got {report_url!r}"
            )
        return cls(
            namespace=namespace,
            report_url=report_url,
            # The Service only serves clients inside the cluster; the chart sets the real one.
            join_api_public_url=env.get("SWITCHBOARD_JOIN_API_PUBLIC_URL") or service_url,
            listen_host=env.get("SWITCHBOARD_LISTEN_HOST", "0.0.0.0"),
            listen_port=port,
            report_port=report_port,
            health_port=int(env.get("SWITCHBOARD_HEALTH_PORT", ports.OPERATOR_HEALTH_PORT)),
            metrics_port=int(env.get("SWITCHBOARD_METRICS_PORT", ports.OPERATOR_INTERNAL_PORT))
            or None,
            pod_name=env.get("POD_NAME") or None,
            service_account=env.get("SWITCHBOARD_SERVICE_ACCOUNT") or None,
            sfu_image=env.get("SWITCHBOARD_SFU_IMAGE", ""),
            turn_image=env.get("SWITCHBOARD_TURN_IMAGE", ""),
            image_pull_policy=env.get("SWITCHBOARD_IMAGE_PULL_POLICY") or "IfNotPresent",
            turn_image_prometheus=env.get("SWITCHBOARD_TURN_IMAGE_PROMETHEUS", "false").lower()
            == "true",
            turn_propagation_seconds=float(env.get("SWITCHBOARD_TURN_PROPAGATION_SECONDS", "90")),
            region_namespaces=parse_region_namespaces(env.get(REGION_NAMESPACES_ENV, "")),
            reservation_hold_seconds=_reservation_hold(env),
            tls=tls,
        )


def _tls_files(env: Mapping[str, str]) -> CertificateFiles | None:
    cert, key = env.get(TLS_CERT_FILE_ENV, "").strip(), env.get(TLS_KEY_FILE_ENV, "").strip()
    if bool(cert) != bool(key):
        raise OperatorConfigError(
            f"{TLS_CERT_FILE_ENV} and {TLS_KEY_FILE_ENV} must be set together (or neither)"
        )
    return CertificateFiles(Path(cert), Path(key)) if cert else None


def _reservation_hold(env: Mapping[str, str]) -> float:
    raw = env.get(RESERVATION_HOLD_ENV, "").strip()
    if not raw:
        return RESERVATION_HOLD_SECONDS
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:  # also NaN
        raise OperatorConfigError(
            f"{RESERVATION_HOLD_ENV} must be a number of seconds >= 0, got {raw!r}"
        )
    return seconds
