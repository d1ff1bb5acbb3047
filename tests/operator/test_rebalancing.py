"""The rebalance reconciler: only Regions that opt in move rooms, each move is queued for
its Room's status write (which the Room reconciler makes once) and announced with a Normal
`Rebalanced` Event, and a Region's moves per minute are capped."""

from __future__ import annotations

import time

import pytest

from fixtures.operator_cache import cluster_cache
from fixtures.placement_builders import report, usage
from switchboard_api.region import Region
from switchboard_operator.kit.waiters import Waiters
from switchboard_operator.logic.capacity import (
    CapacityPicture,
    PodObservation,
)
from switchboard_operator.reconcilers import rebalance as rebalance_module
from switchboard_operator.reconcilers import rooms as rooms_module
from switchboard_operator.reconcilers.rebalance import RebalanceReconciler
from switchboard_operator.reconcilers.rooms import RoomReconciler

NAMESPACE = "media"
EMPTY_ROOMS = ("rooms/a", "rooms/b", "rooms/c")
BUSY_ROOM = "rooms/busy"
MATURE = 120.0
"""Seconds since the rooms were placed: past the reservation hold."""


def region(rebalance: dict | None = None, name: str = "eu") -> Region:
    sfu = {"capacityPerPod": 100, "placementPolicy": "Packed"}
    if rebalance is not None:
        sfu["rebalance"] = rebalance
    return Region.model_validate(
        {
            "metadata": {"name": name},
            "spec": {
                "namespace": NAMESPACE,
                "location": {"latitude": 52.4, "longitude": 4.9},
                "sfu": sfu,
            },
        }
    )


def room_body(key: str, **metadata) -> dict:
    namespace, name = key.split("/")
    return {
        "apiVersion": "switchboard.dev/v1alpha1",
        "kind": "Room",
        "metadata": {"namespace": namespace, "name": name, "uid": f"uid-{name}", **metadata},
        "spec": {},
        "status": {"phase": "Scheduled"},
    }


def hot_picture(now: float) -> CapacityPicture:
    """sfu-0 holds a busy room (50 units in use) and three empty 15-unit rooms, all placed
    long ago: it counts 50 + 3 x 12 = 86 % of its capacity. sfu-1 is idle."""
    picture = CapacityPicture()
    for pod in ("sfu-0", "sfu-1"):
        observed = PodObservation(NAMESPACE, pod, f"uid-{pod}", "eu", ready=True)
        picture.apply_pod(observed, now - MATURE)
    for room in (*EMPTY_ROOMS, BUSY_ROOM):
        size = 50.0 if room == BUSY_ROOM else 15.0
        picture.assign(room, size, pod=f"{NAMESPACE}/sfu-0", pod_uid="uid-sfu-0", now=now - MATURE)
    report_all(picture, now, sequence=1)
    return picture


def report_all(picture: CapacityPicture, now: float, sequence: int) -> None:
    """Both pods report the rooms placed on them: the busy room with its ten participants,
    every other room empty."""
    for pod in ("sfu-0", "sfu-1"):
        usages = []
        for placed in picture.rooms_on(f"{NAMESPACE}/{pod}"):
            busy = placed.room == BUSY_ROOM
            usages.append(
                usage(
                    placed.room,
                    participants=10 if busy else 0,
                    load=49.0 if busy else 0.0,
                    empty_since=None if busy else now - placed.placed_at,
                )
            )
        sfu = report(
            pod,
            sequence=sequence,
            load=sum(u.load for u in usages),
            participants=sum(u.participants for u in usages),
            rooms=tuple(usages),
        )
        assert picture.apply_report(sfu, now).accepted


def pods_of(picture: CapacityPicture) -> dict[str, str]:
    placed = {room: picture.placement_of(room) for room in (*EMPTY_ROOMS, BUSY_ROOM)}
    return {room: p.pod.split("/")[1] for room, p in placed.items() if p is not None}


@pytest.fixture
def posted(monkeypatch) -> list[tuple[str, str, str, str]]:
    events: list[tuple[str, str, str, str]] = []

    async def post(_api, body, type_, reason, message):
        events.append((body["metadata"]["name"], type_, reason, message))

    monkeypatch.setattr(rebalance_module.events, "post", post)
    return events


def rebalancer(
    picture: CapacityPicture, regions: list[Region], bodies: dict[str, dict]
) -> tuple[RebalanceReconciler, list[str]]:
    """A rebalance reconciler over `regions` and the Rooms `bodies`, and the rooms it asks
    the Room reconciler to look at."""
    triggered: list[str] = []
    cache = cluster_cache(regions=[r.to_wire() for r in regions], rooms=bodies)
    reconciler = RebalanceReconciler(
        None, cache, picture, trigger_room=triggered.append, ready=lambda: True
    )
    return reconciler, triggered


def rooms() -> dict[str, dict]:
    return {room: room_body(room) for room in (*EMPTY_ROOMS, BUSY_ROOM)}


async def test_a_region_that_does_not_opt_in_moves_nothing(posted):
    picture = hot_picture(time.time())
    reconciler, triggered = rebalancer(picture, [region()], rooms())
    await reconciler.run()
    assert triggered == [] and posted == []
    assert set(pods_of(picture).values()) == {"sfu-0"}


async def test_empty_rooms_leave_the_hot_pod_with_a_status_write_and_an_event_each(posted):
    picture = hot_picture(time.time())
    reconciler, triggered = rebalancer(
        picture, [region({"enabled": True, "hotThreshold": 0.6})], rooms()
    )
    await reconciler.run()
    # 86 → 74 → 62 → 50 %: every empty room moves; the busy room never does.
    assert sorted(triggered) == sorted(EMPTY_ROOMS)
    assert pods_of(picture) == {BUSY_ROOM: "sfu-0"} | {room: "sfu-1" for room in EMPTY_ROOMS}
    assert picture.pod(f"{NAMESPACE}/sfu-1").utilization <= 0.6
    assert sorted(name for name, *_ in posted) == ["a", "b", "c"]
    assert all(type_ == "Normal" and reason == "Rebalanced" for _, type_, reason, _ in posted)
    assert "Moved from SFU pod sfu-0 to sfu-1" in posted[0][3]
    assert "above 60% of its capacity" in posted[0][3]


def test_the_threshold_defaults_to_the_high_water_mark():
    now = time.time()
    eu = region({"enabled": True})
    reconciler, _ = rebalancer(hot_picture(now), [eu], rooms())
    # 86 % is above the 80 % mark: one empty room is enough to cool the pod.
    assert len(reconciler.apply({"eu": eu}, now)) == 1


def test_moves_per_minute_are_capped_per_region():
    now = time.time()
    picture = hot_picture(now)
    eu = region({"enabled": True, "hotThreshold": 0.6, "maxMovesPerMinute": 2})
    reconciler, _ = rebalancer(picture, [eu], rooms())
    assert len(reconciler.apply({"eu": eu}, now)) == 2
    assert reconciler.apply({"eu": eu}, now + 30) == []
    # A minute later the last empty room may move (sfu-0 has kept reporting).
    report_all(picture, now + 60, sequence=2)
    assert len(reconciler.apply({"eu": eu}, now + 60)) == 1


def test_a_room_being_deleted_is_left_to_its_reconcile():
    now = time.time()
    eu = region({"enabled": True, "hotThreshold": 0.6})
    bodies = rooms()
    bodies["rooms/a"] = room_body("rooms/a", deletionTimestamp="2025-01-01T00:00:00Z")
    del bodies["rooms/b"]
    reconciler, _ = rebalancer(hot_picture(now), [eu], bodies)
    assert [m.room for m in reconciler.apply({"eu": eu}, now)] == ["rooms/c"]


async def test_the_room_reconcile_writes_each_moved_rooms_new_pod_once(posted, monkeypatch):
    now = time.time()
    eu = region({"enabled": True, "hotThreshold": 0.6})
    bodies = rooms()
    picture = hot_picture(now)
    cache = cluster_cache(regions=[eu.to_wire()], rooms=bodies)
    room_reconciler = RoomReconciler(None, cache, picture, Waiters())
    reconciler = RebalanceReconciler(
        None, cache, picture, trigger_room=lambda _key: None, ready=lambda: True
    )
    patches: dict[str, list[dict]] = {}

    async def patch_room_status(_api, namespace, name, patch):
        key = f"{namespace}/{name}"
        patches.setdefault(key, []).append(patch)
        # What the watch then delivers: the status with the merge patch applied.
        status = bodies[key]["status"]
        status.update(patch)
        for field, value in patch.items():
            if value is None:
                del status[field]

    monkeypatch.setattr(rooms_module, "patch_room_status", patch_room_status)
    for key in bodies:
        await room_reconciler.reconcile(key)
    assert {body["status"]["pod"] for body in bodies.values()} == {"sfu-0"}
    patches.clear()

    await reconciler.run()
    for key in bodies:
        await room_reconciler.reconcile(key)
    assert sorted(patches) == sorted(EMPTY_ROOMS)
    assert all(len(written) == 1 for written in patches.values())
    assert {written[0]["pod"] for written in patches.values()} == {"sfu-1"}
    assert bodies[BUSY_ROOM]["status"]["pod"] == "sfu-0"
    assert len(posted) == 3
