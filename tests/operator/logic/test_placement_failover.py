"""Failover re-places every room of a lost pod on healthy pods."""

from __future__ import annotations

import pytest

from fixtures.placement_builders import NOW, add_pod, key, region, report, request
from switchboard_operator.logic.capacity import (
    CapacityPicture,
    LossReason,
    lost_pods,
    rooms_to_move,
)
from switchboard_operator.logic.placement import (
    Placement,
    Unschedulable,
    place_many,
    replace_rooms,
    replace_rooms_of,
)

TIMEOUT = 6.0
SILENT = {(key("sfu-0"), "uid-sfu-0")}
"""sfu-0 is silent, as the lease rules decide (tested on their own)."""
EU = region("eu")


def _picture_with_rooms(rooms: int, reservation: float = 10.0) -> CapacityPicture:
    """Three pods; `rooms` rooms packed onto sfu-0."""
    picture = CapacityPicture()
    for i in range(3):
        add_pod(picture, f"sfu-{i}")
    for i in range(rooms):
        picture.assign(f"a/r{i}", reservation, pod=key("sfu-0"), pod_uid="uid-sfu-0", now=NOW)
    return picture


def _requests(count: int, reservation: float = 10.0):
    return {f"a/r{i}": request(f"a/r{i}", reservation) for i in range(count)}


def test_every_room_of_a_lost_pod_is_re_placed_on_other_pods():
    picture = _picture_with_rooms(6)
    [lost] = lost_pods(picture, NOW + TIMEOUT + 1, SILENT, TIMEOUT)
    # The survivors keep reporting.
    for i in (1, 2):
        picture.apply_report(report(f"sfu-{i}", sequence=1), NOW + TIMEOUT + 1)
    replacements = replace_rooms_of(picture, lost, _requests(6), [EU], NOW + TIMEOUT + 1)
    assert sorted(r.room for r in replacements) == sorted(_requests(6))
    assert {r.decision.pod_name for r in replacements} == {"sfu-1", "sfu-2"}
    assert all(r.reason == LossReason.REPORTS_MISSING for r in replacements)
    assert picture.rooms_on(key("sfu-0")) == []
    assert lost_pods(picture, NOW + TIMEOUT + 1, SILENT, TIMEOUT) == []


def test_rooms_never_return_to_a_new_incarnation_of_the_lost_pod():
    picture = _picture_with_rooms(2)
    picture.apply_report(report("sfu-0", uid="uid-restarted", sequence=0), NOW + 1)
    [lost] = lost_pods(picture, NOW + 1, SILENT, TIMEOUT)
    replacements = replace_rooms_of(picture, lost, _requests(2), [EU], NOW + 1)
    assert all(r.decision.pod_name != "sfu-0" for r in replacements)


def test_rooms_that_fit_nowhere_are_unschedulable_and_leave_the_lost_pod():
    picture = _picture_with_rooms(6, reservation=30.0)  # 180 units on three 100-unit pods
    picture.remove_pod(key("sfu-0"))
    [lost] = lost_pods(picture, NOW, SILENT, TIMEOUT)
    replacements = replace_rooms_of(picture, lost, _requests(6, 30.0), [EU], NOW)
    outcomes = [type(r.decision) for r in replacements]
    assert outcomes.count(Placement) == 4 and outcomes.count(Unschedulable) == 2
    assert list(picture.incarnations()) == [picture.pod(key("sfu-1")), picture.pod(key("sfu-2"))]
    # The picture remembers where the unplaced rooms were, and why, until they are placed.
    stranded = [r.room for r in replacements if isinstance(r.decision, Unschedulable)]
    for room in stranded:
        displaced = picture.displacement(room)
        assert displaced is not None and displaced.reason == LossReason.POD_DELETED
        assert displaced.message == f"Left SFU pod {key('sfu-0')} (PodDeleted)."
    placed = [r.room for r in replacements if isinstance(r.decision, Placement)]
    assert all(picture.displacement(room) is None for room in placed)
    add_pod(picture, "sfu-3")
    picture.assign(stranded[0], 30.0, pod=key("sfu-3"), pod_uid="uid-sfu-3", now=NOW)
    assert picture.displacement(stranded[0]) is None
    picture.release(stranded[1])
    assert picture.displacement(stranded[1]) is None


def test_largest_rooms_are_re_placed_first():
    picture = CapacityPicture()
    add_pod(picture, "sfu-0")
    add_pod(picture, "sfu-1")
    sizes = {"a/s": 10.0, "a/l": 70.0, "a/m": 20.0}
    for room, size in sizes.items():
        picture.assign(room, size, pod=key("sfu-0"), pod_uid="uid-sfu-0", now=NOW)
    picture.remove_pod(key("sfu-0"))
    requests = {room: request(room, size) for room, size in sizes.items()}
    moves = rooms_to_move(picture, NOW, SILENT, TIMEOUT)
    replacements = replace_rooms(picture, moves, requests, [EU], NOW)
    # The idle survivor takes 70, then 20 would pass the 0.8 mark but 10 still fits.
    assert [r.room for r in replacements] == ["a/l", "a/m", "a/s"]
    assert [type(r.decision) for r in replacements] == [Placement, Unschedulable, Placement]


def test_a_room_whose_room_object_is_gone_is_only_released():
    picture = _picture_with_rooms(2)
    picture.remove_pod(key("sfu-0"))
    [lost] = lost_pods(picture, NOW, SILENT, TIMEOUT)
    replacements = replace_rooms_of(picture, lost, {"a/r0": request("a/r0")}, [EU], NOW)
    assert [r.room for r in replacements] == ["a/r0"]
    assert picture.placement_of("a/r1") is None


def test_a_room_moved_since_the_list_was_made_is_left_alone():
    picture = _picture_with_rooms(1)
    picture.remove_pod(key("sfu-0"))
    moves = rooms_to_move(picture, NOW, SILENT, TIMEOUT)
    picture.assign("a/r0", 10.0, pod=key("sfu-2"), pod_uid="uid-sfu-2", now=NOW)
    assert replace_rooms(picture, moves, _requests(1), [EU], NOW) == []
    assert picture.placement_of("a/r0").pod == key("sfu-2")


def test_batch_then_failover_leaves_capacity_consistent():
    picture = CapacityPicture()
    for i in range(4):
        add_pod(picture, f"sfu-{i}")
    requests = {f"a/r{i}": request(f"a/r{i}", 7.0) for i in range(30)}
    place_many(requests.values(), [EU], picture, NOW)
    picture.remove_pod(key("sfu-1"))
    [lost] = lost_pods(picture, NOW, set(), TIMEOUT)
    replace_rooms_of(picture, lost, requests, [EU], NOW)
    placed = sum(len(picture.rooms_on(key(f"sfu-{i}"))) for i in (0, 2, 3))
    assert placed == 30
    for i in (0, 2, 3):
        assert picture.free_capacity(key(f"sfu-{i}")) == pytest.approx(
            100.0 - 7.0 * len(picture.rooms_on(key(f"sfu-{i}")))
        )
