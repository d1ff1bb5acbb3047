"""The parts the manager hands the metrics recorder record what they do: every reconcile
pass through the work queue (by kind, failures too), a Room's first placement and its wait
since creation, and the pods failover takes rooms off (by Region and reason)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from fixtures.operator_cache import cluster_cache, region_body
from fixtures.placement_builders import add_pod, key
from fixtures.waiting import eventually
from switchboard_operator.kit.waiters import Waiters
from switchboard_operator.kit.workqueue import WorkQueue
from switchboard_operator.logic.capacity import CapacityPicture
from switchboard_operator.metrics import OperatorMetrics
from switchboard_operator.reconcilers import rooms as rooms_module
from switchboard_operator.reconcilers.failover import FailoverReconciler
from switchboard_operator.reconcilers.rooms import RoomReconciler

KEY = "team/standup"
WAITED = 3.0


async def test_every_pass_of_a_work_queue_is_counted_by_kind_failures_too():
    metrics = OperatorMetrics()
    outcomes = iter([None, RuntimeError("conflict")])

    async def reconcile(_key: object) -> None:
        outcome = next(outcomes)
        if outcome is not None:
            raise outcome

    queue = WorkQueue(reconcile, "regions", observe=metrics.reconciles("Region"))
    registry = metrics.registry
    region = {"kind": "Region"}

    def value(name: str) -> float | None:
        return registry.get_sample_value(name, region)

    queue.start()
    try:
        queue.trigger("eu")
        await eventually(lambda: value("switchboard_operator_reconciles_total") == 1, 10, "a pass")
        queue.trigger("us")
        await eventually(
            lambda: value("switchboard_operator_reconcile_errors_total") == 1, 10, "a failure"
        )
    finally:
        await queue.stop()
    assert value("switchboard_operator_reconciles_total") == 2
    assert value("switchboard_operator_reconcile_duration_seconds_count") == 2
    # The other kind's series exist from the start, at 0.
    assert registry.get_sample_value("switchboard_operator_reconciles_total", {"kind": "Room"}) == 0


async def test_a_rooms_first_placement_is_counted_with_its_wait_since_creation(monkeypatch):
    created = datetime.fromtimestamp(time.time() - WAITED, UTC).isoformat()
    body = {
        "apiVersion": "switchboard.dev/v1alpha1",
        "kind": "Room",
        "metadata": {
            "namespace": "team",
            "name": "standup",
            "resourceVersion": "1",
            "creationTimestamp": created,
        },
        "spec": {"region": "eu", "maxParticipants": 4},
    }
    picture = CapacityPicture()
    add_pod(picture, "sfu-0", now=time.time())
    metrics = OperatorMetrics()
    cache = cluster_cache(regions=[region_body()], rooms={KEY: body})
    reconciler = RoomReconciler(None, cache, picture, Waiters(), metrics)

    async def patch_room_status(_api, _namespace, _name, _patch):
        return "2"

    monkeypatch.setattr(rooms_module, "patch_room_status", patch_room_status)
    reconciler.start()
    try:
        reconciler.room_changed(KEY)
        await eventually(lambda: picture.placement_of(KEY) is not None, 10, "the placement")
        await asyncio.wait_for(reconciler.wait_idle(), 10)
    finally:
        await reconciler.stop()
    registry = metrics.registry
    eu = {"region": "eu"}
    assert registry.get_sample_value("switchboard_room_placements_total", eu) == 1
    waited = "switchboard_room_placement_duration_seconds"
    assert registry.get_sample_value(f"{waited}_count", eu) == 1
    assert registry.get_sample_value(f"{waited}_sum", eu) >= WAITED
    passes = registry.get_sample_value("switchboard_operator_reconciles_total", {"kind": "Room"})
    assert passes is not None and passes >= 1


async def test_failover_counts_the_pod_it_takes_rooms_off_and_the_rooms_moved():
    picture = CapacityPicture()
    now = time.time()
    state = add_pod(picture, "sfu-0", now=now)
    add_pod(picture, "sfu-1", now=now)
    for room in ("team/a", "team/b"):
        picture.assign(room, 10.0, pod=key("sfu-0"), pod_uid=state.uid, now=now)
    picture.remove_pod(key("sfu-0"), state.uid)
    metrics = OperatorMetrics()
    failover = FailoverReconciler(
        None,
        cluster_cache(regions=[region_body()]),
        picture,
        trigger_room=lambda _room: None,
        room_writes_idle=asyncio.sleep,
        ready=lambda: True,
        term_start=lambda: now,
        metrics=metrics,
    )
    await failover.run()
    registry = metrics.registry
    lost = {"region": "eu", "reason": "PodDeleted"}
    assert registry.get_sample_value("switchboard_failovers_total", lost) == 1
    assert registry.get_sample_value("switchboard_rooms_moved_total", lost) == 2
