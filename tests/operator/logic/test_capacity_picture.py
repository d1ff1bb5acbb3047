"""The capacity picture: which pods take new rooms, which are lost, and what each has left."""

from __future__ import annotations

import pytest

from fixtures.placement_builders import NOW, add_pod, key, observe, report, usage
from switchboard_operator.logic.capacity import (
    CapacityModel,
    CapacityPicture,
    LossReason,
    lost_pods,
    reports_fresh,
    rooms_to_move,
    silent_pods,
    unreported_pods,
)
from switchboard_operator.logic.leases import LeaseTiming

TIMEOUT = 6.0
NONE_SILENT: frozenset[tuple[str, str]] = frozenset()
LEASES = LeaseTiming()
MODEL = CapacityModel()
FRESH = MODEL.report_freshness_seconds
HOLD = MODEL.reservation_hold_seconds


def _picture() -> CapacityPicture:
    return CapacityPicture(MODEL)


def _place(picture: CapacityPicture, room: str, pod: str, reservation: float = 10.0, now=NOW):
    state = picture.pod(key(pod))
    assert state is not None
    return picture.assign(room, reservation, pod=key(pod), pod_uid=state.uid, now=now)


# Which pods take new rooms.


def test_a_ready_pod_with_a_fresh_report_takes_rooms():
    picture = _picture()
    state = add_pod(picture, "sfu-0")
    assert picture.takes_rooms(state, NOW + FRESH)


def test_a_pod_whose_report_is_older_than_the_freshness_window_takes_no_rooms():
    picture = _picture()
    state = add_pod(picture, "sfu-0")
    assert not picture.takes_rooms(state, NOW + FRESH + 0.001)


def test_a_pod_that_never_reported_takes_no_rooms():
    picture = _picture()
    picture.apply_pod(observe("sfu-0"), NOW)
    assert not picture.takes_rooms(picture.pod(key("sfu-0")), NOW)


def test_a_pod_seen_only_through_reports_takes_no_rooms_until_the_watch_says_ready():
    picture = _picture()
    picture.apply_report(report("sfu-0"), NOW)
    assert not picture.takes_rooms(picture.pod(key("sfu-0")), NOW)
    picture.apply_pod(observe("sfu-0"), NOW)
    assert picture.takes_rooms(picture.pod(key("sfu-0")), NOW)


@pytest.mark.parametrize(
    ("observation", "sfu_report"),
    [
        (observe("sfu-0", ready=False), report("sfu-0")),
        (observe("sfu-0", draining=True), report("sfu-0")),
        (observe("sfu-0"), report("sfu-0", draining=True)),
        (observe("sfu-0"), report("sfu-0", fenced=True)),
    ],
    ids=["not-ready", "drain-marked", "reports-draining", "fenced"],
)
def test_unready_draining_or_fenced_pods_take_no_rooms(observation, sfu_report):
    picture = _picture()
    picture.apply_pod(observation, NOW)
    picture.apply_report(sfu_report, NOW)
    assert not picture.takes_rooms(picture.pod(key("sfu-0")), NOW)


# When a pod is lost and its rooms must move.


def test_a_pod_turning_not_ready_keeps_its_rooms():
    # Overload and draining also turn readiness off: that is no reason to move rooms.
    picture = _picture()
    add_pod(picture, "sfu-0")
    _place(picture, "team/standup", "sfu-0")
    picture.apply_pod(observe("sfu-0", ready=False), NOW + 1)
    picture.apply_report(report("sfu-0", sequence=1), NOW + 1)
    assert lost_pods(picture, NOW + 1, NONE_SILENT, TIMEOUT) == []
    assert rooms_to_move(picture, NOW + 1, NONE_SILENT, TIMEOUT) == []
    assert picture.placement_of("team/standup").pod == key("sfu-0")


def test_a_silent_pod_is_lost_when_the_lease_rules_say_so():
    picture = _picture()
    add_pod(picture, "sfu-0")
    _place(picture, "team/standup", "sfu-0")
    silent = {(key("sfu-0"), "uid-sfu-0")}
    [lost] = lost_pods(picture, NOW + 1, silent, TIMEOUT)
    assert (lost.pod, lost.reason, lost.rooms) == (
        key("sfu-0"),
        LossReason.REPORTS_MISSING,
        ("team/standup",),
    )
    assert lost_pods(picture, NOW + 10 * TIMEOUT, NONE_SILENT, TIMEOUT) == []


def test_a_lone_silent_pod_that_speaks_leases_has_no_witness_and_keeps_its_rooms():
    # A Region's only pod cannot be told apart from a control plane cut off from it.
    picture = _picture()
    add_pod(picture, "sfu-0")
    picture.apply_report(report("sfu-0", sequence=1, peer=True), NOW)
    assert silent_pods(picture, NOW, NOW + 600, LEASES) == set()


def test_a_pod_without_leases_is_silent_after_the_failover_timeout_and_margin():
    picture = _picture()
    add_pod(picture, "sfu-0")  # reports without a peer endpoint: an older SFU
    picture.pod(key("sfu-0")).acks.acknowledged(0, NOW)
    limit = NOW + LEASES.failover_timeout_seconds + LEASES.silence_margin_seconds
    assert silent_pods(picture, NOW, limit, LEASES) == set()
    assert silent_pods(picture, NOW, limit + 0.1, LEASES) == {(key("sfu-0"), "uid-sfu-0")}


def test_a_pod_that_never_reported_to_this_term_may_hold_a_lease_and_is_not_silent_alone():
    picture = _picture()
    picture.apply_pod(observe("sfu-0"), NOW)
    assert silent_pods(picture, NOW, NOW + 600, LEASES) == set()


def test_a_pod_whose_process_ended_is_lost_at_once():
    picture = _picture()
    add_pod(picture, "sfu-0")
    _place(picture, "team/standup", "sfu-0")
    picture.apply_pod(observe("sfu-0", ready=False, ended=True), NOW + 1)
    assert [p.reason for p in lost_pods(picture, NOW + 1, NONE_SILENT, TIMEOUT)] == [
        LossReason.POD_ENDED
    ]


def test_a_lost_pod_without_rooms_is_not_listed():
    picture = _picture()
    add_pod(picture, "sfu-0")
    assert lost_pods(picture, NOW + 10 * TIMEOUT, NONE_SILENT, TIMEOUT) == []


def test_a_deleted_pod_is_lost_at_once_and_its_late_reports_are_refused():
    picture = _picture()
    add_pod(picture, "sfu-0")
    _place(picture, "team/standup", "sfu-0")
    lost = picture.remove_pod(key("sfu-0"), "uid-sfu-0")
    assert lost is not None and lost.reason == LossReason.POD_DELETED
    assert [p.reason for p in lost_pods(picture, NOW, NONE_SILENT, TIMEOUT)] == [
        LossReason.POD_DELETED
    ]
    late = picture.apply_report(report("sfu-0", sequence=1), NOW + 1)
    assert not late.accepted
    assert picture.pod(key("sfu-0")) is None


def test_a_new_incarnation_reporting_loses_the_old_one_and_starts_empty():
    picture = _picture()
    add_pod(picture, "sfu-0")
    _place(picture, "team/standup", "sfu-0")
    outcome = picture.apply_report(report("sfu-0", uid="uid-2"), NOW + 1)
    assert outcome.accepted and outcome.new_incarnation
    [lost] = lost_pods(picture, NOW + 1, NONE_SILENT, TIMEOUT)
    assert (lost.uid, lost.reason, lost.rooms) == (
        "uid-sfu-0",
        LossReason.NEW_INCARNATION,
        ("team/standup",),
    )
    current = picture.pod(key("sfu-0"))
    assert current.uid == "uid-2" and current.rooms == {}
    assert not picture.apply_report(report("sfu-0", sequence=5), NOW + 2).accepted


def test_a_new_incarnation_seen_by_the_pod_watch_loses_the_old_one():
    picture = _picture()
    add_pod(picture, "sfu-0")
    _place(picture, "team/standup", "sfu-0")
    picture.apply_pod(observe("sfu-0", uid="uid-2"), NOW + 1)
    assert [p.reason for p in lost_pods(picture, NOW + 1, NONE_SILENT, TIMEOUT)] == [
        LossReason.NEW_INCARNATION
    ]


def test_a_pod_reporting_fenced_with_rooms_is_lost():
    # It has already told its participants to migrate: the rooms must go elsewhere.
    picture = _picture()
    add_pod(picture, "sfu-0")
    _place(picture, "team/standup", "sfu-0")
    picture.apply_report(report("sfu-0", sequence=1, fenced=True), NOW + 1)
    assert [p.reason for p in lost_pods(picture, NOW + 1, NONE_SILENT, TIMEOUT)] == [
        LossReason.FENCED
    ]


def test_a_retired_incarnation_is_forgotten_once_its_rooms_have_moved():
    picture = _picture()
    add_pod(picture, "sfu-0")
    _place(picture, "team/standup", "sfu-0")
    picture.remove_pod(key("sfu-0"))
    picture.release("team/standup")
    assert list(picture.incarnations()) == []
    assert lost_pods(picture, NOW, NONE_SILENT, TIMEOUT) == []


def test_rooms_of_a_draining_pod_move_only_after_its_drain_deadline():
    picture = _picture()
    add_pod(picture, "sfu-0")
    _place(picture, "team/standup", "sfu-0")
    picture.apply_pod(observe("sfu-0", draining=True, drain_deadline=NOW + 60), NOW + 1)
    picture.apply_report(report("sfu-0", sequence=1, draining=True), NOW + 59)
    assert rooms_to_move(picture, NOW + 59, NONE_SILENT, TIMEOUT) == []
    picture.apply_report(report("sfu-0", sequence=2, draining=True), NOW + 60)
    [move] = rooms_to_move(picture, NOW + 60, NONE_SILENT, TIMEOUT)
    assert (move.room, move.reason) == ("team/standup", LossReason.DRAIN_DEADLINE)
    assert lost_pods(picture, NOW + 60, NONE_SILENT, TIMEOUT) == []


def test_rooms_to_move_lists_largest_rooms_of_each_pod_first():
    picture = _picture()
    add_pod(picture, "sfu-0")
    for room, reservation in [("a/small", 1.0), ("a/large", 30.0), ("a/medium", 5.0)]:
        _place(picture, room, "sfu-0", reservation)
    silent = {(key("sfu-0"), "uid-sfu-0")}
    moves = rooms_to_move(picture, NOW + TIMEOUT + 1, silent, TIMEOUT)
    assert [m.room for m in moves] == ["a/large", "a/medium", "a/small"]


# Reports: ordering and restarts.


def test_an_older_report_is_refused_and_changes_nothing():
    picture = _picture()
    add_pod(picture, "sfu-0")
    picture.apply_report(report("sfu-0", sequence=5, load=10.0), NOW + 1)
    outcome = picture.apply_report(report("sfu-0", sequence=4, load=90.0), NOW + 2)
    assert not outcome.accepted
    state = picture.pod(key("sfu-0"))
    assert (state.load, state.reported_at) == (10.0, NOW + 1)


def test_a_restarted_sfu_process_in_the_same_pod_is_heard_again():
    # Same Pod UID, new process: its sequence starts at 0 again with a later sentAt.
    picture = _picture()
    add_pod(picture, "sfu-0")
    picture.apply_report(report("sfu-0", sequence=7), NOW + 1)
    restarted = report("sfu-0", sequence=0).model_copy(
        update={"sent_at": report("sfu-0", sequence=8).sent_at}
    )
    assert picture.apply_report(restarted, NOW + 2).accepted


# Load: reservations, measurements and free capacity.


def test_free_capacity_is_capacity_minus_reservations():
    picture = _picture()
    add_pod(picture, "sfu-0", capacity=100.0)
    _place(picture, "a/one", "sfu-0", 20.0)
    _place(picture, "a/two", "sfu-0", 15.0)
    assert picture.free_capacity(key("sfu-0")) == pytest.approx(65.0)
    picture.release("a/one")
    assert picture.free_capacity(key("sfu-0")) == pytest.approx(85.0)


def test_measured_load_of_rooms_the_picture_does_not_know_still_counts():
    picture = _picture()
    add_pod(picture, "sfu-0", capacity=100.0)
    _place(picture, "a/known", "sfu-0", 20.0)
    picture.apply_report(
        report(
            "sfu-0",
            sequence=1,
            load=35.0,
            rooms=(usage("a/known", load=5.0), usage("a/unknown", load=30.0)),
        ),
        NOW + 1,
    )
    # a/known is young (counts its reservation of 20); a/unknown's 30 is baseline.
    assert picture.free_capacity(key("sfu-0")) == pytest.approx(100.0 - 20.0 - 30.0)


def test_a_mature_room_releases_part_of_its_unused_reservation():
    picture = _picture()
    add_pod(picture, "sfu-0", capacity=100.0)
    _place(picture, "a/quiet", "sfu-0", 20.0)
    later = NOW + HOLD
    picture.apply_report(
        report("sfu-0", sequence=1, load=4.0, rooms=(usage("a/quiet", load=4.0),)),
        later,
    )
    counted = 4.0 + MODEL.retained_fraction * 16.0
    assert picture.free_capacity(key("sfu-0")) == pytest.approx(100.0 - counted)


def test_a_measured_room_that_is_unassigned_stops_counting():
    picture = _picture()
    add_pod(picture, "sfu-0", capacity=100.0)
    _place(picture, "a/room", "sfu-0", 20.0)
    picture.apply_report(
        report("sfu-0", sequence=1, load=10.0, rooms=(usage("a/room", load=10.0),)),
        NOW + 1,
    )
    picture.release("a/room")
    assert picture.free_capacity(key("sfu-0")) == pytest.approx(100.0)


def test_a_report_names_rooms_the_pod_holds_but_should_not():
    picture = _picture()
    add_pod(picture, "sfu-0")
    _place(picture, "a/kept", "sfu-0")
    outcome = picture.apply_report(
        report("sfu-0", sequence=1, rooms=(usage("a/kept"), usage("a/closed"))),
        NOW + 1,
    )
    assert outcome.strays == ("a/closed",)


def test_capacity_freed_when_a_pod_starts_taking_rooms_or_its_load_drops():
    picture = _picture()
    picture.apply_pod(observe("sfu-0"), NOW)
    assert picture.apply_report(report("sfu-0", load=50.0), NOW).capacity_freed
    assert not picture.apply_report(report("sfu-0", sequence=1, load=60.0), NOW + 1).capacity_freed
    assert picture.apply_report(report("sfu-0", sequence=2, load=20.0), NOW + 2).capacity_freed


# Rebuilding after an operator restart.


def test_restored_rooms_stay_when_their_pod_reports_with_the_same_uid():
    picture = _picture()
    picture.assign("a/room", 10.0, pod=key("sfu-0"), pod_uid="uid-sfu-0", now=NOW)
    add_pod(picture, "sfu-0", now=NOW + 1)
    assert lost_pods(picture, NOW + 1, NONE_SILENT, TIMEOUT) == []
    assert [p.room for p in picture.rooms_on(key("sfu-0"))] == ["a/room"]
    assert picture.free_capacity(key("sfu-0")) == pytest.approx(90.0)


def test_restored_rooms_of_a_replaced_pod_are_lost():
    picture = _picture()
    add_pod(picture, "sfu-0", uid="uid-new")
    picture.assign("a/room", 10.0, pod=key("sfu-0"), pod_uid="uid-old", now=NOW)
    [lost] = lost_pods(picture, NOW, NONE_SILENT, TIMEOUT)
    assert (lost.uid, lost.reason) == ("uid-old", LossReason.NEW_INCARNATION)


def test_restored_rooms_of_a_pod_that_never_reports_are_lost_after_the_timeout():
    picture = _picture()
    picture.assign("a/room", 10.0, pod=key("sfu-0"), pod_uid="uid-sfu-0", now=NOW)
    assert lost_pods(picture, NOW + TIMEOUT, NONE_SILENT, TIMEOUT) == []
    assert [p.reason for p in lost_pods(picture, NOW + TIMEOUT + 1, NONE_SILENT, TIMEOUT)] == [
        LossReason.REPORTS_MISSING
    ]


# Reading.


def test_region_totals_sum_the_region_pods():
    picture = _picture()
    add_pod(picture, "sfu-0", capacity=100.0, load=10.0)
    add_pod(picture, "sfu-1", capacity=50.0)
    add_pod(picture, "sfu-2", ready=False)
    add_pod(picture, "sfu-9", region="us")
    _place(picture, "a/room", "sfu-1", 5.0)
    totals = picture.region_totals("eu", NOW)
    assert (totals.pods, totals.open_pods, totals.rooms) == (3, 2, 1)
    assert totals.capacity == pytest.approx(150.0)
    assert totals.used == pytest.approx(15.0)
    assert totals.load == pytest.approx(10.0)


def test_a_copy_is_independent_of_the_original():
    picture = _picture()
    add_pod(picture, "sfu-0")
    clone = picture.copy()
    _place(clone, "a/room", "sfu-0")
    assert picture.placement_of("a/room") is None
    assert picture.free_capacity(key("sfu-0")) == pytest.approx(100.0)
    assert clone.free_capacity(key("sfu-0")) == pytest.approx(90.0)


def test_a_pod_emptied_and_refilled_counts_only_its_new_rooms():
    picture = _picture()
    add_pod(picture, "sfu-0")
    _place(picture, "a/one", "sfu-0", 30.0)
    picture.release("a/one")
    _place(picture, "a/two", "sfu-0", 10.0)
    assert picture.free_capacity(key("sfu-0")) == pytest.approx(90.0)
    picture.apply_report(report("sfu-0", sequence=1), NOW + 1)
    assert picture.free_capacity(key("sfu-0")) == pytest.approx(90.0)


# Demand (what the autoscaler scales a region to).


def test_demand_counts_placed_waiting_and_spilled_rooms_and_changes_are_signalled():
    picture = _picture()
    add_pod(picture, "sfu-0", region="eu")
    add_pod(picture, "sfu-1", region="us")
    changed: list[str] = []
    picture.subscribe(changed.append)
    _place(picture, "a/placed", "sfu-0", reservation=10.0)
    picture.want("a/waiting", "eu", 4.0)
    # Spilled to us because eu was full: counts for both, and moves back nowhere.
    state = picture.pod(key("sfu-1"))
    picture.assign("a/spilled", 3.0, pod=key("sfu-1"), pod_uid=state.uid, now=NOW, home="eu")
    assert picture.region_demand("eu") == pytest.approx(17.0)
    assert picture.region_demand("us") == pytest.approx(3.0)
    assert {"eu", "us"} <= set(changed)
    # Placed at last, released, gone: each stops counting.
    _place(picture, "a/waiting", "sfu-0", reservation=4.0)
    picture.release("a/spilled")
    picture.release("a/placed")
    assert picture.region_demand("eu") == pytest.approx(4.0)
    assert picture.region_demand("us") == pytest.approx(0.0)


def test_a_cordoned_pod_takes_no_new_rooms_but_keeps_its_own():
    picture = _picture()
    add_pod(picture, "sfu-0")
    _place(picture, "a/kept", "sfu-0")
    assert not picture.cordon(key("sfu-0"))  # it holds a room: not to be deleted
    state = picture.pod(key("sfu-0"))
    assert not picture.takes_rooms(state, NOW)
    assert [r.room for r in picture.rooms_on(key("sfu-0"))] == ["a/kept"]
    picture.release("a/kept")
    assert picture.cordon(key("sfu-0"))


def test_stale_reports_of_a_ready_pod_block_scale_down():
    picture = _picture()
    add_pod(picture, "sfu-0")
    assert reports_fresh(picture, "eu", NOW + FRESH)
    assert not reports_fresh(picture, "eu", NOW + FRESH + 1)


def test_a_pod_that_served_then_went_silent_and_unready_still_blocks_scale_down():
    """A silent SFU fences itself and fails readiness: its missing reports still count."""
    picture = _picture()
    add_pod(picture, "sfu-0")
    later = NOW + FRESH + 1
    picture.apply_pod(observe("sfu-0", ready=False), later)
    assert not reports_fresh(picture, "eu", later)
    # Reporting again lifts the hold, Ready or not yet.
    picture.apply_report(report("sfu-0", sequence=1), later)
    assert reports_fresh(picture, "eu", later)


def test_after_an_operator_restart_a_pod_that_was_ready_still_blocks_scale_down():
    """A new operator's picture has no memory of the pod serving: its Pod (Ready before,
    now not, no report since the restart) says it, and its missing reports are named."""
    picture = _picture()
    picture.apply_pod(observe("sfu-0", ready=False, been_ready=True), NOW)
    picture.apply_pod(observe("sfu-1", ready=False, been_ready=False), NOW)  # starting
    assert unreported_pods(picture, "eu", NOW) == (key("sfu-0"),)
    assert not reports_fresh(picture, "eu", NOW)
    picture.apply_report(report("sfu-0"), NOW)
    assert unreported_pods(picture, "eu", NOW) == ()


def test_pods_not_started_or_on_their_way_out_are_not_waited_for():
    picture = _picture()
    picture.apply_pod(observe("starting", ready=False), NOW)  # never reported yet
    add_pod(picture, "drained")
    picture.apply_pod(observe("drained", ready=False, draining=True), NOW)
    add_pod(picture, "ended")
    picture.apply_pod(observe("ended", ready=False, ended=True), NOW)
    assert reports_fresh(picture, "eu", NOW + FRESH + 1)
