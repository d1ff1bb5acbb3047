"""The Room reconciler writes a placement once and does not reconcile the watch echo of its
own status write again; any other change to the Room is reconciled."""

from __future__ import annotations

import asyncio
import time

from fixtures.operator_cache import cluster_cache, region_body
from fixtures.placement_builders import add_pod
from fixtures.waiting import eventually
from switchboard_operator.kit.waiters import Waiters
from switchboard_operator.logic.capacity import CapacityPicture
from switchboard_operator.reconcilers import rooms as rooms_module
from switchboard_operator.reconcilers.rooms import RoomReconciler

KEY = "team/standup"


async def test_the_echo_of_its_own_status_write_is_not_reconciled_again(monkeypatch):
    body = {
        "apiVersion": "switchboard.dev/v1alpha1",
        "kind": "Room",
        "metadata": {"namespace": "team", "name": "standup", "resourceVersion": "1"},
        "spec": {"region": "eu", "maxParticipants": 4},
    }
    bodies = {KEY: body}
    picture = CapacityPicture()
    add_pod(picture, "sfu-0", now=time.time())  # the reconciler reads the real clock
    reconciler = RoomReconciler(
        None, cluster_cache(regions=[region_body()], rooms=bodies), picture, Waiters()
    )
    passes: list[str] = []
    writes: list[dict] = []
    decide = rooms_module.decide_room

    def counted(*args, **kwargs):
        passes.append(KEY)
        return decide(*args, **kwargs)

    async def patch_room_status(_api, _namespace, _name, patch):
        writes.append(patch)
        # The API server's answer: the status as written, at a new resourceVersion.
        merged = {**body.get("status", {}), **patch}
        body["status"] = {k: v for k, v in merged.items() if v is not None}
        body["metadata"] = {**body["metadata"], "resourceVersion": str(1 + len(writes))}
        return body["metadata"]["resourceVersion"]

    monkeypatch.setattr(rooms_module, "decide_room", counted)
    monkeypatch.setattr(rooms_module, "patch_room_status", patch_room_status)
    reconciler.start()
    try:
        reconciler.room_changed(KEY)  # created
        await eventually(lambda: writes, 10, "the placement's status write")
        await asyncio.wait_for(reconciler.wait_idle(), 10)
        assert len(passes) == 1 and writes[0].get("pod") == "sfu-0", writes

        reconciler.room_changed(KEY)  # the watch echo of that write
        await asyncio.wait_for(reconciler.wait_idle(), 10)
        assert len(passes) == 1

        body["metadata"] = {**body["metadata"], "resourceVersion": "9", "labels": {"a": "b"}}
        reconciler.room_changed(KEY)  # anything else
        await asyncio.wait_for(reconciler.wait_idle(), 10)
        assert len(passes) == 2
        assert len(writes) == 1
    finally:
        await reconciler.stop()
