"""End to end: LeastLoaded spreads rooms over a Region's pods, as the pods themselves report;
a Region admits only the namespaces it selects; rebalance moves empty rooms off a hot pod."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest

from fixtures.cluster import apply, ready_pods
from fixtures.cluster import get_json as get
from fixtures.operator import restarted_with
from fixtures.sfu_metrics import sfu_room_count
from fixtures.waiting import wait_for
from switchboard_operator.config import RESERVATION_HOLD_ENV

pytestmark = [pytest.mark.cluster, pytest.mark.nodeagent]

REGION, MEDIA_NS, ROOMS_NS = "spread-eu", "e2e-spread-media", "e2e-spread-rooms"
SHORT_HOLD_SECONDS = 15.0


def test_least_loaded_spreads_rooms_evenly(operator, node_agent, crds_installed, cleanup):
    cluster = crds_installed
    cluster.create_namespace(MEDIA_NS, {"pod-security.kubernetes.io/enforce": "restricted"})
    cluster.create_namespace(ROOMS_NS)
    cleanup("region", REGION)
    cleanup("namespace", ROOMS_NS)
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
    wait_for(lambda: len(ready_pods(cluster, MEDIA_NS)) == 3, 120, "three ready SFU pods")
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
        lambda: sorted(sfu_room_count(p) for p in ready_pods(cluster, MEDIA_NS)) == [2, 2, 2],
        30,
        "every SFU pod serving two rooms",
    )


def test_a_region_admits_only_the_namespaces_its_selector_names(
    operator, node_agent, crds_installed, cleanup
):
    cluster = crds_installed
    media, allowed, other = "e2e-tenant-media", "e2e-tenant-a", "e2e-tenant-b"
    cluster.create_namespace(media, {"pod-security.kubernetes.io/enforce": "restricted"})
    cluster.create_namespace(allowed, {"switchboard.dev/tenant": "a"})
    cluster.create_namespace(other)
    cleanup("region", "tenant-eu")
    cleanup("namespace", allowed)
    cleanup("namespace", other)
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


@pytest.fixture
def short_reservation_hold(operator) -> Iterator[float]:
    """The operator with a reservation hold shorter than the default 60 s, which this
    module does not test (tests/operator/logic does): rooms mature sooner. Long enough
    that five rooms are placed, and seen on one pod, well before the first matures."""
    with restarted_with(operator, {RESERVATION_HOLD_ENV: str(SHORT_HOLD_SECONDS)}):
        yield SHORT_HOLD_SECONDS


def test_rebalance_moves_empty_rooms_off_a_hot_pod(
    short_reservation_hold, operator, node_agent, crds_installed, cleanup
):
    """Packed piles five empty rooms (1.3 units each) onto one 10-unit pod. Once they are
    past the reservation hold they count 0.8 x 1.3 each, 52 % of the pod: above the 40 %
    threshold, so empty rooms move to the other pod until the hot one is at most 40 %
    and without taking the other above it: two rooms move, three stay."""
    cluster = crds_installed
    region, media, rooms_ns = "rebalance-eu", "e2e-rebalance-media", "e2e-rebalance-rooms"
    cluster.create_namespace(media, {"pod-security.kubernetes.io/enforce": "restricted"})
    cluster.create_namespace(rooms_ns)
    cleanup("region", region)
    cleanup("namespace", rooms_ns)
    apply(
        cluster,
        {
            "apiVersion": "switchboard.dev/v1alpha1",
            "kind": "Region",
            "metadata": {"name": region},
            "spec": {
                "namespace": media,
                "topologyRegion": "eu-west",
                "location": {"latitude": 55.7, "longitude": 12.6},
                "sfu": {
                    "minReplicas": 2,
                    "maxReplicas": 2,
                    "capacityPerPod": 10,
                    "placementPolicy": "Packed",
                    "rebalance": {"enabled": True, "hotThreshold": 0.4},
                },
                "turn": {"enabled": False},
            },
        },
    )

    def sfu_pods() -> list[dict]:
        return ready_pods(cluster, media)

    wait_for(lambda: len(sfu_pods()) == 2, 120, "two ready SFU pods")
    names = [f"empty-{i}" for i in range(5)]
    for name in names:
        apply(
            cluster,
            {
                "apiVersion": "switchboard.dev/v1alpha1",
                "kind": "Room",
                "metadata": {"name": name, "namespace": rooms_ns},
                "spec": {
                    "region": region,
                    "maxParticipants": 2,
                    "mediaProfile": {"videoPublishers": 1, "audioPublishers": 1},
                },
            },
        )

    def pods_of_rooms() -> dict[str, str | None]:
        items = get(cluster, "rooms", "-n", rooms_ns)["items"]
        return {r["metadata"]["name"]: (r.get("status") or {}).get("pod") for r in items}

    def all_placed() -> dict[str, str | None] | None:
        now = pods_of_rooms()
        return now if len(now) == 5 and all(now.values()) else None

    placed = wait_for(all_placed, 60, "five rooms placed")
    assert len(set(placed.values())) == 1, f"Packed should fill one pod first: {placed}"
    hot = next(iter(placed.values()))

    def moved() -> dict[str, str | None] | None:
        now = pods_of_rooms()
        counts = sorted(Counter(now.values()).values())
        return now if counts == [2, 3] else None

    # The rooms may move only once they are past the reservation hold.
    after = wait_for(moved, 150, "two empty rooms moved to the other pod")
    assert list(after.values()).count(hot) == 3
    # Each pod serves what its rooms' statuses say: the hot pod let go of the moved rooms.
    wait_for(
        lambda: sorted(sfu_room_count(p) for p in sfu_pods()) == [2, 3],
        30,
        "the SFU pods serving three and two rooms",
    )
    events = get(cluster, "events", "-n", rooms_ns, "--field-selector", "reason=Rebalanced")
    moved_rooms = {name for name, pod in after.items() if pod != hot}
    assert {e["involvedObject"]["name"] for e in events["items"]} == moved_rooms
    assert all(e["type"] == "Normal" for e in events["items"])
