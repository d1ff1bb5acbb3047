"""Test doubles for the join API: a control plane that places rooms from a table, API key
Secrets as the API server returns them, and a clock the test moves."""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from switchboard_api.contract import room_key
from switchboard_api.geo import GeoLocation
from switchboard_operator.joinapi import (
    NamespaceNotFound,
    PlacedRoomInfo,
    PlacementTimeout,
    RoomNotFound,
    RoomUnschedulable,
    TurnAccess,
)
from switchboard_operator.logic.join_key_ring import JoinKeyRing
from switchboard_operator.logic.jointokens import JoinKeys

SIGNING_KID = "20260102-0badcafe"
OLD_KID = "20250101-00000001"
TURN_SECRET = b"turn-shared-secret-0123456789"
TURN_URIS = ("turn:turn.eu.example:3478?transport=udp", "turns:turn.eu.example:5349")
TURN_TTL_SECONDS = 900

TEAM_KEY = "team-a-key-0123456789abcdef"
"""May join and create rooms in namespace team-a."""
VIEWER_KEY = "viewer-key-0123456789abcdef"
"""May join existing rooms in team-a, not create them."""
OPS_KEY = "ops-key-0123456789abcdefghij"
"""May join and create rooms anywhere."""
SLOW_KEY = "slow-key-0123456789abcdefgh"
"""May create in team-a, limited to 1 request per second with a burst of 2."""


@dataclass
class EnsurePlacedCall:
    namespace: str
    name: str
    create: bool
    max_participants: int | None
    location: GeoLocation | None
    region_hint: str | None
    timeout: float


@dataclass
class FakePlacements:
    """Rooms that exist are in `rooms`; a created room lands on `new_room_pod`."""

    rooms: dict[str, PlacedRoomInfo] = field(default_factory=dict)
    unschedulable: dict[str, RoomUnschedulable] = field(default_factory=dict)
    stuck: set[str] = field(default_factory=set)
    """Rooms whose placement never completes: the port times out as promised."""
    ignores_timeout: set[str] = field(default_factory=set)
    """Rooms whose placement never completes and whose port never gives up."""
    broken: set[str] = field(default_factory=set)
    missing_namespaces: set[str] = field(default_factory=set)
    """Namespaces that do not exist: rooms cannot be created there."""
    turn: dict[str, TurnAccess] = field(default_factory=dict)
    keys: JoinKeys = field(
        default_factory=lambda: JoinKeys(
            signing_kid=SIGNING_KID,
            private={
                SIGNING_KID: Ed25519PrivateKey.generate(),
                OLD_KID: Ed25519PrivateKey.generate(),
            },
        )
    )
    calls: list[EnsurePlacedCall] = field(default_factory=list)
    held: dict[str, list[str]] = field(default_factory=dict)
    """Join key ids each pod (by name) last reported holding; absent: it does not say."""
    term: int | None = 7
    """The acting leader's term; None: this replica does not act."""

    async def ensure_placed(
        self,
        namespace: str,
        name: str,
        *,
        create: bool,
        max_participants: int | None,
        location: GeoLocation | None,
        region_hint: str | None,
        timeout: float,  # noqa: ASYNC109
    ) -> PlacedRoomInfo:
        self.calls.append(
            EnsurePlacedCall(
                namespace, name, create, max_participants, location, region_hint, timeout
            )
        )
        key = room_key(namespace, name)
        if key in self.broken:
            raise RuntimeError("placement exploded")
        if key in self.unschedulable:
            raise self.unschedulable[key]
        if key in self.stuck:
            try:
                await asyncio.wait_for(asyncio.Event().wait(), timeout)
            except TimeoutError:
                raise PlacementTimeout(key) from None
        if key in self.ignores_timeout:
            await asyncio.Event().wait()
        if key not in self.rooms:
            if not create:
                raise RoomNotFound(key)
            if namespace in self.missing_namespaces:
                raise NamespaceNotFound(namespace)
            self.rooms[key] = placed_room(namespace, name)
        return self.rooms[key]

    def turn_for_region(self, region: str) -> TurnAccess | None:
        return self.turn.get(region)

    def __post_init__(self) -> None:
        self.ring = JoinKeyRing(self.keys)

    def join_keys(self) -> JoinKeyRing:
        return self.ring

    def held_join_keys(self, placed: PlacedRoomInfo) -> list[str] | None:
        return self.held.get(placed.pod)

    def acting_term(self) -> int | None:
        return self.term


def placed_room(namespace: str, name: str, region: str = "eu-west") -> PlacedRoomInfo:
    return PlacedRoomInfo(
        room_key=room_key(namespace, name),
        region=region,
        pod="sfu-eu-west-7d9f-abcde",
        pod_uid="6f1c2b1e-1111-4d5e-9abc-0123456789ab",
        url="wss://sfu-eu-west-7d9f-abcde.eu.example:7880/v1/signal",
    )


def eu_turn() -> TurnAccess:
    return TurnAccess(uris=TURN_URIS, secret=TURN_SECRET, credential_ttl_seconds=TURN_TTL_SECONDS)


def api_key_secret(
    name: str,
    data: dict[str, str],
    *,
    labelled: bool = True,
) -> dict[str, object]:
    """A Secret as the API server returns it (data base64-encoded)."""
    labels = {"switchboard.dev/api-key": "true"} if labelled else {}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": "switchboard-system", "labels": labels},
        "type": "Opaque",
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


class FakeClock:
    """Wall and monotonic time that move only when the test says so."""

    def __init__(self, wall: float = 1_800_000_000.0) -> None:
        self.wall_now = wall
        self.monotonic_now = 1000.0

    def wall(self) -> float:
        return self.wall_now

    def monotonic(self) -> float:
        return self.monotonic_now

    def advance(self, seconds: float) -> None:
        self.wall_now += seconds
        self.monotonic_now += seconds
