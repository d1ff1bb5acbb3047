"""Placement decisions: one room, or a batch from one consistent view of capacity in which
every placement is reserved before the next is decided."""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Sequence

from switchboard_operator.logic.capacity import CapacityPicture, PlacedRoom
from switchboard_operator.logic.placement.model import (
    Decision,
    Placement,
    PlacementRegion,
    PlacementSettings,
    RoomRequest,
    Unschedulable,
    UnschedulableReason,
    Waiting,
)
from switchboard_operator.logic.placement.pods import choose_pod, headroom
from switchboard_operator.logic.placement.regions import (
    nearest_first,
    region_order,
    starting_until,
)

DEFAULT_SETTINGS = PlacementSettings()


def place(
    request: RoomRequest,
    regions: Sequence[PlacementRegion],
    picture: CapacityPicture,
    now: float,
    *,
    settings: PlacementSettings = DEFAULT_SETTINGS,
    exclude: Collection[str] = (),
    wait: bool = True,
) -> Decision:
    """Decide where a room goes, without reserving it (see `commit` and `place_many`).

    Tries the regions in `region_order`; the first with a pod that takes the room wins,
    so a full region spills to the next nearest. A region whose pods are still starting
    (`starting_until`) is waited for instead when it is the room's pinned or nearest
    region, or when no region has room at all; `wait=False` never waits. Pods whose keys
    are in `exclude` are never chosen. Deterministic: the same picture and request give
    the same decision.
    """
    return _decide(
        request,
        regions,
        picture,
        now,
        settings=settings,
        exclude=exclude,
        refused=None,
        wait=wait,
    )


def _decide(
    request: RoomRequest,
    regions: Sequence[PlacementRegion],
    picture: CapacityPicture,
    now: float,
    *,
    settings: PlacementSettings,
    exclude: Collection[str],
    refused: dict[str, float] | None,
    wait: bool,
) -> Decision:
    # `refused` maps a region to the smallest reservation it could not take. Within one
    # batch load only grows, so a region that refused r refuses every room of r or more:
    # spilling rooms skip full regions without scanning them again.
    order = region_order(request, regions, picture, now)
    if isinstance(order, Unschedulable):
        return order
    own_first = wait and nearest_first(request, regions)
    waiting: Waiting | None = None
    for index, region in enumerate(order):
        skip = refused is not None and request.reservation >= refused.get(region.name, math.inf)
        if not skip:
            pod = choose_pod(
                picture,
                region,
                request.reservation,
                now=now,
                search=settings.search,
                room=request.room,
                exclude=exclude,
            )
            if pod is not None:
                spilled = index > 0 and nearest_first(request, regions)
                return Placement(
                    room=request.room,
                    region=region.name,
                    pod=pod.key,
                    pod_uid=pod.uid,
                    reservation=request.reservation,
                    home=order[0].name if spilled else None,
                )
            if refused is not None:
                refused[region.name] = request.reservation
        # No room here. A starting region is waited for at once if it is the room's own
        # (pinned or nearest); any other only if no region has room.
        if wait and waiting is None:
            until = starting_until(picture, region, now)
            if until is not None:
                own = own_first and index == 0
                waiting = _waiting(request, region, until, own=own)
                if own:
                    return waiting
    if waiting is not None:
        return waiting
    return _no_capacity(request, order, picture, now, exclude)


def _waiting(request: RoomRequest, region: PlacementRegion, until: float, *, own: bool) -> Waiting:
    if request.region is not None:
        which = "its pinned Region"
    elif own:
        which = "its nearest Region"
    else:
        which = "Region"
    return Waiting(
        room=request.room,
        region=region.name,
        message=f"waiting for SFU pods of {which} {region.name!r} to start",
        recheck_at=until,
        reservation=request.reservation,
    )


def commit(picture: CapacityPicture, placement: Placement, now: float) -> PlacedRoom:
    """Reserve a decided placement in the picture. Call it in the same synchronous step
    as `place`, so that no other decision sees the picture in between."""
    return picture.assign(
        placement.room,
        placement.reservation,
        pod=placement.pod,
        pod_uid=placement.pod_uid,
        now=now,
        home=placement.home,
    )


def place_many(
    requests: Iterable[RoomRequest],
    regions: Sequence[PlacementRegion],
    picture: CapacityPicture,
    now: float,
    settings: PlacementSettings = DEFAULT_SETTINGS,
) -> list[Decision]:
    """Place and reserve rooms in the order given, one decision per request.

    Each placement is committed before the next is decided, so two rooms never both
    take a pod's last room. A room that is already placed keeps its pod (idempotent).
    """
    decisions: list[Decision] = []
    refused: dict[str, float] = {}
    for request in requests:
        existing = picture.placement_of(request.room)
        if existing is not None:
            decisions.append(_existing(existing, picture))
            continue
        decision = _decide(
            request,
            regions,
            picture,
            now,
            settings=settings,
            exclude=(),
            refused=refused,
            wait=True,
        )
        if isinstance(decision, Placement):
            commit(picture, decision, now)
        decisions.append(decision)
    return decisions


def _existing(placed: PlacedRoom, picture: CapacityPicture) -> Placement:
    state = picture.incarnation(placed.pod, placed.pod_uid)
    return Placement(
        room=placed.room,
        region=state.region if state is not None else "",
        pod=placed.pod,
        pod_uid=placed.pod_uid,
        reservation=placed.reservation,
    )


def _no_capacity(
    request: RoomRequest,
    order: Sequence[PlacementRegion],
    picture: CapacityPicture,
    now: float,
    exclude: Collection[str],
) -> Unschedulable:
    taking = 0
    most = 0.0
    for region in order:
        for pod in picture.region_pods(region.name):
            if picture.takes_rooms(pod, now) and pod.key not in exclude:
                taking += 1
                most = max(most, headroom(pod, region.high_water_mark))
    names = ", ".join(r.name for r in order)
    home = order[0].name if order else None
    needs = f"the room reserves {request.reservation:g} units"
    if taking == 0:
        available = "no SFU pod there takes new rooms (none Ready with a fresh report)"
    else:
        available = f"{taking} pod(s) take new rooms, with at most {most:.3g} units free"
    if request.region is not None:
        return Unschedulable(
            request.room,
            UnschedulableReason.REGION_FULL,
            f"pinned Region {names!r} is full: {needs}; {available}",
            home=home,
            reservation=request.reservation,
        )
    return Unschedulable(
        request.room,
        UnschedulableReason.NO_CAPACITY,
        f"no capacity in Regions {names}: {needs}; {available}",
        home=home,
        reservation=request.reservation,
    )
