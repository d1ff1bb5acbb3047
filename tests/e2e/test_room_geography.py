"""End to end: rooms go to the nearest Region with room, pinned rooms stay pinned, a full
Region spills to the next nearest, and a Region whose SFU pods are still starting is waited
for — with real SFU pods reporting their capacity."""

from __future__ import annotations

import time

import pytest

from fixtures.cluster import apply, is_ready, remove
from fixtures.cluster import get_json as get
from fixtures.waiting import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.nodeagent]

ROOMS_NS = "e2e-geo-rooms"
# Far from every other test's Regions (Europe, North America), so only these two compete.
SYDNEY = {"latitude": -33.87, "longitude": 151.21}
TOKYO = {"latitude": 35.68, "longitude": 139.69}
NEAR_SYDNEY = {"latitude": -37.81, "longitude": 144.96}  # Melbourne
NEAR_TOKYO = {"latitude": 34.69, "longitude": 135.50}  # Osaka
AUCKLAND = {"latitude": -36.85, "longitude": 174.76}
NEAR_AUCKLAND = {"latitude": -41.29, "longitude": 174.78}  # Wellington
LATE_NODE_REGION = "ap-southeast"
"""Nodes of this topology region join only when a test starts an agent for them."""


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


def waiting_message(cluster, name: str) -> str | None:
    """The Room's message while it is Pending and waits for SFU pods to start."""
    status = get(cluster, "room", name, "-n", ROOMS_NS).get("status") or {}
    scheduled = next((c for c in status.get("conditions") or [] if c["type"] == "Scheduled"), {})
    if status.get("phase") == "Pending" and scheduled.get("reason") == "WaitingForPods":
        return str(status.get("message"))
    return None


def region_observed(cluster, name: str) -> bool:
    obj = get(cluster, "region", name)
    return (obj.get("status") or {}).get("observedGeneration") == obj["metadata"]["generation"]


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
        wait_for(lambda name=name: is_ready(get(cluster, "region", name)), 120, f"{name} Ready")
    try:
        yield cluster
    finally:
        # Rooms first: these are unpinned, and a later module's Region would take them.
        remove(cluster, "namespace", ROOMS_NS)
        for name in ("geo-syd", "geo-tyo"):
            remove(cluster, "region", name)


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


def test_a_room_waits_for_its_nearest_region_while_its_sfu_pods_start(regions, node_agents):
    """A Room applied right after its nearest Region is created waits there (Pending) instead
    of spilling to a farther Region that is Ready, and is placed there once an SFU pod of
    that Region is Ready and reports. The new Region's node joins only after the Room is
    seen waiting, so its pods are surely still starting when the Room is decided."""
    cluster = regions
    cluster.create_namespace("e2e-geo-akl", {"pod-security.kubernetes.io/enforce": "restricted"})
    apply(cluster, region("geo-akl", "e2e-geo-akl", AUCKLAND, LATE_NODE_REGION, capacity=100))
    # Once the operator has acted on the Region, the Room cannot be decided without it.
    wait_for(lambda: region_observed(cluster, "geo-akl"), 60, "geo-akl observed")
    apply(cluster, room("wellington", location=NEAR_AUCKLAND))
    message = wait_for(lambda: waiting_message(cluster, "wellington"), 60, "wellington waiting")
    assert "geo-akl" in message, message
    started = time.monotonic()
    agent = node_agents.start({LATE_NODE_REGION: [f"{LATE_NODE_REGION}-a"]}, name="late")
    try:
        wait_for(lambda: is_ready(get(cluster, "region", "geo-akl")), 90, "geo-akl Ready")
        ready_after = time.monotonic() - started
        wait_for(lambda: placed_region(cluster, "wellington"), 30, "wellington placed")
        print(
            f"\nnode agent start -> geo-akl Ready {ready_after:.1f}s, "
            f"-> wellington placed {time.monotonic() - started:.1f}s"
        )
        assert placed_region(cluster, "wellington") == "geo-akl"
    finally:
        # Keep later modules' unpinned pods off this node (its agent stops with the session).
        for node in agent.node_names:
            cluster.kubectl("cordon", node)
        cluster.kubectl("delete", "region", "geo-akl", "--wait=false")
