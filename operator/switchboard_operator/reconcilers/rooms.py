"""The Room reconciler: each Room's lifecycle, from placement to closing and deletion.

A pass reads the Room and the Regions from the cache, asks `logic.room_lifecycle` for one
decision, and carries it out: the capacity picture changes first, in the same synchronous
step (two rooms never take one slot), then the Event, the one status write, the SFU pod's
hosts-rooms label, and the answer to join requests waiting for the room.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from kubernetes_asyncio import client

from switchboard_api.room import RoomPhase
from switchboard_operator.cache import ClusterCache
from switchboard_operator.kit.retry import with_retries
from switchboard_operator.kit.waiters import Waiters
from switchboard_operator.kit.workqueue import Result, WorkQueue
from switchboard_operator.kube import events, objects
from switchboard_operator.kube.client import delete_room, patch_room_status
from switchboard_operator.logic import manifests
from switchboard_operator.logic.capacity import CapacityPicture
from switchboard_operator.logic.placement import Placement, Unschedulable, Waiting
from switchboard_operator.logic.room_lifecycle import (
    NOTHING_REMEMBERED,
    RoomAnswer,
    RoomDecision,
    RoomMemory,
    decide_room,
    recorded_placement,
    scheduled_condition,
)
from switchboard_operator.logic.room_status import PlacedOn
from switchboard_operator.metrics import OperatorMetrics

log = logging.getLogger(__name__)

ROOM_WORKERS = 64
"""Room reconciles in flight: each mostly waits on its status write, so enough of them
keep the API server busy during a failover (bench/placement_e2e.py)."""


class RoomReconciler:
    def __init__(
        self,
        api: client.ApiClient,
        cache: ClusterCache,
        picture: CapacityPicture,
        answers: Waiters[RoomAnswer],
        metrics: OperatorMetrics | None = None,
    ) -> None:
        self._api = api
        self._cache = cache
        self._picture = picture
        self._answers = answers
        self._memory: dict[str, RoomMemory] = {}
        self._written: dict[str, str] = {}
        """The resourceVersion of the status each Room's last pass wrote, until its watch
        echo arrives: the echo is that very status, so it is not reconciled again."""
        self._metrics = metrics or OperatorMetrics()
        self._queue = WorkQueue(
            self.reconcile,
            "rooms",
            workers=ROOM_WORKERS,
            observe=self._metrics.reconciles("Room"),
        )
        self.restored = asyncio.Event()
        """Set once the first list of Rooms is in and their placements are restored: until
        then reports are refused and joins wait (an answer would be from an empty picture)."""

    def start(self) -> None:
        self._queue.start()

    async def stop(self) -> None:
        await self._queue.stop()

    def trigger(self, key: str) -> None:
        self._queue.trigger(key)

    def room_changed(self, key: str) -> None:
        """The Room informer saw `key` change: reconcile it, unless the change is only the
        status this reconciler has just written (a pass over it would decide nothing, and
        anything else that happened meanwhile triggers the room itself)."""
        written = self._written.pop(key, None)
        body = self._cache.room(key)
        if body is not None and written == body["metadata"].get("resourceVersion"):
            return
        self._queue.trigger(key)

    def retry_pending(self) -> None:
        """Capacity may have appeared: look again at every room that waits for some."""
        for key in sorted(k for k, memory in self._memory.items() if memory.pending):
            self._queue.trigger(key)

    async def wait_idle(self) -> None:
        """Return once no Room waits for or is in a reconcile."""
        await self._queue.wait_idle()

    def restore(self) -> None:
        """After a restart, take back every placement recorded in Room statuses before any
        room is reconciled, so that no new room is placed on capacity they still hold."""
        regions = self._cache.regions()
        now = time.time()
        for key in self._cache.room_keys():
            body = self._cache.room(key) or {}
            status = body.get("status") or {}
            try:
                if status.get("phase") == RoomPhase.CLOSED.value:
                    continue
                room = self._cache.read_room(body)
                if self._picture.placement_of(key) is not None:
                    continue
                assign = recorded_placement(room, status, regions, self._picture, now)
                if assign is not None:
                    self._picture.assign(
                        key,
                        assign.reservation,
                        pod=assign.pod,
                        pod_uid=assign.pod_uid,
                        now=now,
                        placed_at=assign.placed_at,
                    )
            except Exception as error:  # one odd Room must not keep the control plane down
                log.warning("placement not restored room=%s error=%s", key, error)
        log.info("placements restored rooms=%d", self._picture.room_count())
        self.restored.set()

    async def reconcile(self, key: Any) -> Result | None:
        """One pass over one Room (the work queue calls it; never two at once for a key):
        read it, decide, carry the decision out."""
        body = self._cache.room(key)
        namespace = str(key).split("/", 1)[0]
        decision = decide_room(
            body,
            self._memory.get(key, NOTHING_REMEMBERED),
            picture=self._picture,
            regions=self._cache.regions(),
            namespace_labels=self._cache.namespace_labels(namespace),
            pod_address=self._cache.pod_address,
            now=time.time(),
            read=self._cache.read_room,
        )
        if decision.unreadable is not None:
            log.warning("room unreadable room=%s error=%s", key, decision.unreadable)
            return None
        self._apply(key, decision, body or {})
        if body is not None:
            await self._carry_out(body, decision)
        if decision.answer is not None:
            self._answers.answer(key, decision.answer)
        if decision.requeue_after is not None:
            return Result(requeue_after=decision.requeue_after)
        return None

    def _apply(self, key: str, decision: RoomDecision, body: Mapping[str, Any]) -> None:
        """The decision's changes to what this control plane holds, all before any await."""
        status = body.get("status") or {}
        self._remember(key, decision.memory)
        if decision.release and self._picture.release(key) is not None:
            self.retry_pending()
        if decision.assign is not None:
            assign = decision.assign
            self._picture.assign(
                key,
                assign.reservation,
                pod=assign.pod,
                pod_uid=assign.pod_uid,
                now=time.time(),
                placed_at=assign.placed_at,
                home=assign.home,
            )
        placement = decision.placement
        # A room on no pod counts towards the demand of the region it needs.
        if isinstance(placement, Waiting):
            self._picture.want(key, placement.region, placement.reservation)
        elif isinstance(placement, Unschedulable):
            self._picture.want(key, placement.home, placement.reservation)
        if isinstance(placement, Placement):
            log.info("room placed room=%s pod=%s region=%s", key, placement.pod, placement.region)
            # Its first placement (no pod recorded yet) is the wait a user saw at creation.
            created = None if status.get("pod") else _created_at(body)
            self._metrics.placed(
                placement.region, None if created is None else time.time() - created
            )
        elif placement is not None:
            # Pending rooms are retried whenever capacity may have appeared: say so once
            # per reason (the status already carries a repeated one).
            repeated = scheduled_condition(status).get("reason") == str(placement.reason)
            log.log(
                logging.DEBUG if repeated else logging.INFO,
                "room not placed room=%s reason=%s message=%s",
                key,
                placement.reason,
                placement.message,
            )

    async def _carry_out(self, body: Mapping[str, Any], decision: RoomDecision) -> None:
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        if decision.notice is not None:
            notice = decision.notice
            await events.post(self._api, body, notice.type, notice.reason, notice.message)
        if decision.status:
            patch = decision.status
            written = await with_retries(
                lambda: patch_room_status(self._api, namespace, name, patch),
                f"room {namespace}/{name} status",
            )
            if written is not None:
                self._written[f"{namespace}/{name}"] = written
        if decision.placed is not None:
            await self._sync_hosts_label(decision.placed)
        if decision.delete:
            await delete_room(self._api, namespace, name)

    async def _sync_hosts_label(self, placed: PlacedOn) -> None:
        """Keep the SFU pod's hosts-rooms label (which its PDB selects) true while it has rooms."""
        pod = self._cache.sfu_pod(placed.region, placed.pod)
        if pod is None:
            return
        meta = pod["metadata"]
        hosts = self._picture.hosts_rooms(f"{meta['namespace']}/{meta['name']}", meta["uid"])
        patch = manifests.hosts_rooms_patch(pod, hosts)
        if patch is not None:
            await objects.patch_merge(self._api, "Pod", meta["name"], meta["namespace"], patch)

    def _remember(self, key: str, memory: RoomMemory) -> None:
        if memory.empty:
            self._memory.pop(key, None)
        else:
            self._memory[key] = memory


def _created_at(body: Mapping[str, Any]) -> float | None:
    stamp = (body.get("metadata") or {}).get("creationTimestamp")
    try:
        return datetime.fromisoformat(str(stamp)).timestamp() if stamp else None
    except ValueError:
        return None
