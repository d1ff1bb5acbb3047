"""Room placement: which region and which SFU pod take a room, decided from the capacity
picture; deterministic and free of I/O."""

from switchboard_operator.logic.placement.failover import (
    Replacement,
    failover_order,
    replace_rooms,
    replace_rooms_of,
)
from switchboard_operator.logic.placement.model import (
    Decision,
    Placement,
    PlacementRegion,
    PlacementSettings,
    PodSearch,
    RoomRequest,
    Unschedulable,
    UnschedulableReason,
    Waiting,
)
from switchboard_operator.logic.placement.placing import commit, place, place_many
from switchboard_operator.logic.placement.rebalance import (
    Move,
    MoveLimiter,
    apply_moves,
    rebalance,
)

__all__ = [
    "Decision",
    "Move",
    "MoveLimiter",
    "Placement",
    "PlacementRegion",
    "PlacementSettings",
    "PodSearch",
    "Replacement",
    "RoomRequest",
    "Unschedulable",
    "UnschedulableReason",
    "Waiting",
    "apply_moves",
    "commit",
    "failover_order",
    "place",
    "place_many",
    "rebalance",
    "replace_rooms",
    "replace_rooms_of",
]
