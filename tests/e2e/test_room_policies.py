"""End to end: LeastLoaded spreads rooms over a Region's pods, as the pods themselves report."""

from __future__ import annotations

import pytest

from fixtures.cluster import apply
from fixtures.cluster import get_json as get
from fixtures.sfu_metrics import sfu_room_count
from fixtures.waiting import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.nodeagent]

REGION, MEDIA_NS, ROOMS_NS = "spread-eu", "e2e-spread-media", "e2e-spread-rooms"


def ready_pods(cluster) -> list[dict]:
    items = get(cluster, "pods", "-n", MEDIA_NS, "-l", "app.kubernetes.io/component=sfu")["items"]
    return [
        p
        for p in items
        if any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in (p.get("status") or {}).get("conditions") or []
        )
    ]


def test_least_loaded_spreads_rooms_evenly(operator, node_agent, crds_installed):
    cluster = crds_installed
    cluster.create_namespace(MEDIA_NS, {"pod-security.kubernetes.io/enforce": "restricted"})
    cluster.create_namespace(ROOMS_NS)
    apply(
        cluster,
        {
            "apiVersion": "switchboard.dev/v1alpha1",
            "kind": "Region",
            "metadata": {"name": REGION},
            "spec": {
                "namespace": MEDIA_NS,
                "topologyRegion": "eu-west",
                "location": {"latitude": 59.3, "longitude": 18.1},
                "sfu": {
                    "minReplicas": 3,
                    "maxReplicas": 3,
                    "capacityPerPod": 100,
                    "placementPolicy": "LeastLoaded",
                },
                "turn": {"enabled": False},
            },
        },
    )
    wait_for(lambda: len(ready_pods(cluster)) == 3, 120, "three ready SFU pods")
    for i in range(6):
        apply(
            cluster,
            {
                "apiVersion": "switchboard.dev/v1alpha1",
                "kind": "Room",
                "metadata": {"name": f"room-{i}", "namespace": ROOMS_NS},
                "spec": {
                    "region": REGION,
                    "maxParticipants": 2,
                    "mediaProfile": {"videoPublishers": 1, "audioPublishers": 1},
                },
            },
        )

    def placed() -> bool:
        items = get(cluster, "rooms", "-n", ROOMS_NS)["items"]
        return len(items) == 6 and all(
            (r.get("status") or {}).get("phase") == "Scheduled" for r in items
        )

    wait_for(placed, 60, "six rooms Scheduled")
    # Each pod learns its rooms from the report responses: two each.
    wait_for(
        lambda: sorted(sfu_room_count(p) for p in ready_pods(cluster)) == [2, 2, 2],
        30,
        "every SFU pod serving two rooms",
    )
    cluster.kubectl("delete", "namespace", ROOMS_NS, "--wait=false")
    cluster.kubectl("delete", "region", REGION, "--wait=false")


def test_a_region_admits_only_the_namespaces_its_selector_names(
    operator, node_agent, crds_installed
):
    cluster = crds_installed
    media, allowed, other = "e2e-tenant-media", "e2e-tenant-a", "e2e-tenant-b"
    cluster.create_namespace(media, {"pod-security.kubernetes.io/enforce": "restricted"})
    cluster.create_namespace(allowed, {"switchboard.dev/tenant": "a"})
    cluster.create_namespace(other)
    apply(
        cluster,
        {
            "apiVersion": "switchboard.dev/v1alpha1",
            "kind": "Region",
            "metadata": {"name": "tenant-eu"},
            "spec": {
                "namespace": media,
                "topologyRegion": "eu-west",
                "location": {"latitude": 60.2, "longitude": 24.9},
                "namespaceSelector": {"matchLabels": {"switchboard.dev/tenant": "a"}},
                "sfu": {"minReplicas": 1},
                "turn": {"enabled": False},
            },
        },
    )
    for namespace in (allowed, other):
        apply(
            cluster,
            {
                "apiVersion": "switchboard.dev/v1alpha1",
                "kind": "Room",
                "metadata": {"name": "standup", "namespace": namespace},
                "spec": {"region": "tenant-eu", "maxParticipants": 2},
            },
        )

    def status(namespace: str) -> dict:
        return get(cluster, "room", "standup", "-n", namespace).get("status") or {}

    wait_for(lambda: status(allowed).get("phase") == "Scheduled", 120, "the admitted room placed")
    wait_for(lambda: status(other).get("phase") == "Unschedulable", 60, "the other refused")
    scheduled = next(c for c in status(other)["conditions"] if c["type"] == "Scheduled")
    assert scheduled["reason"] == "NamespaceNotAdmitted"
    cluster.kubectl("delete", "region", "tenant-eu", "--wait=false")
