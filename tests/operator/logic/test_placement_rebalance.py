"""Rebalance: hot pods shed rooms that are still empty to cooler pods of their region,
never making a target hot, never moving an occupied room, and no faster than allowed."""

from __future__ import annotations

from fixtures.placement_builders import NOW, add_pod, key, region, report, usage
from switchboard_api.region import PlacementPolicy
from switchboard_operator.logic.capacity import CapacityModel, CapacityPicture
from switchboard_operator.logic.placement import MoveLimiter, apply_moves, rebalance
from switchboard_operator.logic.placement.rebalance import MOVE_WINDOW_SECONDS

HOLD = CapacityModel().reservation_hold_seconds
EU = region("eu")


def _hot_pod_with_empty_rooms(now: float) -> CapacityPicture:
    """sfu-0 at 90 % with four rooms, two of them measured empty; sfu-1 idle."""
    picture = CapacityPicture()
    add_pod(picture, "sfu-0")
    add_pod(picture, "sfu-1")
    for room, size in [("a/busy", 40.0), ("a/live", 30.0), ("a/idle", 12.0), ("a/unused", 8.0)]:
        picture.assign(room, size, pod=key("sfu-0"), pod_uid="uid-sfu-0", now=NOW)
    rooms = (
        usage("a/busy", participants=8, load=40.0),
        usage("a/live", participants=6, load=30.0),
        usage("a/idle", empty_since=30.0),
        usage("a/unused"),
    )
    picture.apply_report(report("sfu-0", sequence=1, load=70.0, rooms=rooms), now)
    picture.apply_report(report("sfu-1", sequence=1), now)
    return picture


def test_rebalance_moves_empty_rooms_off_a_hot_pod_until_it_cools():
    now = NOW + HOLD
    picture = _hot_pod_with_empty_rooms(now)
    hot_before = picture.pod(key("sfu-0")).utilization
    moves = rebalance(picture, [EU], now)
    # One empty room is enough to bring the pod under the 0.8 mark; the largest goes.
    assert [(m.room, m.target.pod_name) for m in moves] == [("a/idle", "sfu-1")]
    assert hot_before > 0.8
    # A suggestion only: the picture is unchanged until the caller applies it.
    assert picture.placement_of("a/idle").pod == key("sfu-0")


def test_rebalance_with_a_lower_threshold_moves_more_empty_rooms_but_never_occupied_ones():
    now = NOW + HOLD
    moves = rebalance(_hot_pod_with_empty_rooms(now), [EU], now, threshold=0.5)
    assert sorted(m.room for m in moves) == ["a/idle", "a/unused"]


def test_rebalance_leaves_young_rooms_alone():
    now = NOW + HOLD / 2
    assert rebalance(_hot_pod_with_empty_rooms(now), [EU], now, threshold=0.5) == []


def test_rebalance_never_makes_the_target_hot():
    now = NOW + HOLD
    picture = _hot_pod_with_empty_rooms(now)
    picture.apply_report(report("sfu-1", sequence=2, load=75.0), now)
    assert rebalance(picture, [EU], now) == []


def test_applied_rebalance_moves_keep_every_pod_within_its_mark():
    now = NOW + HOLD
    picture = _hot_pod_with_empty_rooms(now)
    for move in rebalance(picture, [EU], now):
        picture.assign(
            move.room,
            move.source.reservation,
            pod=move.target.pod,
            pod_uid=move.target.pod_uid,
            now=now,
        )
    for pod in picture.pods():
        assert pod.utilization <= 0.8 + 1e-9


def test_a_moved_room_keeps_the_time_it_has_been_empty_until_someone_joins():
    """Its new SFU counts emptiness from the move: the picture carries the earlier time
    over, so rebalancing never postpones a room's closing."""
    now = NOW + HOLD
    picture = _hot_pod_with_empty_rooms(now)
    [move] = rebalance(picture, [EU], now)
    assert move.room == "a/idle"  # reported empty for 30 s
    apply_moves(picture, [move], now)
    assert picture.empty_since("a/idle") == now - 30.0
    assert picture.empty_since("a/unused") is None  # not moved

    # The new pod reports it still empty (counting from the move): the carry stays.
    moved = usage("a/idle", empty_since=2.0)
    picture.apply_report(report("sfu-1", sequence=2, rooms=(moved,)), now + 2)
    assert picture.empty_since("a/idle") == now - 30.0
    # Someone joins: the carry ends.
    joined = usage("a/idle", participants=1, load=1.0)
    picture.apply_report(report("sfu-1", sequence=3, participants=1, rooms=(joined,)), now + 4)
    assert picture.empty_since("a/idle") is None


def test_occupied_rooms_never_move_however_hot_the_pod():
    now = NOW + HOLD
    moves = rebalance(_hot_pod_with_empty_rooms(now), [EU], now, threshold=0.2)
    assert sorted(m.room for m in moves) == ["a/idle", "a/unused"]


def test_at_most_max_moves_are_suggested_largest_first():
    now = NOW + HOLD
    moves = rebalance(_hot_pod_with_empty_rooms(now), [EU], now, threshold=0.5, max_moves=1)
    assert [m.room for m in moves] == ["a/idle"]
    assert rebalance(_hot_pod_with_empty_rooms(now), [EU], now, max_moves=0) == []


def test_a_packed_region_sheds_onto_pods_that_stay_below_the_threshold():
    """Packed prefers the fullest pod, but only among those the move keeps under the
    threshold: the large room goes to the idle pod, the small one to the fuller pod."""
    now = NOW + HOLD
    picture = _hot_pod_with_empty_rooms(now)
    picture.apply_report(report("sfu-1", sequence=2, load=40.0), now)
    add_pod(picture, "sfu-2", now=now)
    packed = region("eu", policy=PlacementPolicy.PACKED)
    moves = rebalance(picture, [packed], now, threshold=0.5)
    assert [(m.room, m.target.pod_name) for m in moves] == [
        ("a/idle", "sfu-2"),
        ("a/unused", "sfu-1"),
    ]
    apply_moves(picture, moves, now)
    assert picture.pod(key("sfu-1")).utilization <= 0.5
    assert picture.pod(key("sfu-2")).utilization <= 0.5


def test_a_moved_room_cannot_move_again_before_the_reservation_hold_ends():
    """No flapping: on its new pod the room is young again, so even if that pod turns hot
    at once the room stays until it has been there a whole hold."""
    now = NOW + HOLD
    picture = _hot_pod_with_empty_rooms(now)
    moves = rebalance(picture, [EU], now)
    apply_moves(picture, moves, now)
    moved = usage("a/idle")
    picture.apply_report(report("sfu-1", sequence=2, load=90.0, rooms=(moved,)), now + 1)
    assert rebalance(picture, [EU], now + 1) == []
    picture.apply_report(report("sfu-1", sequence=3, load=90.0, rooms=(moved,)), now + HOLD)
    add_pod(picture, "sfu-2", now=now + HOLD)
    moves = rebalance(picture, [EU], now + HOLD)
    assert [(m.room, m.target.pod_name) for m in moves] == [("a/idle", "sfu-2")]


# The move limit.


def test_the_move_limit_counts_moves_in_the_last_minute_per_region():
    limiter = MoveLimiter()
    assert limiter.allowance("eu", 5, NOW) == 5
    limiter.record("eu", 3, NOW)
    limiter.record("eu", 1, NOW + 30)
    assert limiter.allowance("eu", 5, NOW + 59) == 1
    assert limiter.allowance("us", 5, NOW + 59) == 5
    # Moves older than the window no longer count.
    assert limiter.allowance("eu", 5, NOW + MOVE_WINDOW_SECONDS) == 4
    assert limiter.allowance("eu", 5, NOW + 30 + MOVE_WINDOW_SECONDS) == 5


def test_a_lowered_limit_allows_nothing_until_enough_moves_age_out():
    limiter = MoveLimiter()
    limiter.record("eu", 10, NOW)
    assert limiter.allowance("eu", 4, NOW + 1) == 0


def test_regions_that_stop_rebalancing_are_forgotten():
    limiter = MoveLimiter()
    limiter.record("eu", 2, NOW)
    limiter.record("us", 2, NOW)
    limiter.retain({"us"})
    assert limiter.allowance("eu", 2, NOW) == 2
    assert limiter.allowance("us", 2, NOW) == 0
