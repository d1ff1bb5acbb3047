"""The capacity feed tells the failover reconciler at once when a pod holding rooms has
ended (docs/contract.md, C4: its rooms move without waiting for the Pod's deletion)."""

from __future__ import annotations

from fixtures.leadership import StaticLeadership
from fixtures.operator_cache import cluster_cache
from fixtures.placement_builders import NOW, POD_NAMESPACE, key
from switchboard_operator.logic.capacity import CapacityPicture, LossReason, rooms_to_move
from switchboard_operator.reconcilers.capacity_feed import CapacityFeed

REGION = "eu"


def sfu_pod(name: str, phase: str) -> dict:
    ready = "True" if phase == "Running" else "False"
    return {
        "metadata": {
            "name": name,
            "namespace": POD_NAMESPACE,
            "uid": f"uid-{name}",
            "labels": {"switchboard.dev/region": REGION},
        },
        "status": {"phase": phase, "conditions": [{"type": "Ready", "status": ready}]},
    }


def feed_with_pods(*names: str) -> tuple[CapacityFeed, CapacityPicture, list[str]]:
    picture = CapacityPicture()
    lost: list[str] = []
    regions = [{"metadata": {"name": REGION}, "spec": {"namespace": POD_NAMESPACE}}]
    pods = {REGION: [sfu_pod(name, "Running") for name in names]}
    feed = CapacityFeed(
        cluster_cache(regions=regions, sfu_pods=pods),
        picture,
        capacity_appeared=lambda: None,
        pod_lost=lambda: lost.append("lost"),
        ready=lambda: True,
        leadership=StaticLeadership(term=1),
    )
    for name in names:
        feed.on_pod(sfu_pod(name, "Running"), deleted=False)
    return feed, picture, lost


def test_a_pod_holding_rooms_that_fails_is_reported_lost_at_once():
    feed, picture, lost = feed_with_pods("sfu-0", "sfu-1")
    picture.assign("a/room", 10.0, pod=key("sfu-0"), pod_uid="uid-sfu-0", now=NOW)
    assert lost == []
    feed.on_pod(sfu_pod("sfu-0", "Failed"), deleted=False)
    assert lost == ["lost"]
    [move] = rooms_to_move(picture, NOW, set(), unconfirmed_timeout=6.0)
    assert move.room == "a/room" and move.reason == LossReason.POD_ENDED


def test_a_pod_without_rooms_that_ends_or_a_running_pod_signals_nothing():
    feed, picture, lost = feed_with_pods("sfu-0", "sfu-1")
    picture.assign("a/room", 10.0, pod=key("sfu-1"), pod_uid="uid-sfu-1", now=NOW)
    feed.on_pod(sfu_pod("sfu-0", "Succeeded"), deleted=False)
    feed.on_pod(sfu_pod("sfu-1", "Running"), deleted=False)
    assert lost == []
