"""One incarnation (name + UID) of an SFU pod as the capacity picture holds it: what the
Pod watch and its latest report say, the rooms placed on it and what they count.

Its fields are read by placement's hot loop; they change only through its own methods,
which only the capacity picture calls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

from switchboard_api.contract import CapacityReport, PeerEndpoint
from switchboard_operator.logic.capacity.model import (
    FIT_TOLERANCE,
    CapacityModel,
    LossReason,
    LostPod,
    PlacedRoom,
    PodObservation,
    RoomMeasurement,
)
from switchboard_operator.logic.leases import AckLedger


@dataclass(eq=False, slots=True)
class PodState:
    """One incarnation of an SFU pod. Read-only outside the capacity picture."""

    key: str
    uid: str
    first_seen_at: float
    region: str = ""
    confirmed: bool = False
    """Seen by the Pod watch or a report (not only named by a restored Room status)."""
    retired: LossReason | None = None
    ready: bool = False
    been_ready: bool = False
    """Ready now or at some time before, as its Pod shows (`PodObservation.been_ready`)."""
    pod_draining: bool = False
    drain_deadline: float | None = None
    report_draining: bool = False
    fenced: bool = False
    cordoned: bool = False
    """Cordoned by the autoscaler: no new rooms, its rooms stay until they end."""
    open: bool = False
    """Takes new rooms if its last report is also fresh (see CapacityPicture.takes_rooms)."""
    opened: bool = False
    """Has been open at least once: it has started, so it is no longer waited for."""
    failed: bool = False
    ended: bool = False
    """Its process ended (Pod phase Failed or Succeeded): its rooms move at once."""
    capacity: float = 0.0
    reported_at: float | None = None
    sequence: int = -1
    sent_at: datetime | None = None
    load: float = 0.0
    participants: int = 0
    cpu_cores: float = 0.0
    join_key_ids: tuple[str, ...] | None = None
    """The join-token keys the pod said it holds in its last report (None: it does not say)."""
    peer: PeerEndpoint | None = None
    """Where it answers lease checks, from its last report (None: it speaks no leases)."""
    acks: AckLedger = field(default_factory=lambda: AckLedger(lease_capable=True))
    """What this leader acknowledged to it and what it confirmed (C3). Until it reports,
    it counts as lease-capable: it may hold a lease from an earlier term."""
    baseline: float = 0.0
    """Measured load not attributed to any room placed here."""
    reserved: float = 0.0
    """Sum of `effective` over the rooms placed here."""
    rooms: dict[str, PlacedRoom] = field(default_factory=dict)
    effective: dict[str, float] = field(default_factory=dict)
    measured: dict[str, RoomMeasurement] = field(default_factory=dict)

    # Reading.

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

    def lost(self, reason: LossReason) -> LostPod:
        """This incarnation as lost for `reason`, with the rooms that must move."""
        return LostPod(
            pod=self.key,
            uid=self.uid,
            region=self.region,
            reason=reason,
            rooms=tuple(sorted(self.rooms)),
        )

    def copy(self) -> PodState:
        clone = PodState(key=self.key, uid=self.uid, first_seen_at=self.first_seen_at)
        for name in PodState.__slots__:
            value = getattr(self, name)
            setattr(clone, name, dict(value) if isinstance(value, dict) else value)
        return clone

    # Changes (called by the capacity picture only).

    def observe(self, pod: PodObservation) -> bool:
        """Take what the Pod watch says; True if this is when it is first seen failed."""
        self.confirmed = True
        self.ready = pod.ready
        self.been_ready = pod.been_ready
        self.pod_draining = pod.draining
        self.drain_deadline = pod.drain_deadline
        self.cordoned = pod.cordoned
        newly_failed = pod.failed and not self.failed
        self.failed = pod.failed
        self.ended = pod.ended
        self._refresh_open()
        return newly_failed

    def record_report(self, report: CapacityReport, model: CapacityModel, now: float) -> None:
        """Take an accepted report: its load, its rooms' usage, and what each room counts."""
        self.confirmed = True
        self.reported_at = now
        self.sequence = report.sequence
        self.sent_at = report.sent_at
        self.capacity = report.capacity
        self.report_draining = report.draining
        self.fenced = report.fenced
        self.load = report.load
        self.participants = report.participants
        self.cpu_cores = report.cpu_cores
        self.join_key_ids = None if report.join_key_ids is None else tuple(report.join_key_ids)
        self.peer = report.peer
        self.acks.lease_capable = report.peer is not None
        cost = model.measured_cost
        self.measured = {
            usage.room: RoomMeasurement(
                cost(usage.load, usage.participants),
                usage.participants,
                usage.empty_since_seconds,
            )
            for usage in report.rooms
        }
        self._recompute(model, model.measured_cost(report.load, report.participants), now)
        self._refresh_open()

    def restarted(self, report: CapacityReport) -> bool:
        """The SFU process restarted inside the same Pod (same UID): its sequence starts
        again at 0 and its reports are newer than the last one accepted."""
        return report.sequence == 0 and self.sent_at is not None and report.sent_at > self.sent_at

    def add_room(self, placed: PlacedRoom, model: CapacityModel, now: float) -> None:
        self.rooms[placed.room] = placed
        measurement = self.measured.get(placed.room)
        value = model.effective(
            placed.reservation,
            None if measurement is None else measurement.cost,
            now - placed.placed_at,
        )
        self.effective[placed.room] = value
        self.reserved += value

    def remove_room(self, room: str) -> PlacedRoom:
        placed = self.rooms.pop(room)
        # Incremental, so that emptying a pod of n rooms costs O(n); every report re-sums
        # exactly, so rounding cannot accumulate.
        value = self.effective.pop(room)
        self.reserved = self.reserved - value if self.rooms else 0.0
        return placed

    def retire(self, reason: LossReason) -> None:
        if self.retired is None:
            self.retired = reason
        self.open = False

    def _refresh_open(self) -> None:
        self.open = (
            self.confirmed
            and self.retired is None
            and self.ready
            and not self.draining
            and not self.cordoned
            and not self.fenced
            and not self.ended
            and self.reported_at is not None
        )
        self.opened = self.opened or self.open

    def cordon(self) -> None:
        """Take no new room from now on (the Pod watch confirms it, or lifts it)."""
        self.cordoned = True
        self._refresh_open()

    def _recompute(self, model: CapacityModel, pod_cost: float, now: float) -> None:
        attributed = 0.0
        effective: dict[str, float] = {}
        measured = self.measured
        value = model.effective
        for room, placed in self.rooms.items():
            measurement = measured.get(room)
            if measurement is None:
                effective[room] = placed.reservation
                continue
            cost = measurement.cost
            attributed += cost
            effective[room] = value(placed.reservation, cost, now - placed.placed_at)
        self.effective = effective
        self.reserved = math.fsum(effective.values())
        self.baseline = max(0.0, pod_cost - attributed)
