"""End to end: rooms go to the nearest Region with room, pinned rooms stay pinned, and a full
Region spills to the next nearest — with real SFU pods reporting their capacity."""

from __future__ import annotations

import pytest

from fixtures.cluster import apply
from fixtures.cluster import get_json as get
from fixtures.waiting import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.nodeagent]

ROOMS_NS = "e2e-geo-rooms"
# Far from every other test's Regions (Europe, North America), so only these two compete.
SYDNEY = {"latitude": -33.87, "longitude": 151.21}
TOKYO = {"latitude": 35.68, "longitude": 139.69}
NEAR_SYDNEY = {"latitude": -37.81, "longitude": 144.96}  # Melbourne
NEAR_TOKYO = {"latitude": 34.69, "longitude": 135.50}  # Osaka


def region(name: str, namespace: str, location: dict, node_region: str, capacity: float) -> dict:
    return {
        "apiVersion": "switchboard.dev/v1alpha1",
        "kind": "Region",
        "metadata": {"name": name},
        "spec": {
            "namespace": namespace,
            "topologyRegion": node_region,
            "location": location,
            "sfu": {"minReplicas": 1, "maxReplicas": 1, "capacityPerPod": capacity},
            "turn": {"enabled": False},
        },
    }


def room(name: str, **spec) -> dict:
    return {
        "apiVersion": "switchboard.dev/v1alpha1",
        "kind": "Room",
        "metadata": {"name": name, "namespace": ROOMS_NS},
        # A 1:1 call: 1.3 capacity units (see CAPACITY.md).
        "spec": {
            "maxParticipants": 2,
            "mediaProfile": {"videoPublishers": 1, "audioPublishers": 1},
            **spec,
        },
    }


def placed_region(cluster, name: str) -> str | None:
    status = get(cluster, "room", name, "-n", ROOMS_NS).get("status") or {}
    return status.get("region") if status.get("phase") == "Scheduled" else None


def region_ready(cluster, name: str) -> bool:
    conditions = (get(cluster, "region", name).get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


@pytest.fixture(scope="module")
def regions(operator, node_agent, crds_installed):
    cluster = crds_installed
    for namespace in ("e2e-geo-syd", "e2e-geo-tyo"):
        cluster.create_namespace(namespace, {"pod-security.kubernetes.io/enforce": "restricted"})
    cluster.create_namespace(ROOMS_NS)
    # Sydney is small: two 1:1 calls fill it to its admission limit.
    apply(cluster, region("geo-syd", "e2e-geo-syd", SYDNEY, "eu-west", capacity=3.5))
    apply(cluster, region("geo-tyo", "e2e-geo-tyo", TOKYO, "us-east", capacity=100))
    for name in ("geo-syd", "geo-tyo"):
        wait_for(lambda name=name: region_ready(cluster, name), 120, f"{name} Ready")
    yield cluster
    for name in ("geo-syd", "geo-tyo"):
        cluster.kubectl("delete", "region", name, "--wait=false")


def test_rooms_go_to_the_nearest_region_and_pinned_rooms_stay(regions):
    cluster = regions
    apply(cluster, room("melbourne", location=NEAR_SYDNEY))
    apply(cluster, room("osaka", location=NEAR_TOKYO))
    apply(cluster, room("pinned", location=NEAR_SYDNEY, region="geo-tyo"))
    for name, expected in (("melbourne", "geo-syd"), ("osaka", "geo-tyo"), ("pinned", "geo-tyo")):
        wait_for(lambda name=name: placed_region(cluster, name), 60, f"{name} placed")
        assert placed_region(cluster, name) == expected, name


def test_a_full_region_spills_to_the_next_nearest(regions):
    cluster = regions
    wait_for(lambda: placed_region(cluster, "melbourne"), 60, "melbourne placed")
    # Sydney takes one more 1:1 call, then it is full: the third spills to Tokyo.
    for name in ("perth", "adelaide"):
        apply(cluster, room(name, location=NEAR_SYDNEY))
        wait_for(lambda name=name: placed_region(cluster, name), 60, f"{name} placed")
    placed = {name: placed_region(cluster, name) for name in ("melbourne", "perth", "adelaide")}
    assert sorted(placed.values()) == ["geo-syd", "geo-syd", "geo-tyo"], placed
