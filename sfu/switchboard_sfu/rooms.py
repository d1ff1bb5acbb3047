"""The rooms on this SFU pod: which exist, who is in them, limits, emptiness, and how the
control plane's assignments and close commands change them.

A room exists once the control plane assigns it (report responses) or on its first
authorised join, whichever comes first. The assignment list in a response is complete,
so a room it no longer names has moved elsewhere and is ended here.
"""

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from switchboard_api.contract import (
    JoinTokenClaims,
    MigrateMessage,
    RoomAssignment,
    RoomUsage,
)
from switchboard_sfu.lifecycle import Lifecycle
from switchboard_sfu.media import Publication, RoomMedia
from switchboard_sfu.refusals import JoinRefused, RefusalCode

log = logging.getLogger(__name__)

UNASSIGNED_GRACE_SECONDS = 10.0
"""A room created by a join is ended as moved if a report sent this long after its
creation is answered without it (the join API assigns a room before issuing its tokens)."""

TOMBSTONE_SECONDS = 3600.0
MAX_TOMBSTONES = 10_000
"""Rooms recently taken off this pod: tokens issued before that are refused (bounded)."""


class MemberKind(StrEnum):
    """How a participant is connected."""

    SIGNALLING = "signalling"
    WHIP = "whip"
    WHEP = "whep"


class Member(Protocol):
    """A participant session as the room registry sees it."""

    session_id: str
    identity: str
    kind: MemberKind

    def send_event(self, event: dict[str, object]) -> None:
        """Queue a signalling event for the participant (never blocks)."""

    def send_migrate(self, message: MigrateMessage) -> bool:
        """Tell the participant to reconnect elsewhere (never blocks); False when its
        transport has no channel to say it on (WHIP/WHEP)."""

    async def close(self, reason: str) -> None:
        """Disconnect the participant and release everything it holds."""

    def info(self) -> dict[str, object]:
        """How the participant is described to others in the room."""

    def publication_added(self, publication: Publication, publisher: Any) -> None:
        """Another participant of the room published a track."""

    def publication_removed(self, publication: Publication) -> None:
        """A track of the room is gone (subscriptions to it are already closed)."""


@dataclass
class Room:
    """One room on this pod."""

    key: str
    max_participants: int
    assigned: bool
    created_at: float
    closing: bool = False
    members: dict[str, Member] = field(default_factory=dict)
    empty_since: float | None = None
    media: RoomMedia | None = None

    @property
    def participants(self) -> int:
        return len(self.members)

    def find(self, identity: str, kind: MemberKind) -> Member | None:
        for member in self.members.values():
            if member.identity == identity and member.kind == kind:
                return member
        return None

    def broadcast(self, event: dict[str, object], exclude: str | None = None) -> None:
        for member in list(self.members.values()):
            if member.session_id != exclude:
                member.send_event(event)

    def empty_for(self, now: float) -> float | None:
        return None if self.empty_since is None else max(0.0, now - self.empty_since)


@dataclass
class Admission:
    """A join that passed every check: the room (created if needed) and a session of the
    same identity and kind that the new one replaces, if any."""

    room: Room
    replaces: Member | None
    created_room: bool


class RoomRegistry:
    """All rooms on the pod, keyed `namespace/name`."""

    def __init__(
        self,
        lifecycle: Lifecycle,
        default_max_participants: int,
        managed: bool,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        """`managed` is True when a control plane sends assignments (reports configured)."""
        self._lifecycle = lifecycle
        self._default_max_participants = default_max_participants
        self._managed = managed
        self._clock = clock
        self._wall_clock = wall_clock
        self._rooms: dict[str, Room] = {}
        self._tombstones: OrderedDict[str, float] = OrderedDict()  # key -> wall time removed

    def __iter__(self) -> Iterator[Room]:
        return iter(list(self._rooms.values()))

    def __len__(self) -> int:
        return len(self._rooms)

    def get(self, key: str) -> Room | None:
        return self._rooms.get(key)

    @property
    def participants(self) -> int:
        return sum(room.participants for room in self._rooms.values())

    # Joining and leaving.

    def admit(self, claims: JoinTokenClaims, kind: MemberKind) -> Admission:
        """Check that `claims` may join now, creating the room if needed.

        Synchronous on purpose: the caller adds its member before its next `await`, so
        concurrent joins cannot overrun the participant limit.
        """
        self._lifecycle.check_admission()
        room = self._rooms.get(claims.room)
        if room is None:
            self._check_not_moved(claims)
        elif room.closing:
            raise JoinRefused(RefusalCode.ROOM_CLOSING, f"room {claims.room} is closing")
        replaces = room.find(claims.sub, kind) if room else None
        if room is not None and replaces is None and room.participants >= room.max_participants:
            raise JoinRefused(
                RefusalCode.ROOM_FULL,
                f"room {claims.room} has its maximum of {room.max_participants} participants",
            )
        created = room is None
        if room is None:
            room = self._create(claims.room, self._default_max_participants, assigned=False)
        return Admission(room=room, replaces=replaces, created_room=created)

    def add(self, room: Room, member: Member) -> None:
        room.members[member.session_id] = member
        room.empty_since = None

    def remove(self, member: Member, room: Room) -> bool:
        """Take `member` out of `room`; True if it was there. The room records when it
        became empty; an unmanaged pod forgets empty rooms at once."""
        if room.members.pop(member.session_id, None) is None:
            return False
        if not room.members:
            room.empty_since = self._clock()
            if not self._managed and not room.assigned and self._rooms.get(room.key) is room:
                self._forget(room)
        return True

    def _check_not_moved(self, claims: JoinTokenClaims) -> None:
        removed_at = self._tombstones.get(claims.room)
        if removed_at is not None and claims.iat <= removed_at:
            raise JoinRefused(
                RefusalCode.ROOM_NOT_ASSIGNED,
                f"room {claims.room} is no longer placed on this pod; ask the join API",
            )

    # Control-plane commands.

    def apply_assignments(
        self, assignments: list[RoomAssignment], report_sent_at: float
    ) -> list[Room]:
        """Make the registry match a complete assignment list.

        Returns the rooms that must end because they are no longer placed here (the
        caller migrates and disconnects their participants, then calls `discard`).
        `report_sent_at` is when the answered report left (monotonic clock).
        """
        wanted = {assignment.room: assignment for assignment in assignments}
        for key, assignment in wanted.items():
            room = self._rooms.get(key)
            if room is None:
                room = self._create(key, assignment.max_participants, assigned=True)
                room.empty_since = self._clock()
            room.assigned = True
            room.max_participants = assignment.max_participants
            room.closing = assignment.closing
            self._tombstones.pop(key, None)
        ended = []
        for room in list(self._rooms.values()):
            if room.key in wanted:
                continue
            if room.assigned or room.created_at + UNASSIGNED_GRACE_SECONDS <= report_sent_at:
                ended.append(room)
        return ended

    def discard(self, room: Room) -> None:
        """Forget a room that was ended (moved, closed, fenced) and remember when, so
        tokens issued before now are refused for it."""
        if self._rooms.get(room.key) is room:
            self._forget(room)
        self._tombstones[room.key] = self._wall_clock()
        self._tombstones.move_to_end(room.key)
        self._expire_tombstones()

    def _create(self, key: str, max_participants: int, assigned: bool) -> Room:
        room = Room(
            key=key, max_participants=max_participants, assigned=assigned, created_at=self._clock()
        )
        self._rooms[key] = room
        log.info("room created room=%s assigned=%s", key, assigned)
        return room

    def _forget(self, room: Room) -> None:
        del self._rooms[room.key]
        log.info("room removed room=%s", room.key)

    def _expire_tombstones(self) -> None:
        horizon = self._wall_clock() - TOMBSTONE_SECONDS
        while self._tombstones:
            key, removed_at = next(iter(self._tombstones.items()))
            if removed_at >= horizon and len(self._tombstones) <= MAX_TOMBSTONES:
                break
            del self._tombstones[key]

    # Reporting.

    def usage(self, load_of: Callable[[Room], tuple[int, int, float]]) -> list[RoomUsage]:
        """Per-room usage for the capacity report; `load_of` gives (published tracks,
        forwarded tracks, load in capacity units) from the media layer."""
        now = self._clock()
        usages = []
        for room in self._rooms.values():
            published, forwarded, load = load_of(room)
            usages.append(
                RoomUsage(
                    room=room.key,
                    participants=room.participants,
                    published_tracks=published,
                    forwarded_tracks=forwarded,
                    load=load,
                    empty_since_seconds=room.empty_for(now),
                )
            )
        return usages
