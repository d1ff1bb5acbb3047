"""A Room's lifecycle as one pure decision: from what the Room says, what the control plane
remembers of it and the capacity picture, decide where it is (restored, placed, waiting,
migrating, unschedulable, closed), what its status must become, which Event to post, and
what to tell a join request waiting for it.

The Room reconciler reads the Room from the cache, calls `decide_room`, and carries the
decision out: picture changes first (in the same synchronous step, so two rooms never take
one slot), then the Event and the one status write.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pydantic

from switchboard_api import defaults
from switchboard_api.region import Region
from switchboard_api.room import Room, RoomConditionType, RoomPhase
from switchboard_operator.logic import manifests
from switchboard_operator.logic.capacity import (
    CapacityPicture,
    Displacement,
    PlacedRoom,
    RoomMeasurement,
)
from switchboard_operator.logic.notices import Notice
from switchboard_operator.logic.observation import status_patch
from switchboard_operator.logic.placement import (
    Decision,
    Placement,
    PlacementRegion,
    RoomRequest,
    Unschedulable,
    Waiting,
    place,
)
from switchboard_operator.logic.room_status import PlacedOn, RoomOutcome, room_status
from switchboard_operator.logic.timestamps import format_time, parse_time

PodAddress = Callable[[str, str], str | None]
"""The IP of an SFU pod (region name, pod name), as the Pod watch shows it, or None."""
ReadRoom = Callable[[Mapping[str, Any]], Room]
"""How a Room body is read (pydantic's ValidationError if it cannot be)."""


@dataclass(frozen=True)
class RoomMemory:
    """What the control plane remembers about a room between reconciles (not in its status)."""

    pending: bool = False
    """It waits for capacity: retried whenever capacity may have appeared."""
    announced: str | None = None
    """The Unschedulable reason last posted as an Event (posted once per reason)."""
    closed_at: str | None = None
    """Closed by this control plane; its status may not show it yet."""

    @property
    def empty(self) -> bool:
        return self == NOTHING_REMEMBERED


NOTHING_REMEMBERED = RoomMemory()


@dataclass(frozen=True)
class Assignment:
    """Put the room on a pod incarnation in the capacity picture."""

    pod: str
    pod_uid: str
    reservation: float
    placed_at: float | None = None
    """When it was first placed (restored from the Room's status); None: now."""
    home: str | None = None
    """Its own region, when it spilled from there because that one was full."""

    def placed_room(self, room: str, now: float) -> PlacedRoom:
        placed_at = now if self.placed_at is None else self.placed_at
        return PlacedRoom(room, self.reservation, self.pod, self.pod_uid, placed_at)


@dataclass(frozen=True)
class RoomGone:
    """The Room was deleted: a join request waiting for it gets no placement."""


RoomAnswer = PlacedOn | Unschedulable | RoomGone
"""What a join request waiting for the room's placement is told."""


@dataclass(frozen=True)
class RoomDecision:
    memory: RoomMemory
    release: bool = False
    """Take the room off the capacity picture (closed or gone)."""
    assign: Assignment | None = None
    """Put it on a pod (restored from its status, or newly placed)."""
    placement: Decision | None = None
    """What placement decided, when it was asked (for the log)."""
    notice: Notice | None = None
    """An Event to post before the status write."""
    status: Mapping[str, Any] = field(default_factory=dict)
    """The status fields to write (a JSON merge patch); empty: nothing to write."""
    placed: PlacedOn | None = None
    """Where the room is served after this pass."""
    answer: RoomAnswer | None = None
    """For join requests waiting for the room; None: they keep waiting."""
    requeue_after: float | None = None
    delete: bool = False
    """Its time to live after closing is over: delete the Room."""
    unreadable: str | None = None
    """Why the Room cannot be read (nothing else is decided)."""


def decide_room(
    body: Mapping[str, Any] | None,
    memory: RoomMemory,
    *,
    picture: CapacityPicture,
    regions: Mapping[str, Region],
    namespace_labels: Mapping[str, str],
    pod_address: PodAddress,
    now: float,
    read: ReadRoom = Room.model_validate,
) -> RoomDecision:
    """One reconcile of one Room, from its body in the cache (None: it is gone)."""
    if body is None or body["metadata"].get("deletionTimestamp"):
        # A missing body may be a Room the join API just created and the watch has not
        # delivered yet: join requests waiting for it keep waiting until it arrives.
        gone = RoomGone() if body is not None else None
        return RoomDecision(memory=NOTHING_REMEMBERED, release=True, answer=gone)
    try:
        room = read(body)
    except pydantic.ValidationError as error:
        return RoomDecision(memory=memory, unreadable=str(error))
    status = body.get("status") or {}
    one = _RoomPass(room, status, picture, regions, pod_address, now)
    placed = picture.placement_of(room.key)
    if status.get("phase") == RoomPhase.CLOSED.value or memory.closed_at:
        return one.closed(memory)
    if placed is not None:
        return one.close() if one.expired(placed) else one.on_pod(memory, placed)
    displaced = picture.displacement(room.key)
    restored = None if displaced else recorded_placement(room, status, regions, picture, now)
    if restored is not None:
        return one.on_pod(memory, restored.placed_room(room.key, now), assign=restored)
    return one.place(memory, namespace_labels, displaced)


def recorded_placement(
    room: Room,
    status: Mapping[str, Any],
    regions: Mapping[str, Region],
    picture: CapacityPicture,
    now: float,
) -> Assignment | None:
    """The placement a Room's status records, to take back as it was after a restart (with
    the time it was first placed), or None if it records none that can be restored."""
    pod, uid, region_name = status.get("pod"), status.get("podUID"), status.get("region")
    if not (pod and uid and region_name in regions):
        return None
    if status.get("phase") not in (RoomPhase.SCHEDULED.value, RoomPhase.RUNNING.value):
        return None
    scheduled = scheduled_condition(status)
    return Assignment(
        pod=f"{regions[region_name].spec.namespace}/{pod}",
        pod_uid=str(uid),
        reservation=picture.model.reservation(room.spec),
        placed_at=parse_time(scheduled.get("lastTransitionTime")) or now,
    )


def empty_for(
    measurement: RoomMeasurement, carried_since: float | None, now: float
) -> float | None:
    """Seconds a room has been empty: as its SFU reports, or since before rebalance moved
    it (the SFU it moved to counts from the move), whichever is longer."""
    empty = measurement.empty_since_seconds
    if measurement.participants > 0 or carried_since is None:
        return empty
    return max(empty or 0.0, now - carried_since)


def needs_reconcile(
    spec: Mapping[str, Any],
    status: Mapping[str, Any],
    measurement: RoomMeasurement,
    carried_since: float | None,
    now: float,
) -> bool:
    """Whether a placed room's latest report changes it: it has been empty past its
    timeout (it closes), or its participants differ from its status."""
    timeout = float(spec.get("emptyTimeoutSeconds", defaults.ROOM_EMPTY_TIMEOUT_SECONDS))
    empty = empty_for(measurement, carried_since, now)
    expired = empty is not None and empty >= timeout
    return expired or status.get("participants") != measurement.participants


def scheduled_condition(status: Mapping[str, Any]) -> Mapping[str, Any]:
    conditions = status.get("conditions") or []
    scheduled = RoomConditionType.SCHEDULED.value
    return next((c for c in conditions if c.get("type") == scheduled), {})


@dataclass(frozen=True)
class _RoomPass:
    """The facts of one reconcile of one Room, and the decisions made from them."""

    room: Room
    status: Mapping[str, Any]
    picture: CapacityPicture
    regions: Mapping[str, Region]
    pod_address: PodAddress
    now: float

    def place(
        self,
        memory: RoomMemory,
        namespace_labels: Mapping[str, str],
        displaced: Displacement | None,
    ) -> RoomDecision:
        """A room on no pod: placed now, or retried whenever capacity may have appeared.
        A displaced room has participants now: it never waits for pods that are starting."""
        request = RoomRequest.for_room(
            self.room, self.picture.model, namespace_labels=namespace_labels
        )
        candidates = [PlacementRegion.of(r) for r in self.regions.values()]
        decision = place(request, candidates, self.picture, self.now, wait=displaced is None)
        if isinstance(decision, Placement):
            assign = Assignment(
                decision.pod, decision.pod_uid, decision.reservation, home=decision.home
            )
            placed = assign.placed_room(self.room.key, self.now)
            decided = self.on_pod(NOTHING_REMEMBERED, placed, assign=assign)
            return replace(decided, placement=decision)
        pending = replace(memory, pending=True)
        if displaced is not None:
            outcome = RoomOutcome(migrating=(displaced.reason.value, displaced.message))
            return self.written(pending, outcome, placement=decision)
        if isinstance(decision, Waiting):
            # Its region's SFU pods are starting: it stays Pending, with no Event, and is
            # decided again when a pod turns Ready or reports, or when the grace runs out.
            return self.written(
                replace(pending, announced=None),
                RoomOutcome(waiting=(decision.reason, decision.message)),
                placement=decision,
                requeue_after=max(0.0, decision.recheck_at - self.now),
            )
        notice = None
        if memory.announced != decision.reason.value:
            notice = Notice("Warning", decision.reason.value, decision.message)
            pending = replace(pending, announced=decision.reason.value)
        return self.written(
            pending,
            RoomOutcome(unschedulable=(decision.reason.value, decision.message)),
            placement=decision,
            notice=notice,
            answer=decision,
        )

    def on_pod(
        self, memory: RoomMemory, placed: PlacedRoom, *, assign: Assignment | None = None
    ) -> RoomDecision:
        """A room served by a pod: its status names the pod, its endpoint and participants."""
        region = self._region_of_pod(placed.pod)
        region_name = (region.metadata.name or "") if region is not None else ""
        pod_name = placed.pod.split("/", 1)[1]
        endpoint = None
        if region is not None:
            address = self.pod_address(region_name, pod_name)
            try:
                endpoint = manifests.sfu_public_url(region, pod_name, address)
            except manifests.ManifestError:
                endpoint = None
        on = PlacedOn(
            region=region_name,
            pod=pod_name,
            pod_uid=placed.pod_uid,
            endpoint=endpoint,
            reservation=placed.reservation,
        )
        measurement = self._measurement(placed)
        if measurement is not None:
            participants = measurement.participants
        else:
            # Not reported by its pod yet (a restored placement, before the pod's first
            # report to this term): the count its pod last reported stands, so a takeover
            # writes nothing for rooms that did not move.
            participants = int(self.status.get("participants") or 0)
        outcome = RoomOutcome(placed=on, participants=participants)
        return self.written(memory, outcome, answer=on, assign=assign, placed=on)

    def expired(self, placed: PlacedRoom) -> bool:
        """Empty for longer than its empty timeout, by its pod's latest report."""
        measurement = self._measurement(placed)
        if measurement is None:
            return False
        empty = empty_for(measurement, self.picture.empty_since(self.room.key), self.now)
        return empty is not None and empty >= self.room.spec.empty_timeout_seconds

    def close(self) -> RoomDecision:
        timeout = self.room.spec.empty_timeout_seconds
        notice = Notice("Normal", "Closed", f"The room was empty for {timeout:g}s and is closed.")
        closed = self.closed(RoomMemory(closed_at=format_time(self.now)))
        return replace(closed, notice=notice)

    def closed(self, memory: RoomMemory) -> RoomDecision:
        """A closed room holds no capacity; once its time to live after closing is over,
        the Room is deleted."""
        closed_at = memory.closed_at or self.status.get("closedAt")
        decision = RoomDecision(memory=RoomMemory(closed_at=memory.closed_at), release=True)
        if memory.closed_at:
            decision = self.written(decision.memory, RoomOutcome(closed_at=closed_at), release=True)
        ttl = self.room.spec.ttl_seconds_after_closed
        if ttl is None or not closed_at:
            return decision
        due = (parse_time(closed_at) or self.now) + ttl
        if self.now < due:
            return replace(decision, requeue_after=due - self.now)
        return replace(decision, delete=True)

    def written(self, memory: RoomMemory, outcome: RoomOutcome, **decision: Any) -> RoomDecision:
        """The decision, with the status fields that `outcome` changes."""
        generation = self.room.metadata.generation
        desired = room_status(self.status, generation, outcome, format_time(self.now))
        return RoomDecision(memory=memory, status=status_patch(self.status, desired), **decision)

    def _measurement(self, placed: PlacedRoom) -> RoomMeasurement | None:
        state = self.picture.incarnation(placed.pod, placed.pod_uid)
        return state.measured.get(placed.room) if state is not None else None

    def _region_of_pod(self, pod: str) -> Region | None:
        state = self.picture.pod(pod)
        if state is not None and state.region in self.regions:
            return self.regions[state.region]
        namespace = pod.split("/", 1)[0]
        return next((r for r in self.regions.values() if r.spec.namespace == namespace), None)
