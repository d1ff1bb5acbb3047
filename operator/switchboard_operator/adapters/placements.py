"""The join API's view of the control plane (its `RoomPlacements` port), over the scheduler
and the Region reconciler."""

from __future__ import annotations

from switchboard_api.geo import GeoLocation
from switchboard_operator.adapters.joinapi.port import PlacedRoomInfo, TurnAccess
from switchboard_operator.adapters.joinkeys import JoinKeys
from switchboard_operator.adapters.region_controller import RegionRuntime
from switchboard_operator.adapters.scheduling import Scheduler


class ControlPlanePlacements:
    def __init__(self, scheduler: Scheduler, regions: RegionRuntime) -> None:
        self._scheduler = scheduler
        self._regions = regions

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
        return await self._scheduler.ensure_placed(
            namespace,
            name,
            create=create,
            max_participants=max_participants,
            location=location,
            region_hint=region_hint,
            timeout=timeout,
        )

    def turn_for_region(self, region: str) -> TurnAccess | None:
        return self._regions.turn_access.get(region)

    def join_keys(self) -> JoinKeys:
        return self._regions.join_keys
