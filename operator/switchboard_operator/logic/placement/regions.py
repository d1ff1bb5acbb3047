"""Region choice: the pinned region, else admitted regions nearest first (great-circle
distance to the room's or client's location, or to a hinted region), else the regions with
the most free capacity first; and whether a region's SFU pods are still starting."""

from __future__ import annotations

import math
from collections.abc import Sequence

from switchboard_api.geo import GeoLocation
from switchboard_operator.logic.capacity import CapacityPicture
from switchboard_operator.logic.placement.geo import great_circle_km
from switchboard_operator.logic.placement.model import (
    PlacementRegion,
    RoomRequest,
    Unschedulable,
    UnschedulableReason,
)
from switchboard_operator.logic.placement.pods import headroom
from switchboard_operator.logic.placement.tenancy import selector_admits


def region_order(
    request: RoomRequest,
    regions: Sequence[PlacementRegion],
    picture: CapacityPicture,
    now: float,
) -> list[PlacementRegion] | Unschedulable:
    """The regions to try, best first, or why the room may go to none."""
    if request.region is not None:
        return _pinned(request, regions)
    admitted = [
        r for r in regions if selector_admits(r.namespace_selector, request.namespace_labels)
    ]
    if not admitted:
        return Unschedulable(
            request.room,
            UnschedulableReason.NO_REGION_ADMITS_NAMESPACE,
            f"no Region admits rooms of namespace {request.namespace!r}"
            if regions
            else "no Region exists",
        )
    if len(admitted) == 1:
        return admitted
    origin = _origin(request, regions)
    if origin is not None:
        return sorted(admitted, key=lambda r: (great_circle_km(origin, r.location), r.name))
    return sorted(admitted, key=lambda r: (-free_units(picture, r, now), r.name))


def free_units(picture: CapacityPicture, region: PlacementRegion, now: float) -> float:
    """Units the region's pods that take new rooms could still admit."""
    return math.fsum(
        max(0.0, headroom(pod, region.high_water_mark))
        for pod in picture.region_pods(region.name)
        if picture.takes_rooms(pod, now)
    )


def nearest_first(request: RoomRequest, regions: Sequence[PlacementRegion]) -> bool:
    """Whether the first region of `region_order` is the room's own: pinned or nearest.
    Only then does the room wait for that region when its pods are starting."""
    return request.region is not None or _origin(request, regions) is not None


def starting_until(picture: CapacityPicture, region: PlacementRegion, now: float) -> float | None:
    """Until when the region counts as starting, or None if it does not.

    Starting: some current pod of it has never taken rooms yet and is neither draining,
    fenced nor failed, and was first seen less than the startup grace ago; or the Region
    itself is younger than the grace and has fewer live pods than it wants (they are still
    being created). A region where a pod failed within the grace is not starting: it may be
    crash-looping, so nothing waits for it.
    """
    grace = picture.model.startup_grace_seconds
    failed_at = picture.last_failure(region.name)
    if failed_at is not None and now - failed_at < grace:
        return None
    deadlines = []
    live = 0
    for pod in picture.region_pods(region.name):
        if not (pod.failed or pod.draining or pod.retired is not None):
            live += 1
        deadline = picture.startup_deadline(pod)
        if deadline is not None and deadline > now:
            deadlines.append(deadline)
    if region.created_at is not None and live < region.wanted_pods:
        deadline = region.created_at + grace
        if deadline > now:
            deadlines.append(deadline)
    return min(deadlines) if deadlines else None


def _pinned(
    request: RoomRequest, regions: Sequence[PlacementRegion]
) -> list[PlacementRegion] | Unschedulable:
    region = next((r for r in regions if r.name == request.region), None)
    if region is None:
        return Unschedulable(
            request.room,
            UnschedulableReason.REGION_NOT_FOUND,
            f"the room is pinned to Region {request.region!r}, which does not exist",
        )
    if not selector_admits(region.namespace_selector, request.namespace_labels):
        return Unschedulable(
            request.room,
            UnschedulableReason.NAMESPACE_NOT_ADMITTED,
            f"the room is pinned to Region {region.name!r}, whose namespaceSelector does not "
            f"admit namespace {request.namespace!r}",
        )
    return [region]


def _origin(request: RoomRequest, regions: Sequence[PlacementRegion]) -> GeoLocation | None:
    if request.location is not None:
        return request.location
    hinted = next((r for r in regions if r.name == request.region_hint), None)
    return None if hinted is None else hinted.location
