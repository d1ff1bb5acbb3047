"""The capacity picture: every SFU pod incarnation the control plane knows, with its load
and its rooms, kept in memory from capacity reports and Pod watch events.

It is the one owner of that state: it changes only through the methods below, so that
placement, failover, rebalance and the report answers all see one consistent picture.
Pure: the caller passes the clock (`now`, seconds on one clock such as `time.time()`) and
owns the picture on one event loop (it is not thread-safe).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Final

from switchboard_api.contract import CapacityReport
from switchboard_operator.logic.capacity.demand import DemandElsewhere
from switchboard_operator.logic.capacity.model import (
    FIT_TOLERANCE,
    CapacityModel,
    Displacement,
    LossReason,
    LostPod,
    PlacedRoom,
    PodObservation,
    RegionTotals,
    ReportOutcome,
    pod_key,
)
from switchboard_operator.logic.capacity.pod_state import PodState

_RETIRED_MEMORY: Final = 10_000
"""Retired pod incarnations remembered so that their late reports are refused."""


class CapacityPicture:
    """Every SFU pod incarnation the control plane knows, with its load and its rooms.

    Fed by `apply_report`, `apply_pod` and `remove_pod`; rooms are placed with `assign`
    and taken off with `displace` (they must move) or `release` (closed or gone). A pod
    name maps to at most one current incarnation (UID); incarnations that were replaced or
    deleted stay, as retired, only while rooms remain to move off them.
    """

    def __init__(self, model: CapacityModel | None = None) -> None:
        self.model = model or CapacityModel()
        self._pods: dict[str, dict[str, PodState]] = {}
        self._current: dict[str, PodState] = {}
        self._room_pods: dict[str, PodState] = {}
        self._retired_uids: OrderedDict[tuple[str, str], LossReason] = OrderedDict()
        self._regions: dict[str, list[PodState]] | None = None
        self._failed_at: dict[str, float] = {}
        self._displaced: dict[str, Displacement] = {}
        self._empty_since: dict[str, float] = {}
        self._elsewhere = DemandElsewhere()
        self._listeners: list[Callable[[str], None]] = []

    def subscribe(self, listener: Callable[[str], None]) -> None:
        """Call `listener(region)` whenever the region's demand or capacity may have
        changed (a room placed, moved, waiting or gone; a pod's watch event or report)."""
        self._listeners.append(listener)

    def _changed(self, region: str) -> None:
        if region:
            for listener in self._listeners:
                listener(region)

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

    def pod_of(self, room: str) -> PodState | None:
        """The incarnation `room` is placed on."""
        return self._room_pods.get(room)

    def displacement(self, room: str) -> Displacement | None:
        """Where `room` was before it had to leave its pod, while no other pod has it."""
        return self._displaced.get(room)

    def empty_since(self, room: str) -> float | None:
        """Since when (the caller's clock) a room rebalance moved has been empty: its new
        SFU counts from the move, so the time carried over keeps the move from postponing
        its closing. None once someone joins."""
        return self._empty_since.get(room)

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

    def occupancy(self, pod: str) -> tuple[int, float]:
        """Rooms on the current incarnation of `pod`, and the units counted against it."""
        state = self._current.get(pod)
        return (0, 0.0) if state is None else (len(state.rooms), state.used)

    def room_count(self) -> int:
        return len(self._room_pods)

    def free_capacity(self, pod: str) -> float | None:
        """Units the current incarnation of `pod` has left (negative when overloaded)."""
        state = self.pod(pod)
        return None if state is None else state.free

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

    def region_totals(self, region: str, now: float) -> RegionTotals:
        """Sums over the region's current pods."""
        pods = self.region_pods(region)
        open_pods = [p for p in pods if self.takes_rooms(p, now)]
        return RegionTotals(
            pods=len(pods),
            open_pods=len(open_pods),
            capacity=math.fsum(p.capacity for p in open_pods),
            used=math.fsum(p.used for p in pods),
            load=math.fsum(p.load for p in pods),
            rooms=sum(len(p.rooms) for p in pods),
        )

    def region_demand(self, region: str) -> float:
        """Units the region must serve: what the rooms on its current pods count, plus the
        reservation of every room that waits for it or is Unschedulable with it as its
        own region, plus that of rooms placed farther away only because it was full (they
        do not move back; new rooms stay home once capacity exists)."""
        placed = math.fsum(p.reserved for p in self.region_pods(region))
        return placed + self._elsewhere.units(region)

    def want(self, room: str, region: str | None, reservation: float) -> None:
        """`room` is on no pod and waits for (or could not be placed in) `region`, its own:
        its reservation counts towards that region's demand. None: it wants no region."""
        for changed in self._elsewhere.want(room, region, reservation):
            self._changed(changed)

    def cordon(self, key: str) -> bool:
        """Take no new room on the current incarnation of pod `key` from now on, in the
        same step as the caller's decision to remove it; True if it holds no room (then
        it may be deleted). The Pod watch confirms the cordon, or lifts it."""
        state = self._current.get(key)
        if state is None:
            return True
        state.cordon()
        return not state.rooms

    def copy(self) -> CapacityPicture:
        """An independent copy, for what-if decisions (rebalance suggestions)."""
        clone = CapacityPicture(self.model)
        for key, uids in self._pods.items():
            clone._pods[key] = {uid: state.copy() for uid, state in uids.items()}
        for key, state in self._current.items():
            clone._current[key] = clone._pods[key][state.uid]
        for room, state in self._room_pods.items():
            clone._room_pods[room] = clone._pods[state.key][state.uid]
        clone._retired_uids = OrderedDict(self._retired_uids)
        clone._failed_at = dict(self._failed_at)
        clone._displaced = dict(self._displaced)
        clone._empty_since = dict(self._empty_since)
        clone._elsewhere = self._elsewhere.copy()
        return clone

    # What the Pod watch and the reports say.

    def apply_pod(self, pod: PodObservation, now: float) -> None:
        """Record a Pod watch event (added or modified). A new UID for a known name retires
        the previous incarnation: its rooms are lost."""
        if (pod.key, pod.uid) in self._retired_uids:
            return
        state = self.incarnation(pod.key, pod.uid) or self._add(
            PodState(key=pod.key, uid=pod.uid, first_seen_at=now)
        )
        self._set_region(state, pod.region)
        self._make_current(state)
        if state.observe(pod):
            self._failed_at[state.region] = now
        self._changed(state.region)

    def remove_pod(self, key: str, uid: str | None = None) -> LostPod | None:
        """Record that a Pod was deleted; returns the lost incarnation if rooms must move."""
        state = self._current.get(key) if uid is None else self.incarnation(key, uid)
        if state is None:
            if uid is not None:
                self._retired_uids[(key, uid)] = LossReason.POD_DELETED
            return None
        lost = state.lost(LossReason.POD_DELETED) if state.rooms else None
        self._retire(state, LossReason.POD_DELETED)
        self._changed(state.region)
        return lost

    def apply_report(self, report: CapacityReport, now: float) -> ReportOutcome:
        """Record an SFU capacity report received at `now` (the receiver's clock, not the
        SFU's `sentAt`: freshness must not depend on clock skew)."""
        key = pod_key(report.namespace, report.pod_name)
        if (key, report.pod_uid) in self._retired_uids:
            return ReportOutcome(accepted=False, reason="report from a retired pod incarnation")
        state = self.incarnation(key, report.pod_uid)
        if state is not None and report.sequence <= state.sequence and not state.restarted(report):
            return ReportOutcome(accepted=False, reason="stale report sequence")
        current = self._current.get(key)
        new_incarnation = current is not None and current.uid != report.pod_uid
        if state is None:
            state = self._add(PodState(key=key, uid=report.pod_uid, first_seen_at=now))
        took_before = self.takes_rooms(state, now)
        free_before = state.free

        self._set_region(state, report.region)
        self._make_current(state)
        state.record_report(report, self.model, now)
        if self._empty_since:
            for usage in report.rooms:
                if usage.participants > 0 and usage.room in state.rooms:
                    self._empty_since.pop(usage.room, None)  # someone joined

        takes_now = self.takes_rooms(state, now)
        freed = takes_now and (not took_before or state.free > free_before + FIT_TOLERANCE)
        strays = tuple(sorted(room for room in state.measured if room not in state.rooms))
        self._changed(state.region)
        return ReportOutcome(
            accepted=True, new_incarnation=new_incarnation, capacity_freed=freed, strays=strays
        )

    # Where rooms are.

    def assign(
        self,
        room: str,
        reservation: float,
        *,
        pod: str,
        pod_uid: str,
        now: float,
        placed_at: float | None = None,
        home: str | None = None,
    ) -> PlacedRoom:
        """Place `room` on an incarnation, moving it if it was elsewhere. `home`: the
        room's own region, when it went to another only because that one was full (it
        keeps counting towards the demand of its home, see `region_demand`).

        Also restores assignments from Room statuses after a restart: an incarnation not
        yet seen is held unconfirmed (lost if it never reports), one already retired is lost.
        """
        self._take_off(room)
        self._displaced.pop(room, None)
        self.want(room, None, 0.0)
        state = self.incarnation(pod, pod_uid)
        if state is None:
            state = self._add(PodState(key=pod, uid=pod_uid, first_seen_at=now))
            current = self._current.get(pod)
            retired = self._retired_uids.get((pod, pod_uid))
            if retired is None and current is not None and current.confirmed:
                retired = LossReason.NEW_INCARNATION
            if retired is not None:
                state.retire(retired)
                self._retired_uids[(pod, pod_uid)] = retired
        placed = PlacedRoom(
            room=room,
            reservation=reservation,
            pod=pod,
            pod_uid=pod_uid,
            placed_at=now if placed_at is None else placed_at,
        )
        state.add_room(placed, self.model, now)
        self._room_pods[room] = state
        if home is not None and home != state.region:
            self._elsewhere.spill(room, home, reservation)
            self._changed(home)
        self._changed(state.region)
        return placed

    def displace(self, room: str, reason: LossReason) -> PlacedRoom | None:
        """Take `room` off its pod because it must leave it; the picture remembers where it
        was and why (`displacement`) until it is assigned again or released."""
        placed = self._take_off(room)
        if placed is not None:
            self._displaced[room] = Displacement(placed, reason)
        return placed

    def release(self, room: str) -> PlacedRoom | None:
        """Forget `room` (closed, deleted, or its Room is gone); returns where it was."""
        self._displaced.pop(room, None)
        self._empty_since.pop(room, None)
        self.want(room, None, 0.0)
        return self._take_off(room)

    def carry_emptiness(self, room: str, since: float) -> None:
        """A room moved while empty has been so since `since` (the earliest time wins)."""
        self._empty_since[room] = min(since, self._empty_since.get(room, since))

    # Bookkeeping.

    def _take_off(self, room: str) -> PlacedRoom | None:
        home = self._elsewhere.placed_elsewhere_no_more(room)
        if home is not None:
            self._changed(home)
        state = self._room_pods.pop(room, None)
        if state is None:
            return None
        placed = state.remove_room(room)
        self._drop_if_unused(state)
        self._changed(state.region)
        return placed

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
        state.retire(reason)
        self._retired_uids[(state.key, state.uid)] = state.retired or reason
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
