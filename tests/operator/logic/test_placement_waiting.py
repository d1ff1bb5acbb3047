"""Waiting for a region whose SFU pods are starting: a room near a region that is coming up
stays Pending there instead of spilling to a farther region, and is placed there once a pod
takes rooms; a region that is genuinely full, or whose pods never come up, does not hold
rooms."""

from __future__ import annotations

from dataclasses import replace

from fixtures.placement_builders import (
    AMSTERDAM,
    FRANKFURT,
    NEW_YORK,
    NOW,
    TOKYO,
    add_pod,
    key,
    observe,
    region,
    report,
    request,
)
from switchboard_operator.logic.capacity import (
    CapacityModel,
    CapacityPicture,
    lost_pods,
)
from switchboard_operator.logic.placement import (
    Placement,
    Unschedulable,
    UnschedulableReason,
    Waiting,
    place,
    place_many,
    replace_rooms_of,
)
from switchboard_operator.logic.room_status import RoomOutcome, room_status

GRACE = CapacityModel().startup_grace_seconds
EU = region("eu", AMSTERDAM)
US = region("us", NEW_YORK)
NEAR_EU = FRANKFURT


def _us_with_room(picture: CapacityPicture) -> None:
    add_pod(picture, "us-0", region="us")


def _starting_pod(picture: CapacityPicture, name: str = "eu-0", *, seen_at: float = NOW) -> None:
    """An EU pod the Pod watch has seen, not Ready yet and without a report."""
    picture.apply_pod(observe(name, region="eu", ready=False), seen_at)


def _waits_for(decision, region_name: str) -> Waiting:
    assert isinstance(decision, Waiting), decision
    assert decision.region == region_name
    return decision


def _placed_in(decision, region_name: str) -> Placement:
    assert isinstance(decision, Placement), decision
    assert decision.region == region_name
    return decision


def test_a_room_waits_for_its_nearest_region_while_its_pods_start():
    picture = CapacityPicture()
    _us_with_room(picture)
    _starting_pod(picture)
    decision = place(request("a/r", location=NEAR_EU), [EU, US], picture, NOW + 5)
    waiting = _waits_for(decision, "eu")
    assert waiting.message == "waiting for SFU pods of its nearest Region 'eu' to start"
    assert waiting.recheck_at == NOW + GRACE


def test_a_ready_pod_that_has_not_reported_yet_is_still_starting():
    picture = CapacityPicture()
    _us_with_room(picture)
    picture.apply_pod(observe("eu-0", region="eu", ready=True), NOW)
    _waits_for(place(request("a/r", location=NEAR_EU), [EU, US], picture, NOW + 1), "eu")


def test_a_new_region_whose_pods_are_not_seen_yet_is_waited_for():
    picture = CapacityPicture()
    _us_with_room(picture)
    new_eu = replace(EU, wanted_pods=2, created_at=NOW - 3)
    decision = place(request("a/r", location=NEAR_EU), [new_eu, US], picture, NOW)
    assert _waits_for(decision, "eu").recheck_at == NOW - 3 + GRACE


def test_the_waiting_room_is_placed_in_its_region_once_a_pod_takes_rooms():
    picture = CapacityPicture()
    _us_with_room(picture)
    _starting_pod(picture)
    room = request("a/r", location=NEAR_EU)
    _waits_for(place(room, [EU, US], picture, NOW + 5), "eu")
    add_pod(picture, "eu-0", region="eu", now=NOW + 8)  # Ready, and its first report.
    _placed_in(place(room, [EU, US], picture, NOW + 8), "eu")


def test_a_pinned_room_waits_for_its_starting_region_instead_of_being_unschedulable():
    picture = CapacityPicture()
    _us_with_room(picture)
    _starting_pod(picture)
    decision = place(request("a/r", region="eu"), [EU, US], picture, NOW + 5)
    assert _waits_for(decision, "eu").message == (
        "waiting for SFU pods of its pinned Region 'eu' to start"
    )


def test_a_genuinely_full_region_still_spills_to_the_next_nearest():
    picture = CapacityPicture()
    _us_with_room(picture)
    add_pod(picture, "eu-0", region="eu", load=90.0)
    # Long created, with all the pods it wants open: nothing is coming.
    settled_eu = replace(EU, wanted_pods=1, created_at=NOW - 10 * GRACE)
    _placed_in(place(request("a/r", location=NEAR_EU), [settled_eu, US], picture, NOW), "us")


def test_a_region_with_full_open_pods_and_a_pod_starting_waits_for_that_pod():
    picture = CapacityPicture()
    _us_with_room(picture)
    add_pod(picture, "eu-0", region="eu", load=90.0)
    _starting_pod(picture, "eu-1")
    _waits_for(place(request("a/r", location=NEAR_EU), [EU, US], picture, NOW + 1), "eu")


def test_an_open_pod_with_room_takes_the_room_even_while_others_start():
    picture = CapacityPicture()
    _us_with_room(picture)
    add_pod(picture, "eu-0", region="eu")
    _starting_pod(picture, "eu-1")
    _placed_in(place(request("a/r", location=NEAR_EU), [EU, US], picture, NOW + 1), "eu")


def test_pods_that_do_not_come_up_within_the_startup_grace_are_not_waited_for():
    picture = CapacityPicture()
    _us_with_room(picture)
    _starting_pod(picture)
    later = NOW + GRACE + 1
    picture.apply_report(report("us-0", region="us", sequence=1), later)
    _placed_in(place(request("a/r", location=NEAR_EU), [EU, US], picture, later), "us")
    pinned = place(request("a/p", region="eu"), [EU, US], picture, later)
    assert isinstance(pinned, Unschedulable)
    assert pinned.reason == UnschedulableReason.REGION_FULL


def test_an_old_region_without_pods_is_not_waited_for():
    picture = CapacityPicture()
    _us_with_room(picture)
    old_eu = replace(EU, wanted_pods=1, created_at=NOW - GRACE - 1)
    _placed_in(place(request("a/r", location=NEAR_EU), [old_eu, US], picture, NOW), "us")


def test_a_region_whose_pod_failed_is_not_waited_for_even_while_a_replacement_starts():
    """A crash loop keeps creating young pods: one failure within the grace ends the wait."""
    picture = CapacityPicture()
    _us_with_room(picture)
    picture.apply_pod(replace(observe("eu-0", region="eu", ready=False), failed=True), NOW)
    _starting_pod(picture, "eu-1", seen_at=NOW + 2)
    _placed_in(place(request("a/r", location=NEAR_EU), [EU, US], picture, NOW + 3), "us")
    # Once the failure is older than the grace, a new pod is waited for again.
    picture.apply_report(report("us-0", region="us", sequence=1), NOW + GRACE + 3)
    _starting_pod(picture, "eu-2", seen_at=NOW + GRACE + 2)
    _waits_for(place(request("a/r", location=NEAR_EU), [EU, US], picture, NOW + GRACE + 3), "eu")


def test_draining_fenced_or_once_open_pods_are_not_starting():
    picture = CapacityPicture()
    _us_with_room(picture)
    picture.apply_pod(observe("eu-0", region="eu", ready=False, draining=True), NOW)
    picture.apply_pod(observe("eu-1", region="eu", ready=True), NOW)
    picture.apply_report(report("eu-1", region="eu", fenced=True), NOW)
    # Took rooms, then turned not-Ready (overloaded): it is not coming up, it is busy.
    add_pod(picture, "eu-2", region="eu")
    picture.apply_pod(observe("eu-2", region="eu", ready=False), NOW + 1)
    _placed_in(place(request("a/r", location=NEAR_EU), [EU, US], picture, NOW + 1), "us")


def test_a_room_waits_for_no_other_region_than_its_own_while_some_region_has_room():
    picture = CapacityPicture()
    add_pod(picture, "eu-0", region="eu", load=90.0)  # Nearest, full, not starting.
    picture.apply_pod(observe("us-0", region="us", ready=False), NOW)  # Starting.
    asia = region("asia", TOKYO)  # Farther than the US.
    add_pod(picture, "asia-0", region="asia")
    _placed_in(place(request("a/r", location=NEAR_EU), [EU, US, asia], picture, NOW + 1), "asia")


def test_with_no_room_anywhere_a_room_waits_for_a_starting_region_rather_than_failing():
    picture = CapacityPicture()
    add_pod(picture, "eu-0", region="eu", load=90.0)
    picture.apply_pod(observe("us-0", region="us", ready=False), NOW)
    decision = place(request("a/r"), [EU, US], picture, NOW + 1)
    assert _waits_for(decision, "us").message == "waiting for SFU pods of Region 'us' to start"


def test_without_a_location_a_room_goes_where_there_is_room_now():
    picture = CapacityPicture()
    add_pod(picture, "us-0", region="us")
    _starting_pod(picture)
    _placed_in(place(request("a/r"), [EU, US], picture, NOW + 1), "us")


def test_a_batch_waits_for_a_starting_region_it_has_already_found_full():
    picture = CapacityPicture()
    _us_with_room(picture)
    add_pod(picture, "eu-0", region="eu", capacity=10.0)
    _starting_pod(picture, "eu-1")
    rooms = [request(f"a/r{i}", 8.0, location=NEAR_EU) for i in range(3)]
    decisions = place_many(rooms, [EU, US], picture, NOW + 1)
    _placed_in(decisions[0], "eu")
    _waits_for(decisions[1], "eu")
    _waits_for(decisions[2], "eu")


def test_rooms_moving_off_a_lost_pod_never_wait_for_starting_pods():
    picture = CapacityPicture()
    _us_with_room(picture)
    add_pod(picture, "eu-0", region="eu")
    picture.assign("a/r", 10.0, pod=key("eu-0"), pod_uid="uid-eu-0", now=NOW)
    _starting_pod(picture, "eu-1", seen_at=NOW + 5)
    later = NOW + 11
    picture.apply_report(report("us-0", region="us", sequence=1), later)
    [lost] = lost_pods(picture, later, {(key("eu-0"), "uid-eu-0")}, 10.0)
    requests = {"a/r": request("a/r", location=NEAR_EU)}
    [moved] = replace_rooms_of(picture, lost, requests, [EU, US], later)
    _placed_in(moved.decision, "us")


def test_a_waiting_room_is_pending_with_the_reason_and_message():
    outcome = RoomOutcome(waiting=("WaitingForPods", "waiting for SFU pods of Region 'eu'"))
    status = room_status({}, 1, outcome, "2025-01-01T00:00:00Z")
    assert status["phase"] == "Pending"
    assert status["message"] == "waiting for SFU pods of Region 'eu'"
    [scheduled] = status["conditions"]
    assert (scheduled["type"], scheduled["status"], scheduled["reason"]) == (
        "Scheduled",
        "False",
        "WaitingForPods",
    )
