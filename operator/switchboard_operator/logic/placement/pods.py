"""Pod choice inside one region: LeastLoaded spreads, Packed fills the fullest pod that
still fits; by exact scan or by two seeded random choices with a scan as fallback."""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence

from switchboard_api.region import PlacementPolicy
from switchboard_operator.logic.capacity import FIT_TOLERANCE, CapacityPicture, PodState
from switchboard_operator.logic.placement.model import PlacementRegion, PodSearch


def choose_pod(
    picture: CapacityPicture,
    region: PlacementRegion,
    reservation: float,
    *,
    now: float,
    search: PodSearch,
    room: str,
    exclude: Collection[str] = (),
) -> PodState | None:
    """The region's pod for a room of `reservation` units, or None if none takes it.

    Only pods that take new rooms (CapacityPicture.takes_rooms) and whose admission limit
    holds the reservation are candidates. Ties go to the pod whose key sorts first.
    """
    pods = picture.region_pods(region.name)
    packed = region.policy == PlacementPolicy.PACKED
    fresh_since = now - picture.model.report_freshness_seconds
    if search == PodSearch.TWO_CHOICES and len(pods) > 2:
        chosen = _better_of_two(
            pods,
            region=region,
            reservation=reservation,
            fresh_since=fresh_since,
            packed=packed,
            room=room,
            exclude=exclude,
        )
        if chosen is not None:
            return chosen
    return _scan(
        pods,
        high_water_mark=region.high_water_mark,
        reservation=reservation,
        fresh_since=fresh_since,
        packed=packed,
        exclude=exclude,
    )


def headroom(state: PodState, high_water_mark: float) -> float:
    """Units a new room may reserve on the pod."""
    return state.admission_limit(high_water_mark) - state.used


def _scan(
    pods: Sequence[PodState],
    *,
    high_water_mark: float,
    reservation: float,
    fresh_since: float,
    packed: bool,
    exclude: Collection[str],
) -> PodState | None:
    # The hot loop of placement: PodState fields are read directly rather than through
    # its properties, which would cost a call per pod.
    best: PodState | None = None
    best_utilization = 0.0
    for pod in pods:
        if not pod.open or (pod.reported_at or 0.0) < fresh_since or pod.capacity <= 0:
            continue
        used = pod.baseline + pod.reserved
        limit = pod.capacity * high_water_mark if pod.rooms or used > 0 else pod.capacity
        if used + reservation > limit + FIT_TOLERANCE or pod.key in exclude:
            continue
        utilization = used / pod.capacity
        if best is None or (
            utilization > best_utilization if packed else utilization < best_utilization
        ):
            best, best_utilization = pod, utilization
    return best


def _better_of_two(
    pods: Sequence[PodState],
    *,
    region: PlacementRegion,
    reservation: float,
    fresh_since: float,
    packed: bool,
    room: str,
    exclude: Collection[str],
) -> PodState | None:
    # Seeded by the room key, so the same room on the same pods samples the same pair.
    digest = hashlib.blake2b(room.encode(), digest_size=16).digest()
    count = len(pods)
    first = int.from_bytes(digest[:8]) % count
    second = int.from_bytes(digest[8:]) % (count - 1)
    if second >= first:
        second += 1
    pair = sorted((pods[first], pods[second]), key=lambda p: p.key)
    return _scan(
        pair,
        high_water_mark=region.high_water_mark,
        reservation=reservation,
        fresh_since=fresh_since,
        packed=packed,
        exclude=exclude,
    )
