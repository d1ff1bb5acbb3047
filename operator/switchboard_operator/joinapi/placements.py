"""The join API's view of the control plane (its `RoomPlacements` port): rooms from the
cache and the capacity picture, placements answered by the Room reconciler, TURN access
from the Region reconciler, and the signing keys."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

from kubernetes_asyncio import client

from switchboard_api.contract import room_key
from switchboard_api.geo import GeoLocation
from switchboard_operator.cache import ClusterCache
from switchboard_operator.joinapi.port import (
    NamespaceNotFound,
    PlacedRoomInfo,
    PlacementTimeout,
    RoomNotFound,
    RoomUnschedulable,
)
from switchboard_operator.kit.waiters import Waiters
from switchboard_operator.kube.client import NamespaceMissing, create_room
from switchboard_operator.logic.capacity import CapacityPicture
from switchboard_operator.logic.join_key_ring import JoinKeyRing
from switchboard_operator.logic.leader_election import Leadership
from switchboard_operator.logic.placement import Unschedulable
from switchboard_operator.logic.room_lifecycle import RoomAnswer
from switchboard_operator.logic.room_status import PlacedOn
from switchboard_operator.logic.turn_rotation import TurnAccess


class ControlPlanePlacements:
    def __init__(
        self,
        api: client.ApiClient,
        cache: ClusterCache,
        picture: CapacityPicture,
        answers: Waiters[RoomAnswer],
        *,
        trigger_room: Callable[[str], None],
        restored: asyncio.Event,
        turn_access: Callable[[str], TurnAccess | None],
        join_keys: JoinKeyRing,
        leadership: Leadership,
    ) -> None:
        self._leadership = leadership
        self._api = api
        self._cache = cache
        self._picture = picture
        self._answers = answers
        self._trigger_room = trigger_room
        self._restored = restored
        self._turn_access = turn_access
        self._join_keys = join_keys

    async def ensure_placed(
        self,
        namespace: str,
        name: str,
        *,
        create: bool,
        max_participants: int | None,
        location: GeoLocation | None,
        region_hint: str | None,
        timeout: float,  # noqa: ASYNC109 - the port's contract
    ) -> PlacedRoomInfo:
        key = room_key(namespace, name)
        started = time.monotonic()
        try:
            await asyncio.wait_for(self._restored.wait(), timeout)
        except TimeoutError:
            raise PlacementTimeout("the control plane is still starting") from None
        timeout -= time.monotonic() - started
        body = self._cache.room(key)
        if body is None:
            if not create:
                raise RoomNotFound(key)
            spec: dict[str, Any] = {}
            if max_participants is not None:
                spec["maxParticipants"] = max_participants
            if location is not None:
                spec["location"] = location.model_dump(by_alias=True)
            try:
                await create_room(self._api, namespace, name, spec)
            except NamespaceMissing:
                raise NamespaceNotFound(namespace) from None
        placed = self._picture.placement_of(key)
        if placed is not None and body is not None:
            status = body.get("status") or {}
            if status.get("podUID") == placed.pod_uid and status.get("endpoint"):
                return PlacedRoomInfo(
                    key, status.get("region", ""), status["pod"], placed.pod_uid, status["endpoint"]
                )
        try:
            answer = await self._answers.wait(key, timeout, then=lambda: self._trigger_room(key))
        except TimeoutError:
            raise PlacementTimeout(f"room {key} was not placed within {timeout:g}s") from None
        if isinstance(answer, PlacedOn):
            return PlacedRoomInfo(key, answer.region, answer.pod, answer.pod_uid, answer.endpoint)
        if isinstance(answer, Unschedulable):
            raise RoomUnschedulable.of(answer)
        raise RoomNotFound(key)

    def turn_for_region(self, region: str) -> TurnAccess | None:
        return self._turn_access(region)

    def join_keys(self) -> JoinKeyRing:
        return self._join_keys

    def acting_term(self) -> int | None:
        return self._leadership.term if self._leadership.acting() else None

    def held_join_keys(self, placed: PlacedRoomInfo) -> Sequence[str] | None:
        spec = (self._cache.region_body(placed.region) or {}).get("spec") or {}
        state = self._picture.incarnation(f"{spec.get('namespace')}/{placed.pod}", placed.pod_uid)
        return None if state is None else state.join_key_ids
