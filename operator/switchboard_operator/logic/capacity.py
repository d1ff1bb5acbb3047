"""The capacity model and the capacity picture: what a room costs on an SFU pod, and what
every SFU pod has left, kept in memory from capacity reports and Pod watch events.

All quantities are in the contract's capacity unit; CAPACITY.md explains the model. Pure:
the caller passes the clock (`now`, seconds on one clock such as `time.time()`) and owns
the picture on one event loop (it is not thread-safe).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Final

from switchboard_api import defaults
from switchboard_api.contract import (
    AUDIO_STREAM_UNITS,
    MAX_REPORT_INTERVAL_SECONDS,
    CapacityReport,
    room_key,
)
from switchboard_api.room import RoomSpec

PARTICIPANT_OVERHEAD_UNITS: Final = AUDIO_STREAM_UNITS
"""Fixed cost of one connected participant (ICE, DTLS/SRTP, RTCP, signalling), about one
forwarded audio stream. It also keeps a one-participant room from costing nothing."""

REPORT_FRESHNESS_SECONDS: Final = 2 * MAX_REPORT_INTERVAL_SECONDS
"""A pod takes new rooms only if its last report arrived at most this long ago: one lost
report does not take it out of placement."""

RESERVATION_HOLD_SECONDS: Final = 60.0
"""For this long after placement a room counts at least its full reservation, because its
participants are still arriving."""

RETAINED_FRACTION: Final = defaults.SFU_HIGH_WATER_MARK
"""Share of a mature room's unused reservation that still counts. Equal to the default
high-water mark, so pods admitted up to that mark stay within capacity even if every room
grows back to its full reservation."""

_RETIRED_MEMORY: Final = 10_000
"""Retired pod incarnations remembered so that their late reports are refused."""

FIT_TOLERANCE: Final = 1e-9
"""Slack for float sums when comparing load with a limit."""

SFU_STARTUP_GRACE_SECONDS: Final = 120.0
"""How long placement waits for a new SFU pod (or a new Region's first pods) to start
taking rooms: the SFU startup probe's 60 s plus time to schedule the pod and pull its
image. A pod that is not up by then is not waited for (CAPACITY.md, "Waiting")."""


@dataclass(frozen=True, slots=True)
class CapacityModel:
    """The capacity model's constants (CAPACITY.md justifies the defaults)."""

    participant_overhead: float = PARTICIPANT_OVERHEAD_UNITS
    report_freshness_seconds: float = REPORT_FRESHNESS_SECONDS
    reservation_hold_seconds: float = RESERVATION_HOLD_SECONDS
    retained_fraction: float = RETAINED_FRACTION
    startup_grace_seconds: float = SFU_STARTUP_GRACE_SECONDS

    def reservation(self, spec: RoomSpec) -> float:
        """Units a room reserves: its forwarded streams at its busiest, plus the fixed
        cost of each participant it admits."""
        overhead = self.participant_overhead * spec.max_participants
        return round(spec.reservation_units() + overhead, 3)

    def measured_cost(self, load: float, participants: int) -> float:
        """Units a room or pod uses now, by the same model as the reservation."""
        return load + self.participant_overhead * participants

    def effective(self, reservation: float, measured: float | None, age: float) -> float:
        """Units a placed room counts against its pod.

        Unmeasured: its reservation. Young (placed less than the hold ago): the larger of
        the two. Mature: what it uses plus `retained_fraction` of what it does not.
        """
        if measured is None:
            return reservation
        if age < self.reservation_hold_seconds:
            return max(measured, reservation)
        return measured + self.retained_fraction * max(0.0, reservation - measured)


@dataclass(frozen=True, slots=True)
class PodObservation:
    """What the Pod watch says about one SFU pod."""

    namespace: str
    name: str
    uid: str
    region: str
    ready: bool
    draining: bool = False
    """Marked for draining (annotation or scale-down): it takes no new rooms."""
    drain_deadline: float | None = None
    """When draining, the time by which its remaining rooms must have moved."""
    failed: bool = False
    """Its SFU process ended (phase Failed or Succeeded): it will never take rooms."""

    @property
    def key(self) -> str:
        return pod_key(self.namespace, self.name)


class LossReason(StrEnum):
    """Why the rooms of a pod incarnation must move elsewhere."""

    REPORTS_MISSING = "ReportsMissing"
    """No report for longer than the failover timeout."""
    POD_DELETED = "PodDeleted"
    """The Pod object was deleted."""
    NEW_INCARNATION = "NewIncarnation"
    """A pod with the same name but another UID replaced it."""
    FENCED = "Fenced"
    """It reports being fenced: it has already told its participants to migrate."""
    DRAIN_DEADLINE = "DrainDeadline"
    """It is draining and its drain deadline has passed (moves rooms, not a loss)."""


@dataclass(frozen=True, slots=True)
class PlacedRoom:
    """A room assigned to one pod incarnation."""

    room: str
    reservation: float
    pod: str
    pod_uid: str
    placed_at: float


@dataclass(frozen=True, slots=True)
class RoomMeasurement:
    """A room's usage in its pod's latest accepted report."""

    cost: float
    participants: int
    empty_since_seconds: float | None


@dataclass(frozen=True, slots=True)
class LostPod:
    """A pod incarnation whose rooms must be re-placed."""

    pod: str
    uid: str
    region: str
    reason: LossReason
    rooms: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RoomToMove:
    """One room that must leave its pod, and why."""

    placed: PlacedRoom
    reason: LossReason

    @property
    def room(self) -> str:
        return self.placed.room


@dataclass(frozen=True, slots=True)
class ReportOutcome:
    """What applying a capacity report did."""

    accepted: bool
    reason: str = ""
    """Why a report was refused."""
    new_incarnation: bool = False
    """The report came from a new UID for this pod name: the previous one is lost."""
    capacity_freed: bool = False
    """The pod now takes new rooms and has more room than before: retry pending rooms."""
    strays: tuple[str, ...] = ()
    """Rooms the pod reported that are not placed on it (closed or moved elsewhere)."""


@dataclass(eq=False, slots=True)
class PodState:
    """One incarnation (name + UID) of an SFU pod. Read-only outside this module."""

    key: str
    uid: str
    first_seen_at: float
    region: str = ""
    confirmed: bool = False
    """Seen by the Pod watch or a report (not only named by a restored Room status)."""
    retired: LossReason | None = None
    ready: bool = False
    pod_draining: bool = False
    drain_deadline: float | None = None
    report_draining: bool = False
    fenced: bool = False
    open: bool = False
    """Takes new rooms if its last report is also fresh (see CapacityPicture.takes_rooms)."""
    opened: bool = False
    """Has been open at least once: it has started, so it is no longer waited for."""
    failed: bool = False
    capacity: float = 0.0
    reported_at: float | None = None
    sequence: int = -1
    sent_at: datetime | None = None
    load: float = 0.0
    participants: int = 0
    cpu_cores: float = 0.0
    baseline: float = 0.0
    """Measured load not attributed to any room placed here."""
    reserved: float = 0.0
    """Sum of `effective` over the rooms placed here."""
    rooms: dict[str, PlacedRoom] = field(default_factory=dict)
    effective: dict[str, float] = field(default_factory=dict)
    measured: dict[str, RoomMeasurement] = field(default_factory=dict)

    @property
    def draining(self) -> bool:
        return self.pod_draining or self.report_draining

    @property
    def used(self) -> float:
        """Units counted against the pod: unattributed measured load plus its rooms."""
        return self.baseline + self.reserved

    @property
    def free(self) -> float:
        return self.capacity - self.used

    @property
    def utilization(self) -> float:
        return self.used / self.capacity if self.capacity > 0 else math.inf

    def admission_limit(self, high_water_mark: float) -> float:
        """Units the pod may hold after taking a new room.

        The high-water mark caps a pod that already carries rooms or load; an idle pod
        takes any room up to its capacity, so a room larger than the mark still fits.
        """
        if self.rooms or self.used > 0:
            return self.capacity * high_water_mark
        return self.capacity

    def fits(self, reservation: float, high_water_mark: float) -> bool:
        return self.used + reservation <= self.admission_limit(high_water_mark) + FIT_TOLERANCE

    def _refresh_open(self) -> None:
        self.open = (
            self.confirmed
            and self.retired is None
            and self.ready
            and not self.draining
            and not self.fenced
            and self.reported_at is not None
        )
        self.opened = self.opened or self.open

    def _copy(self) -> PodState:
        clone = PodState(key=self.key, uid=self.uid, first_seen_at=self.first_seen_at)
        for name in PodState.__slots__:
            value = getattr(self, name)
            setattr(clone, name, dict(value) if isinstance(value, dict) else value)
        return clone


@dataclass(frozen=True, slots=True)
class RegionTotals:
    """One region's SFU pods in sum, for Region status and autoscaling."""

    pods: int
    open_pods: int
    capacity: float
    """Capacity of the pods that take new rooms."""
    used: float
    """Units counted against all the region's pods (reservations and measured load)."""
    load: float
    """Measured load of all the region's pods."""
    rooms: int


def pod_key(namespace: str, name: str) -> str:
    """The `<namespace>/<name>` key of an SFU pod."""
    return room_key(namespace, name)


class CapacityPicture:
    """Every SFU pod incarnation the control plane knows, with its load and its rooms.

    Fed by `apply_report`, `apply_pod`, `remove_pod`, `assign` and `unassign`; read by
    placement. A pod name maps to at most one current incarnation (UID); incarnations that
    were replaced or deleted stay, as retired, only while rooms remain to move off them.
    """

    def __init__(self, model: CapacityModel | None = None) -> None:
        self.model = model or CapacityModel()
        self._pods: dict[str, dict[str, PodState]] = {}
        self._current: dict[str, PodState] = {}
        self._room_pods: dict[str, PodState] = {}
        self._retired_uids: OrderedDict[tuple[str, str], LossReason] = OrderedDict()
        self._regions: dict[str, list[PodState]] | None = None
        self._failed_at: dict[str, float] = {}

    # Reading.

    def pod(self, key: str) -> PodState | None:
        """The current incarnation of the pod named `key`."""
        return self._current.get(key)

    def incarnation(self, key: str, uid: str) -> PodState | None:
        """One incarnation of the pod named `key`, current or not."""
        return self._pods.get(key, {}).get(uid)

    def pods(self) -> list[PodState]:
        """Current incarnations, ordered by key."""
        return [self._current[k] for k in sorted(self._current)]

    def incarnations(self) -> Iterator[PodState]:
        """Every incarnation held, current, unconfirmed or retired."""
        for uids in self._pods.values():
            yield from uids.values()

    def region_pods(self, region: str) -> list[PodState]:
        """Current incarnations in `region`, ordered by key (do not modify the list)."""
        if self._regions is None:
            index: dict[str, list[PodState]] = {}
            for key in sorted(self._current):
                state = self._current[key]
                index.setdefault(state.region, []).append(state)
            self._regions = index
        return self._regions.get(region, [])

    def placement_of(self, room: str) -> PlacedRoom | None:
        state = self._room_pods.get(room)
        return state.rooms[room] if state is not None else None

    def rooms_on(self, pod: str, uid: str | None = None) -> list[PlacedRoom]:
        """Rooms placed on an incarnation (the current one by default), ordered by key."""
        state = self._current.get(pod) if uid is None else self.incarnation(pod, uid)
        if state is None:
            return []
        return [state.rooms[r] for r in sorted(state.rooms)]

    def hosts_rooms(self, pod: str, uid: str) -> bool:
        """Whether an incarnation has any room (O(1), unlike `rooms_on`)."""
        state = self.incarnation(pod, uid)
        return state is not None and bool(state.rooms)

    def room_count(self) -> int:
        return len(self._room_pods)

    def takes_rooms(self, state: PodState, now: float) -> bool:
        """A pod takes new rooms only when Ready, not draining or fenced, current, and
        with a report no older than the freshness window."""
        return (
            state.open
            and state.reported_at is not None
            and state.reported_at >= now - self.model.report_freshness_seconds
        )

    def startup_deadline(self, state: PodState) -> float | None:
        """Until when placement waits for this pod to start taking rooms, or None if it is
        not starting: it has been open before, or it is draining, fenced, failed or retired.
        The wait is bounded by the startup grace from when the pod was first seen."""
        if (
            state.opened
            or state.failed
            or state.draining
            or state.fenced
            or state.retired is not None
            or not state.confirmed
        ):
            return None
        return state.first_seen_at + self.model.startup_grace_seconds

    def last_failure(self, region: str) -> float | None:
        """When an SFU pod of `region` was last seen failed (its process ended)."""
        return self._failed_at.get(region)

    def copy(self) -> CapacityPicture:
        """An independent copy, for what-if decisions (rebalance suggestions)."""
        clone = CapacityPicture(self.model)
        for key, uids in self._pods.items():
            clone._pods[key] = {uid: state._copy() for uid, state in uids.items()}
        for key, state in self._current.items():
            clone._current[key] = clone._pods[key][state.uid]
        for room, state in self._room_pods.items():
            clone._room_pods[room] = clone._pods[state.key][state.uid]
        clone._retired_uids = OrderedDict(self._retired_uids)
        clone._failed_at = dict(self._failed_at)
        return clone

    # Internal bookkeeping used by the update functions below.

    def _add(self, state: PodState) -> PodState:
        self._pods.setdefault(state.key, {})[state.uid] = state
        return state

    def _drop_if_unused(self, state: PodState) -> None:
        # Only the current incarnation is kept without rooms: unconfirmed ones exist for
        # restored rooms, retired ones for rooms still to move.
        if state.rooms or self._current.get(state.key) is state:
            return
        uids = self._pods.get(state.key, {})
        uids.pop(state.uid, None)
        if not uids:
            self._pods.pop(state.key, None)

    def _make_current(self, state: PodState) -> None:
        previous = self._current.get(state.key)
        if previous is state:
            return
        self._current[state.key] = state
        self._regions = None
        for other in list(self._pods.get(state.key, {}).values()):
            if other is not state:
                self._retire(other, LossReason.NEW_INCARNATION)

    def _retire(self, state: PodState, reason: LossReason) -> None:
        if state.retired is None:
            state.retired = reason
        state.open = False
        self._retired_uids[(state.key, state.uid)] = state.retired
        while len(self._retired_uids) > _RETIRED_MEMORY:
            self._retired_uids.popitem(last=False)
        if self._current.get(state.key) is state:
            del self._current[state.key]
            self._regions = None
        self._drop_if_unused(state)

    def _set_region(self, state: PodState, region: str) -> None:
        if region and state.region != region:
            state.region = region
            self._regions = None

    def _recompute(self, state: PodState, pod_cost: float, now: float) -> None:
        model = self.model
        attributed = 0.0
        effective: dict[str, float] = {}
        for room, placed in state.rooms.items():
            measurement = state.measured.get(room)
            cost = None if measurement is None else measurement.cost
            if cost is not None:
                attributed += cost
            effective[room] = model.effective(placed.reservation, cost, now - placed.placed_at)
        state.effective = effective
        state.reserved = math.fsum(effective.values())
        state.baseline = max(0.0, pod_cost - attributed)


def apply_pod(picture: CapacityPicture, pod: PodObservation, now: float) -> None:
    """Record a Pod watch event (added or modified). A new UID for a known name retires
    the previous incarnation: its rooms are lost."""
    if (pod.key, pod.uid) in picture._retired_uids:
        return
    state = picture.incarnation(pod.key, pod.uid) or picture._add(
        PodState(key=pod.key, uid=pod.uid, first_seen_at=now)
    )
    state.confirmed = True
    picture._set_region(state, pod.region)
    picture._make_current(state)
    state.ready = pod.ready
    state.pod_draining = pod.draining
    state.drain_deadline = pod.drain_deadline
    if pod.failed and not state.failed:
        picture._failed_at[state.region] = now
    state.failed = pod.failed
    state._refresh_open()


def remove_pod(picture: CapacityPicture, key: str, uid: str | None = None) -> LostPod | None:
    """Record that a Pod was deleted; returns the lost incarnation if rooms must move."""
    state = picture._current.get(key) if uid is None else picture.incarnation(key, uid)
    if state is None:
        if uid is not None:
            picture._retired_uids[(key, uid)] = LossReason.POD_DELETED
        return None
    lost = _lost(state, LossReason.POD_DELETED) if state.rooms else None
    picture._retire(state, LossReason.POD_DELETED)
    return lost


def apply_report(picture: CapacityPicture, report: CapacityReport, now: float) -> ReportOutcome:
    """Record an SFU capacity report received at `now` (the receiver's clock, not the
    SFU's `sentAt`: freshness must not depend on clock skew)."""
    key = pod_key(report.namespace, report.pod_name)
    if (key, report.pod_uid) in picture._retired_uids:
        return ReportOutcome(accepted=False, reason="report from a retired pod incarnation")
    state = picture.incarnation(key, report.pod_uid)
    if state is not None and report.sequence <= state.sequence and not _restarted(state, report):
        return ReportOutcome(accepted=False, reason="stale report sequence")
    current = picture._current.get(key)
    new_incarnation = current is not None and current.uid != report.pod_uid
    if state is None:
        state = picture._add(PodState(key=key, uid=report.pod_uid, first_seen_at=now))
    took_before = picture.takes_rooms(state, now)
    free_before = state.free

    state.confirmed = True
    picture._set_region(state, report.region)
    picture._make_current(state)
    state.reported_at = now
    state.sequence = report.sequence
    state.sent_at = report.sent_at
    state.capacity = report.capacity
    state.report_draining = report.draining
    state.fenced = report.fenced
    state.load = report.load
    state.participants = report.participants
    state.cpu_cores = report.cpu_cores
    model = picture.model
    state.measured = {
        usage.room: RoomMeasurement(
            cost=model.measured_cost(usage.load, usage.participants),
            participants=usage.participants,
            empty_since_seconds=usage.empty_since_seconds,
        )
        for usage in report.rooms
    }
    picture._recompute(state, model.measured_cost(report.load, report.participants), now)
    state._refresh_open()

    takes_now = picture.takes_rooms(state, now)
    freed = takes_now and (not took_before or state.free > free_before + FIT_TOLERANCE)
    strays = tuple(sorted(room for room in state.measured if room not in state.rooms))
    return ReportOutcome(
        accepted=True, new_incarnation=new_incarnation, capacity_freed=freed, strays=strays
    )


def _restarted(state: PodState, report: CapacityReport) -> bool:
    # The SFU process restarted inside the same Pod (same UID): its sequence starts
    # again at 0 and its reports are newer than the last one accepted.
    return report.sequence == 0 and state.sent_at is not None and report.sent_at > state.sent_at


def assign(
    picture: CapacityPicture,
    room: str,
    reservation: float,
    *,
    pod: str,
    pod_uid: str,
    now: float,
    placed_at: float | None = None,
) -> PlacedRoom:
    """Place `room` on an incarnation, moving it if it was elsewhere.

    Also restores assignments from Room statuses after a restart: an incarnation not yet
    seen is held unconfirmed (lost if it never reports), one already retired is lost.
    """
    unassign(picture, room)
    state = picture.incarnation(pod, pod_uid)
    if state is None:
        state = picture._add(PodState(key=pod, uid=pod_uid, first_seen_at=now))
        current = picture._current.get(pod)
        retired = picture._retired_uids.get((pod, pod_uid))
        if retired is None and current is not None and current.confirmed:
            retired = LossReason.NEW_INCARNATION
        if retired is not None:
            state.retired = retired
            picture._retired_uids[(pod, pod_uid)] = retired
    placed = PlacedRoom(
        room=room,
        reservation=reservation,
        pod=pod,
        pod_uid=pod_uid,
        placed_at=now if placed_at is None else placed_at,
    )
    state.rooms[room] = placed
    measurement = state.measured.get(room)
    value = picture.model.effective(
        reservation, None if measurement is None else measurement.cost, now - placed.placed_at
    )
    state.effective[room] = value
    state.reserved += value
    picture._room_pods[room] = state
    return placed


def unassign(picture: CapacityPicture, room: str) -> PlacedRoom | None:
    """Take `room` off its pod (closed, deleted or moving); returns where it was."""
    state = picture._room_pods.pop(room, None)
    if state is None:
        return None
    placed = state.rooms.pop(room)
    # Incremental, so that emptying a pod of n rooms costs O(n); every report re-sums
    # exactly, so rounding cannot accumulate.
    value = state.effective.pop(room)
    state.reserved = state.reserved - value if state.rooms else 0.0
    picture._drop_if_unused(state)
    return placed


def free_capacity(picture: CapacityPicture, pod: str) -> float | None:
    """Units the current incarnation of `pod` has left (negative when overloaded)."""
    state = picture.pod(pod)
    return None if state is None else state.free


def lost_pods(picture: CapacityPicture, now: float, failover_timeout: float) -> list[LostPod]:
    """Incarnations that still hold rooms but are lost: reports missing past the failover
    timeout, Pod deleted, replaced by a new UID, or fenced. Never merely not-Ready."""
    lost = [
        _lost(state, reason)
        for state in picture.incarnations()
        if state.rooms and (reason := _loss_reason(state, now, failover_timeout)) is not None
    ]
    return sorted(lost, key=lambda p: (p.pod, p.uid))


def _loss_reason(state: PodState, now: float, failover_timeout: float) -> LossReason | None:
    if state.retired is not None:
        return state.retired
    if state.fenced:
        return LossReason.FENCED
    heard_at = state.reported_at if state.reported_at is not None else state.first_seen_at
    if now - heard_at > failover_timeout:
        return LossReason.REPORTS_MISSING
    return None


def _lost(state: PodState, reason: LossReason) -> LostPod:
    return LostPod(
        pod=state.key,
        uid=state.uid,
        region=state.region,
        reason=reason,
        rooms=tuple(sorted(state.rooms)),
    )


def rooms_to_move(
    picture: CapacityPicture, now: float, failover_timeout: float
) -> list[RoomToMove]:
    """Every room that must leave its pod now: the rooms of lost pods, and of draining
    pods past their drain deadline. Ordered by pod, then largest reservation first."""
    moves: list[RoomToMove] = []
    for state in picture.incarnations():
        if not state.rooms:
            continue
        reason = _loss_reason(state, now, failover_timeout)
        if reason is None and state.draining and _past(state.drain_deadline, now):
            reason = LossReason.DRAIN_DEADLINE
        if reason is not None:
            moves.extend(RoomToMove(placed, reason) for placed in state.rooms.values())
    return sorted(
        moves, key=lambda m: (m.placed.pod, m.placed.pod_uid, -m.placed.reservation, m.room)
    )


def _past(deadline: float | None, now: float) -> bool:
    return deadline is not None and now >= deadline


def region_totals(picture: CapacityPicture, region: str, now: float) -> RegionTotals:
    """Sums over the region's current pods."""
    pods = picture.region_pods(region)
    open_pods = [p for p in pods if picture.takes_rooms(p, now)]
    return RegionTotals(
        pods=len(pods),
        open_pods=len(open_pods),
        capacity=math.fsum(p.capacity for p in open_pods),
        used=math.fsum(p.used for p in pods),
        load=math.fsum(p.load for p in pods),
        rooms=sum(len(p.rooms) for p in pods),
    )
