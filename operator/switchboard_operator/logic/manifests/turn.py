"""The Region's TURN service: coturn in a Deployment, and the Secret of shared secrets.

Secrets reach coturn through its SQLite user database, kept in a memory-backed emptyDir by
a sidecar that copies the mounted Secret's accepted secrets into it (an init container does
the first copy before coturn starts). coturn reads that table on every authentication, so
rotation phases apply to running servers and live relays survive; the secrets appear in no
argument, environment variable or log line.
"""

import base64
import binascii
from collections.abc import Mapping
from typing import Any, Final

from switchboard_api import ports
from switchboard_api.contract import SfuMounts
from switchboard_api.region import Region
from switchboard_operator.logic.manifests.context import OperatorContext
from switchboard_operator.logic.manifests.errors import ManifestError
from switchboard_operator.logic.manifests.keys import TURN_SECRET_ROTATED_AT
from switchboard_operator.logic.manifests.meta import (
    Component,
    Manifest,
    object_meta,
    selector_labels,
    turn_secret_name,
    workload_name,
)
from switchboard_operator.logic.manifests.node_placement import node_selector, zone_spread
from switchboard_operator.logic.manifests.security import (
    container_security_context,
    pod_security_context,
)
from switchboard_turn.coturn import (
    SECRET_SYNC_COMMAND,
    TLS_CERT_FILE,
    TLS_KEY_FILE,
    CoturnSettings,
    InvalidTurnSecret,
    TlsFiles,
    TurnSecrets,
    turnserver_args,
)

COTURN_CONTAINER: Final = "coturn"
SYNC_CONTAINER: Final = "secret-sync"
SYNC_INIT_CONTAINER: Final = "secret-sync-init"

USERDB_DIR: Final = "/var/lib/coturn"
USERDB_PATH: Final = f"{USERDB_DIR}/turndb"
PIDFILE_PATH: Final = "/tmp/turnserver.pid"
SECRETS_DIR: Final = SfuMounts.TURN_SECRET_DIR
TLS_DIR: Final = "/etc/coturn/tls"

POD_IP_ENV: Final = "POD_IP"

LISTENER_UDP: Final = "turn-udp"
LISTENER_TCP: Final = "turn-tcp"
LISTENER_TLS: Final = "turns-tcp"
METRICS_PORT_NAME: Final = ports.METRICS_PORT_NAME

_SECRET_FILE_MODE = 0o440
_USERDB_SIZE = "1Mi"
_TMP_SIZE = "16Mi"
_SYNC_RESOURCES = {"requests": {"cpu": "10m", "memory": "48Mi"}, "limits": {"memory": "96Mi"}}


def turn_secret(region: Region, secrets: TurnSecrets, *, rotated_at: str | None = None) -> Manifest:
    """The Secret holding the TURN shared secrets (values are inputs: this stays pure).

    `rotated_at` (RFC 3339) records when the current rotation phase began, so the
    operator can tell when the next step is due after a restart.
    """
    annotations = {TURN_SECRET_ROTATED_AT: rotated_at} if rotated_at else None
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": object_meta(
            region, turn_secret_name(region), Component.TURN, annotations=annotations
        ),
        "type": "Opaque",
        "data": {
            key: base64.b64encode(value.encode()).decode("ascii")
            for key, value in secrets.files().items()
        },
    }


def turn_secrets_from_secret(secret: Mapping[str, Any]) -> TurnSecrets:
    """Read the TURN secrets back from the Secret as the API returns it."""
    name = secret.get("metadata", {}).get("name", "the TURN Secret")
    try:
        files = {
            key: base64.b64decode(value, validate=True).decode("ascii")
            for key, value in (secret.get("data") or {}).items()
        }
        return TurnSecrets.from_files(files)
    except (InvalidTurnSecret, binascii.Error, UnicodeDecodeError) as error:
        raise ManifestError(
            "InvalidTurnSecret", f"Secret {name}", f"cannot be used: {error}"
        ) from None


def coturn_settings(region: Region) -> CoturnSettings:
    """The Region's TURN spec as turnserver settings."""
    turn = region.spec.turn
    tls = (
        TlsFiles(
            port=turn.tls_port,
            cert_path=f"{TLS_DIR}/{TLS_CERT_FILE}",
            key_path=f"{TLS_DIR}/{TLS_KEY_FILE}",
        )
        if turn.tls_secret_name
        else None
    )
    return CoturnSettings(
        realm=turn.realm,
        listening_port=turn.listening_port,
        relay_port_min=turn.relay_port_range.min,
        relay_port_max=turn.relay_port_range.max,
        userdb_path=USERDB_PATH,
        pidfile_path=PIDFILE_PATH,
        tls=tls,
        allowed_peer_cidrs=tuple(turn.allowed_peer_cidrs or ()),
        prometheus=turn.prometheus_exporter,
        listening_ip=f"$({POD_IP_ENV})",
    )


def turn_listener_ports(region: Region) -> list[dict[str, Any]]:
    """The container ports clients connect to (what the TURN Service exposes)."""
    turn = region.spec.turn
    listeners = [
        {"name": LISTENER_UDP, "containerPort": turn.listening_port, "protocol": "UDP"},
        {"name": LISTENER_TCP, "containerPort": turn.listening_port, "protocol": "TCP"},
    ]
    if turn.tls_secret_name:
        listeners.append({"name": LISTENER_TLS, "containerPort": turn.tls_port, "protocol": "TCP"})
    return listeners


def turn_deployment(region: Region, ctx: OperatorContext) -> Manifest:
    """coturn Deployment: surge one pod at a time, never fewer ready than desired."""
    turn = region.spec.turn
    settings = coturn_settings(region)
    annotations = None
    if turn.prometheus_exporter:
        annotations = {
            "prometheus.io/scrape": "true",
            "prometheus.io/port": str(ports.TURN_PROMETHEUS_PORT),
            "prometheus.io/path": "/metrics",
        }
    template_meta = object_meta(region, None, Component.TURN, annotations=annotations)
    # Pod templates carry no namespace or owner: the pods get them from their ReplicaSet.
    del template_meta["namespace"], template_meta["ownerReferences"]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": object_meta(region, workload_name(region, Component.TURN), Component.TURN),
        "spec": {
            "replicas": turn.replicas,
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": selector_labels(region, Component.TURN)},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": {
                "metadata": template_meta,
                "spec": {
                    # With TLS the sidecar signals coturn to reload a renewed certificate.
                    **({"shareProcessNamespace": True} if turn.tls_secret_name else {}),
                    "serviceAccountName": workload_name(region, Component.TURN),
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": pod_security_context(
                        unprivileged_port_start=settings.lowest_port
                    ),
                    "nodeSelector": node_selector(region),
                    "topologySpreadConstraints": zone_spread(region, Component.TURN),
                    "initContainers": [_sync_container(region, ctx, once=True)],
                    "containers": [
                        _coturn_container(region, ctx, settings),
                        _sync_container(region, ctx, once=False),
                    ],
                    "volumes": _volumes(region),
                },
            },
        },
    }


def _turn_image(ctx: OperatorContext) -> str:
    if not ctx.turn_image.strip():
        raise ManifestError(
            "ImageUnset",
            "spec.turn",
            "the operator has no TURN image configured (the chart's image values): "
            "TURN cannot run; disable it with spec.turn.enabled=false",
        )
    return ctx.turn_image.strip()


def coturn_image(region: Region, ctx: OperatorContext) -> str:
    """The Region's coturn image, or the operator's TURN image; refuses an exporter the
    image cannot serve (Debian's coturn has no `--prometheus`)."""
    turn = region.spec.turn
    custom = (turn.image or "").strip()
    image = custom or _turn_image(ctx)
    if turn.prometheus_exporter and not custom and not ctx.turn_image_prometheus:
        raise ManifestError(
            "PrometheusExporterUnsupported",
            "spec.turn.prometheusExporter",
            f"the TURN image {image} (Debian's coturn) has no Prometheus exporter: set "
            "spec.turn.image to a coturn built with one, or prometheusExporter to false",
        )
    return image


def _coturn_container(
    region: Region, ctx: OperatorContext, settings: CoturnSettings
) -> dict[str, Any]:
    turn = region.spec.turn
    container_ports = turn_listener_ports(region)
    if turn.prometheus_exporter:
        container_ports.append(
            {
                "name": METRICS_PORT_NAME,
                "containerPort": ports.TURN_PROMETHEUS_PORT,
                "protocol": "TCP",
            }
        )
    mounts = [
        {"name": "userdb", "mountPath": USERDB_DIR},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    if turn.tls_secret_name:
        mounts.append({"name": "tls", "mountPath": TLS_DIR, "readOnly": True})
    container: dict[str, Any] = {
        "name": COTURN_CONTAINER,
        "image": coturn_image(region, ctx),
        "imagePullPolicy": ctx.pull_policy(turn.image_pull_policy),
        # No command: the image's entrypoint runs turnserver under an init that passes
        # SIGTERM on (turnserver handles none, and a container's process 1 ignores it).
        "args": turnserver_args(settings),
        "env": [{"name": POD_IP_ENV, "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
        "ports": container_ports,
        "readinessProbe": {
            "tcpSocket": {"port": LISTENER_TCP},
            "periodSeconds": 2,
            "failureThreshold": 1,
        },
        "livenessProbe": {
            "tcpSocket": {"port": LISTENER_TCP},
            "periodSeconds": 10,
            "failureThreshold": 3,
        },
        "securityContext": container_security_context(),
        "volumeMounts": mounts,
    }
    if turn.resources is not None:
        container["resources"] = turn.resources.model_dump(exclude_none=True)
    return container


def _sync_container(region: Region, ctx: OperatorContext, *, once: bool) -> dict[str, Any]:
    args = [
        f"--secrets-dir={SECRETS_DIR}",
        f"--userdb={USERDB_PATH}",
        f"--realm={region.spec.turn.realm}",
    ]
    mounts = [
        {"name": "turn-secret", "mountPath": SECRETS_DIR, "readOnly": True},
        {"name": "userdb", "mountPath": USERDB_DIR},
    ]
    if once:
        args.append("--once")
    elif region.spec.turn.tls_secret_name:
        args += [f"--tls-dir={TLS_DIR}", f"--pidfile={PIDFILE_PATH}"]
        mounts += [
            {"name": "tls", "mountPath": TLS_DIR, "readOnly": True},
            # coturn's pidfile, to signal it.
            {"name": "tmp", "mountPath": "/tmp", "readOnly": True},
        ]
    return {
        "name": SYNC_INIT_CONTAINER if once else SYNC_CONTAINER,
        "image": _turn_image(ctx),
        "imagePullPolicy": ctx.image_pull_policy,
        "command": [SECRET_SYNC_COMMAND],
        "args": args,
        "resources": {kind: dict(values) for kind, values in _SYNC_RESOURCES.items()},
        "securityContext": container_security_context(),
        "volumeMounts": mounts,
    }


def _volumes(region: Region) -> list[dict[str, Any]]:
    volumes: list[dict[str, Any]] = [
        {
            "name": "turn-secret",
            "secret": {"secretName": turn_secret_name(region), "defaultMode": _SECRET_FILE_MODE},
        },
        # Memory-backed: the secrets never touch the node's disk.
        {"name": "userdb", "emptyDir": {"medium": "Memory", "sizeLimit": _USERDB_SIZE}},
        {"name": "tmp", "emptyDir": {"sizeLimit": _TMP_SIZE}},
    ]
    tls_secret = region.spec.turn.tls_secret_name
    if tls_secret:
        volumes.append(
            {"name": "tls", "secret": {"secretName": tls_secret, "defaultMode": _SECRET_FILE_MODE}}
        )
    return volumes
