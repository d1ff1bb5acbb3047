"""End to end: image roll-outs, operator crashes and broken references, under the node agent."""

from __future__ import annotations

import base64
import datetime as dt
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fixtures.cluster import apply, is_ready
from fixtures.cluster import get_json as get
from fixtures.waiting import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.nodeagent]


def region(
    name: str, namespace: str, *, image: str | None = None, turn: dict | None = None, **sfu
) -> dict:
    sfu_spec = {"minReplicas": 2, "maxReplicas": 4, **sfu}
    if image:
        sfu_spec["image"] = image
    return {
        "apiVersion": "switchboard.dev/v1alpha1",
        "kind": "Region",
        "metadata": {"name": name},
        "spec": {
            "namespace": namespace,
            "topologyRegion": "eu-west",
            "location": {"latitude": 50.0, "longitude": 8.0},
            "sfu": sfu_spec,
            "turn": turn or {"enabled": False},
        },
    }


def condition(cluster, name: str, type_: str) -> dict:
    conditions = (get(cluster, "region", name).get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == type_), {})


def live_sfu_pods(cluster, namespace: str) -> list[dict]:
    items = get(cluster, "pods", "-n", namespace, "-l", "app.kubernetes.io/component=sfu")["items"]
    return [
        p
        for p in items
        if not p["metadata"].get("deletionTimestamp")
        and (p.get("status") or {}).get("phase") not in ("Failed", "Succeeded")
    ]


def restricted(cluster, namespace: str) -> None:
    cluster.create_namespace(namespace, {"pod-security.kubernetes.io/enforce": "restricted"})


def roomless(spec: dict) -> dict:
    """A Region no Room can be placed in. Rooms other tests leave behind may move onto any
    Region; a pod hosting rooms drains before removal and its replacement starts meanwhile
    (by design), which the surge bound asserted below does not allow for."""
    spec["spec"]["namespaceSelector"] = {"matchLabels": {"switchboard.dev/e2e": "no-rooms"}}
    return spec


def test_image_change_rolls_pods_one_surge_at_a_time(operator, node_agent, crds_installed):
    cluster, ns = crds_installed, "e2e-roll"
    restricted(cluster, ns)
    apply(cluster, roomless(region("roll-eu", ns)))
    wait_for(lambda: condition(cluster, "roll-eu", "Ready").get("status") == "True", 120, "Ready")
    old = {p["metadata"]["name"] for p in live_sfu_pods(cluster, ns)}
    assert len(old) == 2

    apply(cluster, roomless(region("roll-eu", ns, image="switchboard/sfu:0.1.0-rolled")))
    most = 0

    def rolled() -> bool:
        nonlocal most
        pods = live_sfu_pods(cluster, ns)
        most = max(most, len(pods))
        names = {p["metadata"]["name"] for p in pods}
        images = {p["spec"]["containers"][0]["image"] for p in pods}
        return (
            not names & old
            and len(pods) == 2
            and all(is_ready(p) for p in pods)
            and images == {"switchboard/sfu:0.1.0-rolled"}
        )

    wait_for(rolled, 180, "every SFU pod replaced by one on the new image")
    assert most <= 3, f"the roll ran {most} pods at once (desired 2, surge 1)"
    wait_for(lambda: condition(cluster, "roll-eu", "Ready").get("status") == "True", 60, "Ready")
    cluster.kubectl("delete", "region", "roll-eu", "--wait=false")


def test_operator_killed_mid_reconcile_converges_without_duplicates(
    operator, node_agent, crds_installed
):
    cluster, ns = crds_installed, "e2e-crash"
    restricted(cluster, ns)
    apply(cluster, region("crash-eu", ns, minReplicas=3))
    # Kill it as soon as it has started creating the Region's objects.
    wait_for(lambda: live_sfu_pods(cluster, ns), 60, "the first SFU pod")
    operator.kill()
    operator.start()
    wait_for(
        lambda: condition(cluster, "crash-eu", "Ready").get("status") == "True",
        120,
        "Ready after the restart",
    )
    wait_for(lambda: len(live_sfu_pods(cluster, ns)) == 3, 60, "3 live SFU pods")
    sfu = get(cluster, "region", "crash-eu")["status"]["sfu"]
    # Every live pod is one the operator trusts, and no reservation is left unsettled.
    assert sorted(p["name"] for p in sfu["pods"]) == _names(live_sfu_pods(cluster, ns))
    assert "reservedPods" not in sfu
    services = get(cluster, "services", "-n", ns)["items"]
    assert sorted(s["metadata"]["name"] for s in services) == ["crash-eu-sfu", "crash-eu-sfu-pods"]
    cluster.kubectl("delete", "region", "crash-eu", "--wait=false")


def _names(pods: list[dict]) -> list[str]:
    return sorted(p["metadata"]["name"] for p in pods)


def _copy_of(pod: dict, name: str) -> dict:
    """A pod like `pod` (labels, ownerReferences, ServiceAccount, spec) under `name`."""
    meta = pod["metadata"]
    spec = {k: v for k, v in pod["spec"].items() if k != "nodeName"}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": meta["namespace"],
            "labels": meta.get("labels") or {},
            "ownerReferences": meta.get("ownerReferences") or [],
        },
        "spec": spec,
    }


def test_a_pod_whose_uid_a_stopped_operator_never_recorded_is_replaced(
    operator, node_agent, crds_installed
):
    """What a stop between a pod's create and the status write recording its UID leaves
    behind, made exactly: the restarted operator deletes the pod under the reserved name
    (the Region's one trusted pod stays), forgets a reserved name that was never created,
    and leaves a pod under a name it never reserved alone: untrusted, but not its to delete.
    The kill test above covers the replacement of a deleted pod."""
    cluster, ns = crds_installed, "e2e-unrecorded"
    restricted(cluster, ns)
    apply(cluster, roomless(region("unrec-eu", ns, minReplicas=1)))
    wait_for(lambda: condition(cluster, "unrec-eu", "Ready").get("status") == "True", 120, "Ready")
    [first] = live_sfu_pods(cluster, ns)
    operator.kill()

    left = _copy_of(first, "unrec-eu-sfu-leftover")
    other = _copy_of(first, "unrec-eu-sfu-unreserved")
    for pod in (left, other):
        apply(cluster, pod)
    reserved = {"reservedPods": ["unrec-eu-sfu-leftover", "unrec-eu-sfu-nevermade"]}
    cluster.kubectl(
        "patch", "region", "unrec-eu", "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": {"sfu": reserved}}),
    )  # fmt: skip
    uids = {p["metadata"]["name"]: p["metadata"]["uid"] for p in live_sfu_pods(cluster, ns)}
    operator.start()

    def settled() -> bool:
        sfu = get(cluster, "region", "unrec-eu")["status"]["sfu"]
        names = _names(live_sfu_pods(cluster, ns))
        return "reservedPods" not in sfu and "unrec-eu-sfu-leftover" not in names

    wait_for(settled, 120, "the reserved, unrecorded pod deleted and the reservations settled")
    wait_for(lambda: condition(cluster, "unrec-eu", "Ready").get("status") == "True", 120, "Ready")
    live = {p["metadata"]["name"]: p["metadata"]["uid"] for p in live_sfu_pods(cluster, ns)}
    assert live[first["metadata"]["name"]] == uids[first["metadata"]["name"]]
    assert live["unrec-eu-sfu-unreserved"] == uids["unrec-eu-sfu-unreserved"]
    sfu = get(cluster, "region", "unrec-eu")["status"]["sfu"]
    assert [p["name"] for p in sfu["pods"]] == [first["metadata"]["name"]]
    assert sfu["currentReplicas"] == 1
    events = get(cluster, "events", "-A", "--field-selector", "involvedObject.name=unrec-eu")
    said = [(e["reason"], e["message"]) for e in events["items"]]
    assert any(
        reason == "UnrecordedSfuPodDeleted" and f"{ns}/unrec-eu-sfu-leftover " in message
        for reason, message in said
    ), said
    assert any(
        reason == "UntrustedSfuPod" and f"{ns}/unrec-eu-sfu-unreserved " in message
        for reason, message in said
    ), said
    cluster.kubectl("delete", "region", "unrec-eu", "--wait=false")


def _tls_secret(name: str, namespace: str) -> dict:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "turn.example.com")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    pem_key = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {"name": name, "namespace": namespace},
        "data": {
            "tls.crt": base64.b64encode(cert.public_bytes(serialization.Encoding.PEM)).decode(),
            "tls.key": base64.b64encode(pem_key).decode(),
        },
    }


def test_missing_tls_secret_degrades_and_recovers_without_restart(
    operator, node_agent, crds_installed
):
    cluster, ns = crds_installed, "e2e-tls"
    restricted(cluster, ns)
    turn = {
        "enabled": True,
        "replicas": 1,
        "tlsSecretName": "turn-tls",
        "allowedPeerCIDRs": ["127.0.0.0/8"],
    }
    apply(cluster, region("tls-eu", ns, minReplicas=1, turn=turn))
    wait_for(
        lambda: condition(cluster, "tls-eu", "Degraded").get("reason") == "TLSSecretMissing",
        60,
        "Degraded=TLSSecretMissing",
    )
    message = condition(cluster, "tls-eu", "Degraded")["message"]
    assert "turn-tls" in message and "tlsSecretName" in message
    apply(cluster, _tls_secret("turn-tls", ns))
    wait_for(
        lambda: condition(cluster, "tls-eu", "Ready").get("status") == "True",
        120,
        "Ready once the Secret exists",
    )
    uris = get(cluster, "region", "tls-eu")["status"]["turnURIs"]
    assert any(uri.startswith("turns:") for uri in uris)
    cluster.kubectl("delete", "region", "tls-eu", "--wait=false")
