"""The optional rebalance policy at the I/O edge: in Regions that turn it on
(`spec.sfu.rebalance`), hot SFU pods shed rooms that are still empty to cooler pods.

A pass decides and applies its moves in one synchronous step on the scheduler's picture;
the Room reconciler then writes each moved Room's status (one write per move), and the
old pod learns from its next report response that the room left (`room-moved`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes_asyncio import client

from switchboard_api.region import Region
from switchboard_api.room import RoomPhase
from switchboard_operator.adapters import events
from switchboard_operator.logic.capacity import CapacityPicture
from switchboard_operator.logic.placement import (
    Move,
    MoveLimiter,
    PlacementRegion,
    apply_moves,
    rebalance,
)

log = logging.getLogger(__name__)

REBALANCE_CHECK_SECONDS = 5.0
"""How often hot pods are looked for: a few reports apart, so a pass sees fresh load."""
EVENT_REASON = "Rebalanced"

RoomBody = Callable[[str], Mapping[str, Any] | None]


@dataclass
class Rebalancer:
    """Moves empty rooms off hot pods, no faster than each Region's `maxMovesPerMinute`."""

    limiter: MoveLimiter = field(default_factory=MoveLimiter)

    async def run(
        self,
        api: client.ApiClient,
        picture: CapacityPicture,
        regions: Mapping[str, Region],
        room_body: RoomBody,
        trigger: Callable[[str], None],
    ) -> list[Move]:
        """One pass: move, queue each moved Room for its status write, then post Events."""
        moves = self.apply(picture, regions, room_body, time.time())
        # Every moved room goes to the queue before any Event (no await in between).
        for move in moves:
            trigger(move.room)
        if moves:
            log.info("rooms rebalanced count=%d", len(moves))
        limit = asyncio.Semaphore(events.CONCURRENCY)

        async def notify(move: Move) -> None:
            body = room_body(move.room)
            if body is None:
                return
            async with limit:
                await events.post(api, body, "Normal", EVENT_REASON, _message(move, regions))

        await asyncio.gather(*(notify(move) for move in moves))
        return moves

    def apply(
        self,
        picture: CapacityPicture,
        regions: Mapping[str, Region],
        room_body: RoomBody,
        now: float,
    ) -> list[Move]:
        """Decide each opted-in Region's moves and assign them, in one synchronous step."""
        enabled = {name: r for name, r in regions.items() if r.spec.sfu.rebalance.enabled}
        self.limiter.retain(enabled)
        applied: list[Move] = []
        for name, region in sorted(enabled.items()):
            policy = region.spec.sfu.rebalance
            allowance = self.limiter.allowance(name, policy.max_moves_per_minute, now)
            if allowance <= 0:
                continue
            suggested = rebalance(
                picture,
                [PlacementRegion.of(region)],
                now,
                threshold=policy.hot_threshold,
                max_moves=allowance,
            )
            # Skipping a suggestion leaves its target cooler than planned: the rest still fit.
            moves = [move for move in suggested if _movable(room_body(move.room))]
            apply_moves(picture, moves, now)
            self.limiter.record(name, len(moves), now)
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
