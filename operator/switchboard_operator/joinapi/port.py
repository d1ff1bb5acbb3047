"""What the join API needs from the rest of the control plane: placing a room, the TURN
access of a region and the join-token signing keys. The operator implements it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from switchboard_api.geo import GeoLocation
from switchboard_operator.logic.join_key_ring import JoinKeyRing
from switchboard_operator.logic.placement import Unschedulable, UnschedulableReason
from switchboard_operator.logic.turn_rotation import TurnAccess


@dataclass(frozen=True)
class PlacedRoomInfo:
    """Where a room is served: what a client needs to reach it and a join token names."""

    room_key: str
    """The room's `<namespace>/<name>`."""
    region: str
    """Name of the Region the room is placed in."""
    pod: str
    """Name (not `<namespace>/<name>`) of the SFU pod serving the room."""
    pod_uid: str
    """UID of that pod: a join token is valid only on this incarnation."""
    url: str | None
    """The pod's public signalling URL, as clients must use it (None only while a URL
    template that needs the pod's IP finds none yet)."""


class PlacementError(Exception):
    """Base of the ways `RoomPlacements.ensure_placed` fails."""


class RoomNotFound(PlacementError):
    """The Room does not exist and was not to be created."""


class NamespaceNotFound(PlacementError):
    """The Room was to be created, but its namespace does not exist (or is being deleted)."""

    def __init__(self, namespace: str) -> None:
        super().__init__(namespace)
        self.namespace = namespace


class RoomUnschedulable(PlacementError):
    """The Room exists (or was created) but no SFU pod can take it."""

    def __init__(self, reason: UnschedulableReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message

    @classmethod
    def of(cls, decision: Unschedulable) -> RoomUnschedulable:
        """The error for placement's own verdict."""
        return cls(decision.reason, decision.message)


class PlacementTimeout(PlacementError):
    """The Room was not placed within the time the caller allowed."""


class RoomPlacements(Protocol):
    """The control plane's rooms as the join API sees them."""

    async def ensure_placed(
        self,
        namespace: str,
        name: str,
        *,
        create: bool,
        max_participants: int | None,
        location: GeoLocation | None,
        region_hint: str | None,
        # The port owns the timeout (rather than being cancelled by the caller) so it can
        # tell a placement still in progress from an abandoned request.
        timeout: float,  # noqa: ASYNC109
    ) -> PlacedRoomInfo:
        """Where the Room `namespace/name` is served, placing it first if it is not.

        With `create`, a missing Room is created (with `max_participants` when given, else
        the Room default); without it, a missing Room raises RoomNotFound. `location` and
        `region_hint` describe the joining client and only steer the placement of a Room
        that has no location of its own; an already placed Room stays where it is.

        Raises RoomNotFound, NamespaceNotFound (a Room to create in a namespace that does
        not exist), RoomUnschedulable (placement's reason and message) or PlacementTimeout
        when the Room is not placed within `timeout` seconds.
        """
        ...

    def turn_for_region(self, region: str) -> TurnAccess | None:
        """The TURN servers of `region` and their minting secret; None without TURN."""
        ...

    def join_keys(self) -> JoinKeyRing:
        """The join-token keys; `signing_kid(held)` names the one that signs a token."""
        ...

    def held_join_keys(self, placed: PlacedRoomInfo) -> Sequence[str] | None:
        """The join-token key ids the room's SFU pod last reported holding (None if it
        has not said)."""
        ...

    def acting_term(self) -> int | None:
        """The leader's term while this replica acts as leader, else None: tokens are
        issued only then, and carry it (docs/contract.md, "Leases", C1)."""
        ...
