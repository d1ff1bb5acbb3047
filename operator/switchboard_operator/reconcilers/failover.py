"""The failover reconciler: rooms leave the pods they must leave (lost, fenced, or draining
past their deadline) for pods that are up, and each moved Room is announced.

It runs as soon as a pod is seen lost (Pod deleted or ended, a new incarnation, a fenced
report) and every half second for silent pods, which lose their rooms only by the lease
rules (docs/contract.md, "Leases", C5 and C6). The moves are decided and reserved in the
capacity picture in one synchronous step; the Room reconciler then writes each moved
Room's status, and the `Migrating` Events follow once those writes are done.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import pydantic
from kubernetes_asyncio import client

from switchboard_operator.cache import ClusterCache
from switchboard_operator.kit.ticker import Periodic
from switchboard_operator.kube import events
from switchboard_operator.logic.capacity import (
    CapacityPicture,
    RoomToMove,
    rooms_to_move,
    silent_pods,
)
from switchboard_operator.logic.leases import LeaseTiming
from switchboard_operator.logic.placement import (
    Placement,
    PlacementRegion,
    RoomRequest,
    replace_rooms,
)
from switchboard_operator.metrics import OperatorMetrics

log = logging.getLogger(__name__)

FAILOVER_CHECK_SECONDS = 0.5
NOTICE_DELAY_SECONDS = 10.0
"""The longest a Migrating Event waits for the Room reconciler to be idle (a busy one never
starves it): until then, every moved room's new status is written before an Event
competes with it."""


class FailoverReconciler:
    def __init__(
        self,
        api: client.ApiClient,
        cache: ClusterCache,
        picture: CapacityPicture,
        *,
        trigger_room: Callable[[str], None],
        room_writes_idle: Callable[[], Awaitable[None]],
        ready: Callable[[], bool],
        term_start: Callable[[], float | None],
        timing: LeaseTiming | None = None,
        metrics: OperatorMetrics | None = None,
    ) -> None:
        """`term_start`: when this term first acknowledged a report (`time.time()`; None:
        not yet, so no pod can be silent in it); `ready`: whether placements are restored
        and this replica acts."""
        self._api = api
        self._cache = cache
        self._picture = picture
        self._trigger_room = trigger_room
        self._room_writes_idle = room_writes_idle
        self._term_start = term_start
        self._timing = timing or LeaseTiming()
        self._metrics = metrics or OperatorMetrics()
        self._periodic = Periodic("failover", FAILOVER_CHECK_SECONDS, self.run, when=ready)
        self._notices: asyncio.Queue[tuple[float, Mapping[str, Any], str]] = asyncio.Queue()
        """Warning Events about moved rooms (monotonic time queued, Room, message)."""
        self._poster: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._periodic.start()
        self._poster = asyncio.create_task(self._post_notices(), name="failover-notices")

    async def stop(self) -> None:
        await self._periodic.stop()
        if self._poster is not None:
            self._poster.cancel()
            await asyncio.gather(self._poster, return_exceptions=True)

    def pod_lost(self) -> None:
        """A watch event or a report showed a pod lost: fail over now, not at the next tick."""
        self._periodic.wake()

    async def run(self) -> None:
        now = time.time()
        term_start = self._term_start()
        silent = (
            set()
            if term_start is None
            else silent_pods(self._picture, term_start, now, self._timing)
        )
        moves = rooms_to_move(
            self._picture, now, silent, unconfirmed_timeout=self._timing.failover_timeout_seconds
        )
        if not moves:
            return
        self._count(moves)
        regions = self._cache.regions()
        requests = {}
        for move in moves:
            body = self._cache.room(move.room)
            if body is None:
                continue
            try:
                room = self._cache.read_room(body)
            except pydantic.ValidationError:
                continue
            labels = self._cache.namespace_labels(room.metadata.namespace or "")
            requests[move.room] = RoomRequest.for_room(
                room, self._picture.model, namespace_labels=labels
            )
        replacements = replace_rooms(
            self._picture,
            moves,
            requests,
            [PlacementRegion.of(r) for r in regions.values()],
            now,
        )
        for replacement in replacements:
            if isinstance(replacement.decision, Placement):
                self._metrics.placed(replacement.decision.region, None)
            self._trigger_room(replacement.room)
            body = self._cache.room(replacement.room)
            if body is not None:
                self._notices.put_nowait((time.monotonic(), body, replacement.message))
        log.info("rooms re-placed count=%d", len(replacements))

    def _count(self, moves: list[RoomToMove]) -> None:
        """Each pod the moves leave, once per pass: its Region, why, and its rooms."""
        lost: dict[tuple[str, str, str], int] = {}
        for move in moves:
            state = self._picture.incarnation(move.placed.pod, move.placed.pod_uid)
            pod = (state.region if state is not None else "", move.placed.pod, move.reason.value)
            lost[pod] = lost.get(pod, 0) + 1
        for (region, _, reason), rooms in lost.items():
            self._metrics.pod_lost(region, reason, rooms)

    async def _post_notices(self) -> None:
        """Post the Events about moved rooms, a few at a time, once the Room reconciler is
        idle (the moves' status writes go first) or the oldest has waited long enough."""
        while True:
            batch = [await self._notices.get()]
            while len(batch) < events.CONCURRENCY and not self._notices.empty():
                batch.append(self._notices.get_nowait())
            left = batch[0][0] + NOTICE_DELAY_SECONDS - time.monotonic()
            if left > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._room_writes_idle(), left)
            await asyncio.gather(
                *(
                    events.post(self._api, body, "Warning", "Migrating", message)
                    for _, body, message in batch
                )
            )
