"""The SFU pod: the operator creates and deletes each one itself (the Agones model), so
scale-down and roll-outs remove the pods it chooses, never merely the newest."""

import hashlib
import json
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Any, Final

from switchboard_api import ports
from switchboard_api.contract import REPORT_TOKEN_AUDIENCE, SfuEnv, SfuMounts
from switchboard_api.region import MediaExposure, Region
from switchboard_operator.logic.manifests.context import OperatorContext
from switchboard_operator.logic.manifests.errors import ManifestError
from switchboard_operator.logic.manifests.keys import POD_TEMPLATE_HASH
from switchboard_operator.logic.manifests.meta import (
    Component,
    Manifest,
    object_meta,
    region_name,
    sfu_headless_service_name,
    sfu_pod_name,
    turn_secret_name,
    workload_name,
)
from switchboard_operator.logic.manifests.node_placement import (
    node_selector,
    one_per_node,
    zone_spread,
)
from switchboard_operator.logic.manifests.security import (
    container_security_context,
    pod_security_context,
)
from switchboard_turn.coturn import MINTED_SECRET_KEY

CONTAINER_NAME: Final = "sfu"
COMMAND: Final = "switchboard-sfu"
SIGNALLING_PORT_NAME: Final = "signalling"
READINESS_PATH: Final = "/readyz"
"""Ready means "accepts new rooms": a draining pod turns unready but keeps its rooms."""
LIVENESS_PATH: Final = "/healthz"
METRICS_PATH: Final = "/metrics"

STARTUP_PROBE_PERIOD_SECONDS: Final = 1
STARTUP_PROBE_FAILURES: Final = 60
READINESS_PROBE_PERIOD_SECONDS: Final = 2
READINESS_PROBE_FAILURES: Final = 1
NOT_READY_GRACE_SECONDS: Final = (
    STARTUP_PROBE_PERIOD_SECONDS * STARTUP_PROBE_FAILURES
    + READINESS_PROBE_PERIOD_SECONDS * READINESS_PROBE_FAILURES
)
"""The longest a healthy SFU container stays not Ready once started: the startup probe's
whole budget, then one readiness period. One never Ready by then is not capacity."""

DRAIN_MARGIN_SECONDS: Final = 30
"""Termination grace beyond the drain grace: time to close participants and exit."""
TEMPLATE_HASH_LENGTH: Final = 16

_TMP_SIZE = "64Mi"
_SECRET_FILE_MODE = 0o440


def sfu_pod(
    region: Region, ctx: OperatorContext, suffix: str, *, turn_uris: Sequence[str] = ()
) -> Manifest:
    """SFU pod `<region>-sfu-<suffix>`, labelled with the hash of the template it follows.

    `turn_uris` are the Region's externally usable TURN URIs (see `urls.turn_uris`); they
    are part of the template, so changing them rolls the pods.
    """
    metadata, spec = _template(region, ctx, turn_uris)
    name = sfu_pod_name(region, suffix)
    metadata["labels"][POD_TEMPLATE_HASH] = _hash(metadata, spec)
    metadata = {"name": name, **metadata}
    # hostname + subdomain give the pod the DNS name <pod>.<headless service>.<namespace>.svc.
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {"hostname": name, **spec},
    }


def pod_template_hash(
    region: Region, ctx: OperatorContext, *, turn_uris: Sequence[str] = ()
) -> str:
    """Hash of everything an SFU pod is built from except its name: a pod labelled with a
    different hash is out of date (new image, env, resources...) and must be rolled."""
    metadata, spec = _template(region, ctx, turn_uris)
    return _hash(metadata, spec)


def sfu_image(region: Region, ctx: OperatorContext) -> str:
    image = (region.spec.sfu.image or "").strip() or ctx.default_sfu_image.strip()
    if not image:
        raise ManifestError(
            "ImageUnset",
            "spec.sfu.image",
            "no SFU image: set spec.sfu.image (the operator has no default configured)",
        )
    return image


def termination_grace_seconds(region: Region) -> int:
    return region.spec.sfu.autoscaling.drain_grace_seconds + DRAIN_MARGIN_SECONDS


def _hash(metadata: dict[str, Any], spec: dict[str, Any]) -> str:
    hashed_labels = {k: v for k, v in metadata["labels"].items() if k != POD_TEMPLATE_HASH}
    canonical = json.dumps(
        {"labels": hashed_labels, "annotations": metadata.get("annotations", {}), "spec": spec},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:TEMPLATE_HASH_LENGTH]


def _template(
    region: Region, ctx: OperatorContext, turn_uris: Sequence[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(metadata without name, spec without hostname) shared by all of the Region's pods."""
    sfu = region.spec.sfu
    host_network = sfu.media_exposure == MediaExposure.HOST_NETWORK
    # Metrics are served on their own internal port, in plain HTTP (reached from inside the
    # cluster only; the NetworkPolicy admits nothing else), even when signalling uses TLS.
    annotations = {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(ports.SFU_METRICS_PORT),
        "prometheus.io/path": METRICS_PATH,
    }
    metadata = object_meta(region, None, Component.SFU, annotations=annotations)
    spec: dict[str, Any] = {
        "subdomain": sfu_headless_service_name(region),
        "serviceAccountName": workload_name(region, Component.SFU),
        # The projected report token is the only credential the SFU needs.
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        # A crashed SFU has lost its rooms: a replacement pod (new name and UID) is a new
        # incarnation the control plane can tell apart, a restarted container is not.
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": termination_grace_seconds(region),
        "securityContext": pod_security_context(),
        "nodeSelector": node_selector(region),
        "topologySpreadConstraints": zone_spread(region, Component.SFU),
        "containers": [_container(region, ctx, turn_uris, host_network)],
        "volumes": _volumes(region, ctx),
    }
    if sfu.priority_class_name:
        spec["priorityClassName"] = sfu.priority_class_name
    if host_network:
        spec["hostNetwork"] = True
        spec["dnsPolicy"] = "ClusterFirstWithHostNet"
        # One SFU per node: it announces the node's address and owns the node's ports.
        spec["affinity"] = one_per_node(region, Component.SFU)
    return metadata, spec


def _container(
    region: Region, ctx: OperatorContext, turn_uris: Sequence[str], host_network: bool
) -> dict[str, Any]:
    sfu = region.spec.sfu
    port: dict[str, Any] = {
        "name": SIGNALLING_PORT_NAME,
        "containerPort": ports.SFU_SIGNALLING_PORT,
        "protocol": "TCP",
    }
    peer: dict[str, Any] = {"name": "peer", "containerPort": ports.SFU_PEER_PORT, "protocol": "TCP"}
    if host_network:
        port["hostPort"] = ports.SFU_SIGNALLING_PORT
        peer["hostPort"] = ports.SFU_PEER_PORT
    # Internal: scraped in the cluster (PodMonitor selects the name), never a hostPort.
    metrics_port = {
        "name": ports.METRICS_PORT_NAME,
        "containerPort": ports.SFU_METRICS_PORT,
        "protocol": "TCP",
    }
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": sfu_image(region, ctx),
        "imagePullPolicy": ctx.pull_policy(sfu.image_pull_policy),
        "command": [COMMAND],
        "env": _env(region, ctx, turn_uris, host_network),
        "ports": [port, peer, metrics_port],
        # Draining starts on SIGTERM (see docs): no preStop hook, so the whole grace
        # period is the SFU's, and the image needs no shell.
        "startupProbe": _http_probe(
            region,
            LIVENESS_PATH,
            period=STARTUP_PROBE_PERIOD_SECONDS,
            failures=STARTUP_PROBE_FAILURES,
        ),
        "readinessProbe": _http_probe(
            region,
            READINESS_PATH,
            period=READINESS_PROBE_PERIOD_SECONDS,
            failures=READINESS_PROBE_FAILURES,
        ),
        "livenessProbe": _http_probe(region, LIVENESS_PATH, period=10, failures=3, timeout=3),
        "securityContext": container_security_context(),
        "volumeMounts": _volume_mounts(region, ctx),
    }
    if sfu.resources is not None:
        container["resources"] = sfu.resources.model_dump(exclude_none=True)
    return container


def _http_probe(
    region: Region, path: str, *, period: int, failures: int, timeout: int = 1
) -> dict[str, Any]:
    # The kubelet does not verify a probe's certificate: HTTPS only because nothing else
    # is served.
    scheme = "HTTPS" if region.spec.sfu.tls_secret_name else "HTTP"
    return {
        "httpGet": {"path": path, "port": SIGNALLING_PORT_NAME, "scheme": scheme},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failures,
    }


def _field_env(name: SfuEnv, field_path: str) -> dict[str, Any]:
    return {"name": name.value, "valueFrom": {"fieldRef": {"fieldPath": field_path}}}


def _env(
    region: Region, ctx: OperatorContext, turn_uris: Sequence[str], host_network: bool
) -> list[dict[str, Any]]:
    sfu = region.spec.sfu
    # The SFU binds its pod IP, never 0.0.0.0: with hostNetwork the pod IP is the node IP,
    # and binding it keeps the SFU off the node's other interfaces; with pod addresses it is
    # where probes, Services and clients reach the pod anyway.
    listen_host = _field_env(SfuEnv.LISTEN_HOST, "status.podIP")
    env = [
        {"name": SfuEnv.REGION.value, "value": region_name(region)},
        _field_env(SfuEnv.POD_NAME, "metadata.name"),
        _field_env(SfuEnv.POD_NAMESPACE, "metadata.namespace"),
        _field_env(SfuEnv.POD_UID, "metadata.uid"),
        _field_env(SfuEnv.POD_IP, "status.podIP"),
        _field_env(SfuEnv.ANNOUNCE_ADDRESS, "status.hostIP" if host_network else "status.podIP"),
        listen_host,
        {"name": SfuEnv.SIGNALLING_PORT.value, "value": str(ports.SFU_SIGNALLING_PORT)},
        {"name": SfuEnv.PEER_PORT.value, "value": str(ports.SFU_PEER_PORT)},
        {"name": SfuEnv.METRICS_PORT.value, "value": str(ports.SFU_METRICS_PORT)},
        {"name": SfuEnv.CAPACITY.value, "value": repr(float(sfu.capacity_per_pod))},
        {"name": SfuEnv.REPORT_URL.value, "value": ctx.report_url},
        {
            "name": SfuEnv.REPORT_INTERVAL_SECONDS.value,
            "value": repr(float(ctx.report_interval_seconds)),
        },
        {"name": SfuEnv.REPORT_TOKEN_FILE.value, "value": SfuMounts.REPORT_TOKEN_FILE},
        {"name": SfuEnv.JOIN_KEYS_DIR.value, "value": SfuMounts.JOIN_KEYS_DIR},
        {
            "name": SfuEnv.DRAIN_GRACE_SECONDS.value,
            "value": str(sfu.autoscaling.drain_grace_seconds),
        },
    ]
    if ctx.join_api_url is not None:
        env.append({"name": SfuEnv.JOIN_API_PUBLIC_URL.value, "value": ctx.join_api_url})
    if ctx.report_ca_mounted:
        env.append({"name": SfuEnv.REPORT_CA_FILE.value, "value": SfuMounts.REPORT_CA_FILE})
    if sfu.tls_secret_name:
        env += [
            {"name": SfuEnv.TLS_CERT_FILE.value, "value": SfuMounts.TLS_CERT_FILE},
            {"name": SfuEnv.TLS_KEY_FILE.value, "value": SfuMounts.TLS_KEY_FILE},
        ]
    turn = region.spec.turn
    if turn.enabled:
        if turn_uris:
            env.append({"name": SfuEnv.TURN_URIS.value, "value": ",".join(turn_uris)})
        env += [
            {"name": SfuEnv.TURN_SECRET_FILE.value, "value": SfuMounts.TURN_SECRET_FILE},
            {
                "name": SfuEnv.TURN_CREDENTIAL_TTL_SECONDS.value,
                "value": str(turn.credential_ttl_seconds),
            },
        ]
    return env


def _volumes(region: Region, ctx: OperatorContext) -> list[dict[str, Any]]:
    volumes: list[dict[str, Any]] = [
        {
            "name": "report-token",
            "projected": {
                "sources": [
                    {
                        "serviceAccountToken": {
                            "audience": REPORT_TOKEN_AUDIENCE,
                            "expirationSeconds": ctx.report_token_expiration_seconds,
                            "path": PurePosixPath(SfuMounts.REPORT_TOKEN_FILE).name,
                        }
                    }
                ]
            },
        },
        {"name": "join-keys", "configMap": {"name": ctx.join_public_keys_configmap}},
        {"name": "tmp", "emptyDir": {"sizeLimit": _TMP_SIZE}},
    ]
    if ctx.report_ca_configmap is not None and ctx.report_ca_mounted:
        volumes.append({"name": "report-ca", "configMap": {"name": ctx.report_ca_configmap}})
    if region.spec.sfu.tls_secret_name:
        volumes.append(
            {
                "name": "tls",
                "secret": {
                    "secretName": region.spec.sfu.tls_secret_name,
                    "defaultMode": _SECRET_FILE_MODE,
                },
            }
        )
    if region.spec.turn.enabled:
        volumes.append(
            {
                "name": "turn-secret",
                "secret": {
                    "secretName": turn_secret_name(region),
                    # Only the minting secret: the SFU has no use for the others.
                    "items": [
                        {
                            "key": MINTED_SECRET_KEY,
                            "path": PurePosixPath(SfuMounts.TURN_SECRET_FILE).name,
                        }
                    ],
                    "defaultMode": _SECRET_FILE_MODE,
                },
            }
        )
    return volumes


def _volume_mounts(region: Region, ctx: OperatorContext) -> list[dict[str, Any]]:
    mounts = [
        {"name": "report-token", "mountPath": SfuMounts.REPORT_TOKEN_DIR, "readOnly": True},
        {"name": "join-keys", "mountPath": SfuMounts.JOIN_KEYS_DIR, "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    if ctx.report_ca_mounted:
        # The whole ConfigMap, never a subPath: a republished CA reaches the pod.
        mounts.append({"name": "report-ca", "mountPath": SfuMounts.REPORT_CA_DIR, "readOnly": True})
    if region.spec.sfu.tls_secret_name:
        # The whole Secret, never a subPath: only then do the kubelet's updates reach it.
        mounts.append({"name": "tls", "mountPath": SfuMounts.TLS_DIR, "readOnly": True})
    if region.spec.turn.enabled:
        mounts.append(
            {"name": "turn-secret", "mountPath": SfuMounts.TURN_SECRET_DIR, "readOnly": True}
        )
    return mounts
