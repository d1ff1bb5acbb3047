"""The capacity model and the capacity picture: what a room costs on an SFU pod, and what
every SFU pod has left (CAPACITY.md)."""

from switchboard_operator.logic.capacity.demand import reports_fresh, unreported_pods
from switchboard_operator.logic.capacity.losses import lost_pods, rooms_to_move, silent_pods
from switchboard_operator.logic.capacity.model import (
    FIT_TOLERANCE,
    PARTICIPANT_OVERHEAD_UNITS,
    REPORT_FRESHNESS_SECONDS,
    RESERVATION_HOLD_SECONDS,
    RETAINED_FRACTION,
    SFU_STARTUP_GRACE_SECONDS,
    CapacityModel,
    Displacement,
    LossReason,
    LostPod,
    PlacedRoom,
    PodObservation,
    RegionTotals,
    ReportOutcome,
    RoomMeasurement,
    RoomToMove,
    pod_key,
)
from switchboard_operator.logic.capacity.picture import CapacityPicture
from switchboard_operator.logic.capacity.pod_state import PodState

__all__ = [
    "FIT_TOLERANCE",
    "PARTICIPANT_OVERHEAD_UNITS",
    "REPORT_FRESHNESS_SECONDS",
    "RESERVATION_HOLD_SECONDS",
    "RETAINED_FRACTION",
    "SFU_STARTUP_GRACE_SECONDS",
    "CapacityModel",
    "CapacityPicture",
    "Displacement",
    "LossReason",
    "LostPod",
    "PlacedRoom",
    "PodObservation",
    "PodState",
    "RegionTotals",
    "ReportOutcome",
    "RoomMeasurement",
    "RoomToMove",
    "lost_pods",
    "pod_key",
    "reports_fresh",
    "rooms_to_move",
    "silent_pods",
    "unreported_pods",
]
