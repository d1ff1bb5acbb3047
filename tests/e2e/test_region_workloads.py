"""End to end: a Region becomes running SFU and coturn pods on its own region's node.

Real control plane, real kube-scheduler, the node agent running the real `switchboard-sfu`
and Debian's `turnserver` as pods, the operator under its chart's RBAC.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Iterator

import kubernetes
import pytest

from fixtures.audit import audit_marker
from fixtures.cluster import condition, is_ready
from fixtures.cluster import get_json as get
from fixtures.sfu_metrics import SFU_REPORTS_ACKNOWLEDGED, sfu_metric
from fixtures.waiting import wait_for
from switchboard_dev.operator_process import OPERATOR_USER

pytestmark = [pytest.mark.cluster, pytest.mark.nodeagent]

NAMESPACE = "e2e-media"


def region(name: str, namespace: str, latitude: float, **sfu) -> dict:
    return {
        "apiVersion": "switchboard.dev/v1alpha1",
        "kind": "Region",
        "metadata": {"name": name},
        "spec": {
            "namespace": namespace,
            "location": {"latitude": latitude, "longitude": 0.0},
            "sfu": {"minReplicas": 2, "maxReplicas": 4, "capacityPerPod": 100, **sfu},
            "turn": {"enabled": True, "replicas": 1, "allowedPeerCIDRs": ["127.0.0.0/8"]},
        },
    }


def pods(cluster, namespace: str, component: str) -> list[dict]:
    items = get(cluster, "pods", "-n", namespace, "-l", f"app.kubernetes.io/component={component}")[
        "items"
    ]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


@pytest.fixture(scope="module")
def media_namespace(crds_installed):
    crds_installed.create_namespace(NAMESPACE, {"pod-security.kubernetes.io/enforce": "restricted"})
    return NAMESPACE


@pytest.fixture(scope="module")
def eu_west(operator, node_agent, crds_installed, media_namespace) -> Iterator[float]:
    """The module's Region, applied once (whichever of its tests runs first) and removed
    after the module; yields when it was applied."""
    cluster = crds_installed
    applied = time.monotonic()
    cluster.kubectl("apply", "-f", "-", input=json.dumps(region("eu-west", NAMESPACE, 53.3)))
    try:
        yield applied
    finally:
        cluster.kubectl("delete", "region", "eu-west", "--ignore-not-found", "--wait=false")


def test_region_becomes_ready_with_pods_on_its_own_node(node_agent, crds_installed, eu_west):
    cluster = crds_installed
    wait_for(lambda: is_ready(get(cluster, "region", "eu-west")), 120, "Region eu-west Ready=True")
    print(f"apply -> Ready: {time.monotonic() - eu_west:.1f}s")

    status = get(cluster, "region", "eu-west")["status"]
    recorded = status["sfu"].pop("pods")
    assert status["sfu"] == {
        "desiredReplicas": 2,
        "currentReplicas": 2,
        "readyReplicas": 2,
        "drainingReplicas": 0,
    }
    # The pods it trusts are the ones it created, by UID.
    running = pods(cluster, NAMESPACE, "sfu")
    assert sorted((p["name"], p["uid"]) for p in recorded) == sorted(
        (p["metadata"]["name"], p["metadata"]["uid"]) for p in running
    )
    assert status["turn"]["readyReplicas"] == 1
    assert any(uri.startswith("turn:") for uri in status["turnURIs"])
    assert condition(get(cluster, "region", "eu-west"), "Degraded")["status"] == "False"
    eu_nodes = {n for n in node_agent.node_names if n.startswith("eu-west")}
    for pod in pods(cluster, NAMESPACE, "sfu") + pods(cluster, NAMESPACE, "turn"):
        assert pod["spec"]["nodeName"] in eu_nodes
        assert pod["status"]["phase"] == "Running"


def test_idle_region_costs_no_writes(crds_installed, eu_west):
    cluster = crds_installed
    audit = cluster.require_local("reads the audit log").audit_log
    wait_for(lambda: is_ready(get(cluster, "region", "eu-west")), 120, "Region eu-west Ready=True")
    # Settled: both pods have reported, so the Region shows their full capacity.
    wait_for(
        lambda: get(cluster, "region", "eu-west")["status"].get("capacity") == 200,
        60,
        "the Region's capacity from both pods' reports",
    )
    mark = audit.mark()
    # A metadata-only change makes the operator reconcile the Region once more.
    cluster.kubectl("label", "region", "eu-west", f"touched={int(time.time())}", "--overwrite")
    # Reports keep arriving meanwhile (every second): they must cost nothing either. Wait
    # until the operator has acknowledged several more of each pod's (across more than one
    # pass of the Region's load check), and the audit log shows every write made meanwhile.
    sfu_pods = pods(cluster, NAMESPACE, "sfu")
    acknowledged = [sfu_metric(p, SFU_REPORTS_ACKNOWLEDGED) for p in sfu_pods]
    wait_for(
        lambda: all(
            sfu_metric(p, SFU_REPORTS_ACKNOWLEDGED) >= before + 5
            for p, before in zip(sfu_pods, acknowledged, strict=True)
        ),
        30,
        "five more reports of each pod acknowledged",
    )
    wait_for(audit_marker(cluster, NAMESPACE), 30, "the audit log to catch up")
    # Lease renewals are leader election's heartbeat, not reconciliation.
    writes = [w for w in audit.writes(since=mark, user=OPERATOR_USER) if w.resource != "leases"]
    assert writes == [], [(w.verb, w.resource, w.name) for w in writes]


def test_two_regions_land_on_their_own_nodes(operator, node_agent, crds_installed, cleanup):
    cluster = crds_installed
    cluster.create_namespace("e2e-us", {"pod-security.kubernetes.io/enforce": "restricted"})
    cleanup("namespace", "e2e-us")
    cleanup("region", "us-east")
    spec = region("us-east", "e2e-us", 39.0, minReplicas=1)
    spec["spec"]["turn"]["enabled"] = False
    cluster.kubectl("apply", "-f", "-", input=json.dumps(spec))
    wait_for(lambda: is_ready(get(cluster, "region", "us-east")), 120, "Region us-east Ready=True")
    us_nodes = {n for n in node_agent.node_names if n.startswith("us-east")}
    assert {p["spec"]["nodeName"] for p in pods(cluster, "e2e-us", "sfu")} <= us_nodes
    assert pods(cluster, "e2e-us", "turn") == []


def test_room_is_placed_and_its_pod_cannot_be_evicted(crds_installed, eu_west, cleanup):
    cluster = crds_installed
    wait_for(lambda: is_ready(get(cluster, "region", "eu-west")), 120, "Region eu-west Ready=True")
    cluster.create_namespace("e2e-rooms")
    cleanup("namespace", "e2e-rooms")
    room = {
        "apiVersion": "switchboard.dev/v1alpha1",
        "kind": "Room",
        "metadata": {"name": "standup", "namespace": "e2e-rooms"},
        "spec": {"region": "eu-west", "maxParticipants": 4},
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(room))
    wait_for(
        lambda: (
            (get(cluster, "room", "standup", "-n", "e2e-rooms").get("status") or {}).get("phase")
            == "Scheduled"
        ),
        30,
        "room Scheduled",
    )
    status = get(cluster, "room", "standup", "-n", "e2e-rooms")["status"]
    assert status["region"] == "eu-west"
    assert status["endpoint"]
    host = status["pod"]
    wait_for(
        lambda: (
            get(cluster, "pod", host, "-n", NAMESPACE)["metadata"]["labels"].get(
                "switchboard.dev/hosts-rooms"
            )
            == "true"
        ),
        30,
        "hosts-rooms label on the room's pod",
    )
    core = kubernetes.client.CoreV1Api(cluster.api_client())
    eviction = kubernetes.client.V1Eviction(
        metadata=kubernetes.client.V1ObjectMeta(name=host, namespace=NAMESPACE)
    )
    with pytest.raises(kubernetes.client.ApiException) as refused:
        core.create_namespaced_pod_eviction(host, NAMESPACE, eviction)
    assert refused.value.status == 429
    assert "disruption budget" in refused.value.body


def test_region_ready_latency(operator, node_agent, crds_installed):
    """Apply → Ready=True for fresh Regions, several times (printed, not asserted)."""
    cluster = crds_installed
    samples = []
    for i in range(3):
        name, namespace = f"latency-{i}", f"e2e-latency-{i}"
        cluster.create_namespace(namespace, {"pod-security.kubernetes.io/enforce": "restricted"})
        spec = region(name, namespace, 10.0 + i, minReplicas=1)
        spec["spec"]["topologyRegion"] = "eu-west"
        spec["spec"]["turn"]["enabled"] = False
        started = time.monotonic()
        cluster.kubectl("apply", "-f", "-", input=json.dumps(spec))
        wait_for(
            lambda name=name: is_ready(get(cluster, "region", name)), 120, f"Region {name} Ready"
        )
        samples.append(time.monotonic() - started)
        cluster.kubectl("delete", "region", name, "--wait=false")
    print(
        f"Region apply -> Ready=True: median {statistics.median(samples):.2f}s "
        f"samples {[round(s, 2) for s in samples]}"
    )
