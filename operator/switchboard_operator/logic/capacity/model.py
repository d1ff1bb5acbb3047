"""The capacity model and the plain records the capacity picture is made of: what a room
costs on an SFU pod, what the Pod watch says about a pod, and why a pod's rooms move.

All quantities are in the contract's capacity unit; CAPACITY.md explains the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final, NamedTuple

from switchboard_api import defaults
from switchboard_api.contract import AUDIO_STREAM_UNITS, MAX_REPORT_INTERVAL_SECONDS, room_key
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


def pod_key(namespace: str, name: str) -> str:
    """The `<namespace>/<name>` key of an SFU pod."""
    return room_key(namespace, name)


@dataclass(frozen=True, slots=True)
class PodObservation:
    """What the Pod watch says about one SFU pod."""

    namespace: str
    name: str
    uid: str
    region: str
    ready: bool
    been_ready: bool = False
    """Ready now or at some time before (`kube.bodies.pod_has_been_ready`): it has served."""
    draining: bool = False
    """Marked for draining (annotation or scale-down): it takes no new rooms."""
    drain_deadline: float | None = None
    """When draining, the time by which its remaining rooms must have moved."""
    failed: bool = False
    """Its SFU process crashed or was killed (phase Failed): it will never take rooms."""
    ended: bool = False
    """Its process ended, failed or not (phase Failed or Succeeded): its rooms move now."""
    cordoned: bool = False
    """The autoscaler is removing it: it takes no new rooms, keeps the ones it has."""

    @property
    def key(self) -> str:
        return pod_key(self.namespace, self.name)


class LossReason(StrEnum):
    """Why the rooms of a pod incarnation must move elsewhere."""

    REPORTS_MISSING = "ReportsMissing"
    """Silent: its lease certainly ended while its peers were acknowledged (C5), or, for a
    pod without leases, no report for the failover timeout plus the margin (C6)."""
    POD_ENDED = "PodEnded"
    """The Pod's phase is Failed or Succeeded: its process ended."""
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
class Displacement:
    """A room that had to leave its pod and has no other yet: where it was, and why."""

    previous: PlacedRoom
    reason: LossReason

    @property
    def message(self) -> str:
        """What the Room's status and its `Migrating` Event say."""
        return f"Left SFU pod {self.previous.pod} ({self.reason.value})."


class RoomMeasurement(NamedTuple):
    """A room's usage in its pod's latest accepted report. (A named tuple: every report
    makes one per room, thousands a second, and a frozen dataclass costs three times as
    much to make.)"""

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
