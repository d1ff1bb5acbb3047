"""The optional rebalance reconciler: in Regions that turn it on (`spec.sfu.rebalance`), hot
SFU pods shed rooms that are still empty to cooler pods, no faster than each Region's
`maxMovesPerMinute`.

A pass decides and applies its moves in the capacity picture in one synchronous step; the
Room reconciler then writes each moved Room's status (one write per move), and the old
pod learns from its next report response that the room left (`room-moved`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes_asyncio import client

from switchboard_api.region import Region
from switchboard_api.room import RoomPhase
from switchboard_operator.cache import ClusterCache
from switchboard_operator.kit.ticker import Periodic
from switchboard_operator.kube import events
from switchboard_operator.logic.capacity import CapacityPicture
from switchboard_operator.logic.placement import (
    Move,
    MoveLimiter,
    PlacementRegion,
    apply_moves,
    rebalance,
)
from switchboard_operator.metrics import OperatorMetrics

log = logging.getLogger(__name__)

REBALANCE_CHECK_SECONDS = 5.0
"""How often hot pods are looked for: a few reports apart, so a pass sees fresh load."""
EVENT_REASON = "Rebalanced"


class RebalanceReconciler:
    def __init__(
        self,
        api: client.ApiClient,
        cache: ClusterCache,
        picture: CapacityPicture,
        *,
        trigger_room: Callable[[str], None],
        ready: Callable[[], bool],
        metrics: OperatorMetrics | None = None,
    ) -> None:
        self._api = api
        self._cache = cache
        self._picture = picture
        self._trigger_room = trigger_room
        self._metrics = metrics or OperatorMetrics()
        self._limiter = MoveLimiter()
        self._periodic = Periodic("rebalance", REBALANCE_CHECK_SECONDS, self.run, when=ready)

    def start(self) -> None:
        self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()

    async def run(self) -> None:
        """One pass: move, queue each moved Room for its status write, then post Events."""
        regions = self._cache.regions()
        moves = self.apply(regions, time.time())
        # Every moved room goes to the queue before any Event (no await in between).
        for move in moves:
            self._metrics.rooms_moved(move.target.region)
            self._metrics.placed(move.target.region, None)
            self._trigger_room(move.room)
        if moves:
            log.info("rooms rebalanced count=%d", len(moves))
        limit = asyncio.Semaphore(events.CONCURRENCY)

        async def notify(move: Move) -> None:
            body = self._cache.room(move.room)
            if body is None:
                return
            async with limit:
                await events.post(self._api, body, "Normal", EVENT_REASON, _message(move, regions))

        await asyncio.gather(*(notify(move) for move in moves))

    def apply(self, regions: Mapping[str, Region], now: float) -> list[Move]:
        """Decide each opted-in Region's moves and apply them, in one synchronous step."""
        enabled = {name: r for name, r in regions.items() if r.spec.sfu.rebalance.enabled}
        self._limiter.retain(enabled)
        applied: list[Move] = []
        for name, region in sorted(enabled.items()):
            policy = region.spec.sfu.rebalance
            allowance = self._limiter.allowance(name, policy.max_moves_per_minute, now)
            if allowance <= 0:
                continue
            suggested = rebalance(
                self._picture,
                [PlacementRegion.of(region)],
                now,
                threshold=policy.hot_threshold,
                max_moves=allowance,
            )
            # Skipping a suggestion leaves its target cooler than planned: the rest still fit.
            moves = [move for move in suggested if _movable(self._cache.room(move.room))]
            apply_moves(self._picture, moves, now)
            self._limiter.record(name, len(moves), now)
            applied += moves
        return applied


def _movable(body: Mapping[str, Any] | None) -> bool:
    """A Room that is gone, being deleted or closed is released by its reconcile instead."""
    if body is None or body["metadata"].get("deletionTimestamp"):
        return False
    return (body.get("status") or {}).get("phase") != RoomPhase.CLOSED.value


def _message(move: Move, regions: Mapping[str, Region]) -> str:
    region = regions.get(move.target.region)
    sfu = region.spec.sfu if region is not None else None
    threshold = (sfu.rebalance.hot_threshold or sfu.high_water_mark) if sfu is not None else None
    above = f" above {threshold:.0%} of its capacity" if threshold is not None else ""
    source = move.source.pod.split("/", 1)[1]
    return (
        f"Moved from SFU pod {source} to {move.target.pod_name}: the room was empty and "
        f"{source} was{above}."
    )
