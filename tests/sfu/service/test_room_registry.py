"""The room registry's rules, in process: admission limits, emptiness, and how complete
assignment lists create, keep and end rooms."""

from __future__ import annotations

import time

import pytest

from switchboard_api.contract import JoinTokenClaims, RoomAssignment
from switchboard_sfu.lifecycle import Lifecycle
from switchboard_sfu.refusals import JoinRefused, RefusalCode
from switchboard_sfu.rooms import UNASSIGNED_GRACE_SECONDS, MemberKind, RoomRegistry


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeMember:
    def __init__(self, identity: str, kind: MemberKind = MemberKind.SIGNALLING) -> None:
        self.session_id = f"session-{identity}-{kind}"
        self.identity = identity
        self.kind = kind


def claims(room: str = "default/standup", identity: str = "alice", iat: int | None = None):
    issued = int(time.time()) if iat is None else iat
    return JoinTokenClaims(
        sub=identity, room=room, pod="sfu-0", pod_uid="uid", exp=issued + 60, iat=issued, nbf=issued
    )


def registry(managed: bool = True, clock: FakeClock | None = None, wall=time.time):
    return RoomRegistry(
        Lifecycle(),
        default_max_participants=2,
        managed=managed,
        clock=clock or FakeClock(),
        wall_clock=wall,
    )


def join(rooms: RoomRegistry, identity: str, room: str = "default/standup") -> FakeMember:
    admission = rooms.admit(claims(room, identity), MemberKind.SIGNALLING)
    member = FakeMember(identity)
    rooms.add(admission.room, member)  # type: ignore[arg-type]
    return member


def test_first_join_creates_the_room_with_the_default_limit() -> None:
    rooms = registry()
    join(rooms, "alice")
    join(rooms, "bob")

    with pytest.raises(JoinRefused) as refused:
        rooms.admit(claims(identity="carol"), MemberKind.SIGNALLING)
    assert refused.value.code == RefusalCode.ROOM_FULL


def test_same_identity_and_transport_replaces_instead_of_counting() -> None:
    rooms = registry()
    first = join(rooms, "alice")
    join(rooms, "bob")

    admission = rooms.admit(claims(identity="alice"), MemberKind.SIGNALLING)

    assert admission.replaces is first


def test_assignment_sets_limits_and_closing() -> None:
    rooms = registry()
    rooms.apply_assignments([RoomAssignment(room="default/big", max_participants=50)], 0.0)
    assert rooms.get("default/big").max_participants == 50  # type: ignore[union-attr]

    rooms.apply_assignments(
        [RoomAssignment(room="default/big", max_participants=50, closing=True)], 0.0
    )
    with pytest.raises(JoinRefused) as refused:
        rooms.admit(claims("default/big"), MemberKind.SIGNALLING)
    assert refused.value.code == RefusalCode.ROOM_CLOSING


def test_emptiness_is_timed_from_the_last_leave() -> None:
    clock = FakeClock()
    rooms = registry(clock=clock)
    member = join(rooms, "alice")
    room = rooms.get("default/standup")
    assert room is not None and room.empty_for(clock.now) is None

    rooms.remove(member, room)  # type: ignore[arg-type]
    clock.now += 42

    assert room.empty_for(clock.now) == 42
    assert rooms.get("default/standup") is room  # managed: the control plane decides


def test_unmanaged_pod_forgets_empty_rooms() -> None:
    rooms = registry(managed=False)
    member = join(rooms, "alice")
    rooms.remove(member, rooms.get("default/standup"))  # type: ignore[arg-type]

    assert rooms.get("default/standup") is None


def test_assigned_room_dropped_from_the_list_has_moved() -> None:
    rooms = registry()
    rooms.apply_assignments([RoomAssignment(room="default/a", max_participants=5)], 0.0)

    ended = rooms.apply_assignments([], 0.0)

    assert [room.key for room in ended] == ["default/a"]


def test_room_from_a_join_gets_a_grace_period_before_it_counts_as_moved() -> None:
    clock = FakeClock()
    rooms = registry(clock=clock)
    join(rooms, "alice")

    assert rooms.apply_assignments([], report_sent_at=clock.now) == []
    ended = rooms.apply_assignments([], report_sent_at=clock.now + UNASSIGNED_GRACE_SECONDS)

    assert [room.key for room in ended] == ["default/standup"]


def test_tokens_issued_before_a_room_left_cannot_bring_it_back() -> None:
    rooms = registry(wall=lambda: 5000.0)
    rooms.apply_assignments([RoomAssignment(room="default/a", max_participants=5)], 0.0)
    [moved] = rooms.apply_assignments([], 0.0)
    rooms.discard(moved)

    with pytest.raises(JoinRefused) as refused:
        rooms.admit(claims("default/a", iat=4999), MemberKind.SIGNALLING)
    assert refused.value.code == RefusalCode.ROOM_NOT_ASSIGNED
    # Placed here again later: a fresh token is honoured.
    assert rooms.admit(claims("default/a", iat=5001), MemberKind.SIGNALLING).created_room


def test_draining_and_fenced_pods_admit_nobody() -> None:
    lifecycle = Lifecycle()
    rooms = RoomRegistry(lifecycle, default_max_participants=5, managed=True)
    lifecycle.fence()
    with pytest.raises(JoinRefused) as fenced:
        rooms.admit(claims(), MemberKind.WHIP)
    lifecycle.unfence()
    lifecycle.start_drain("test")
    with pytest.raises(JoinRefused) as draining:
        rooms.admit(claims(), MemberKind.WHIP)

    assert (fenced.value.code, draining.value.code) == (RefusalCode.FENCED, RefusalCode.DRAINING)
    assert len(rooms) == 0
