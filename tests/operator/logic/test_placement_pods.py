"""Pod choice inside a region: LeastLoaded spreads, Packed fills to the high-water mark,
capacity is never exceeded, and batches never double-book a pod."""

from __future__ import annotations

from collections import Counter

import pytest

from fixtures.placement_builders import NOW, add_pod, key, region, request
from switchboard_api.region import PlacementPolicy
from switchboard_operator.logic.capacity import CapacityPicture
from switchboard_operator.logic.placement import (
    Placement,
    PlacementSettings,
    PodSearch,
    Unschedulable,
    place,
    place_many,
)

SEARCHES = [PlacementSettings(search=s) for s in PodSearch]


def _search_id(settings: PlacementSettings) -> str:
    return settings.search.value


LEAST_LOADED = region("eu")
PACKED = region("eu", policy=PlacementPolicy.PACKED)


def _pods(picture: CapacityPicture, count: int, capacity: float = 100.0) -> None:
    for i in range(count):
        add_pod(picture, f"sfu-{i}", capacity=capacity)


def _pod_names(decisions) -> list[str]:
    assert all(isinstance(d, Placement) for d in decisions), decisions
    return [d.pod_name for d in decisions]


@pytest.mark.parametrize("settings", SEARCHES, ids=_search_id)
def test_least_loaded_spreads_rooms_evenly(settings):
    picture = CapacityPicture()
    _pods(picture, 3)
    decisions = place_many(
        [request(f"a/r{i}", 10.0) for i in range(6)], [LEAST_LOADED], picture, NOW, settings
    )
    assert Counter(_pod_names(decisions)) == {"sfu-0": 2, "sfu-1": 2, "sfu-2": 2}


def test_least_loaded_picks_the_pod_with_the_lowest_utilization():
    picture = CapacityPicture()
    add_pod(picture, "big", capacity=200.0, load=60.0)  # 30 %
    add_pod(picture, "small", capacity=50.0, load=10.0)  # 20 %
    assert _pod_names([place(request("a/r", 5.0), [LEAST_LOADED], picture, NOW)]) == ["small"]


def test_packed_fills_one_pod_to_the_high_water_mark_before_the_next():
    picture = CapacityPicture()
    _pods(picture, 3)
    decisions = place_many([request(f"a/r{i}", 10.0) for i in range(10)], [PACKED], picture, NOW)
    # 8 rooms of 10 reach the 0.8 mark on sfu-0; the rest go to sfu-1; sfu-2 stays idle.
    assert Counter(_pod_names(decisions)) == {"sfu-0": 8, "sfu-1": 2}


def test_packed_prefers_the_fullest_pod_that_still_fits():
    picture = CapacityPicture()
    add_pod(picture, "a", load=30.0)
    add_pod(picture, "b", load=75.0)  # fullest, but 75 + 10 is over the mark
    add_pod(picture, "c", load=60.0)
    assert _pod_names([place(request("x/r", 10.0), [PACKED], picture, NOW)]) == ["c"]


@pytest.mark.parametrize("policy", list(PlacementPolicy))
def test_a_pod_with_rooms_takes_none_beyond_the_high_water_mark(policy):
    picture = CapacityPicture()
    _pods(picture, 1)
    decisions = place_many(
        [request(f"a/r{i}", 30.0) for i in range(3)],
        [region("eu", policy=policy)],
        picture,
        NOW,
    )
    # 30 + 30 = 60 fits under 80; a third would make 90.
    assert [type(d) for d in decisions] == [Placement, Placement, Unschedulable]


def test_an_empty_pod_takes_a_room_larger_than_its_high_water_mark():
    picture = CapacityPicture()
    _pods(picture, 1)
    decisions = place_many(
        [request("a/huge", 95.0), request("a/next", 1.0)], [LEAST_LOADED], picture, NOW
    )
    assert [type(d) for d in decisions] == [Placement, Unschedulable]


def test_no_pod_is_ever_filled_beyond_its_capacity():
    picture = CapacityPicture()
    _pods(picture, 1)
    assert isinstance(
        place(request("a/too-big", 100.5), [LEAST_LOADED], picture, NOW), Unschedulable
    )


def test_ties_go_to_the_pod_whose_name_sorts_first():
    picture = CapacityPicture()
    for name in ["sfu-c", "sfu-a", "sfu-b"]:
        add_pod(picture, name)
    for r in (LEAST_LOADED, PACKED):
        assert _pod_names([place(request("a/r"), [r], picture, NOW)]) == ["sfu-a"]


@pytest.mark.parametrize("settings", SEARCHES, ids=_search_id)
def test_pods_that_take_no_rooms_are_never_chosen(settings):
    picture = CapacityPicture()
    add_pod(picture, "sfu-0", ready=False)
    add_pod(picture, "sfu-1", draining=True)
    add_pod(picture, "sfu-2", now=NOW - 60)  # its last report is a minute old
    add_pod(picture, "sfu-3")
    decisions = place_many(
        [request(f"a/r{i}", 5.0) for i in range(10)], [LEAST_LOADED], picture, NOW, settings
    )
    assert set(_pod_names(decisions)) == {"sfu-3"}


@pytest.mark.parametrize("settings", SEARCHES, ids=_search_id)
def test_excluded_pods_are_never_chosen(settings):
    picture = CapacityPicture()
    _pods(picture, 3)
    decision = place(
        request("a/r"), [LEAST_LOADED], picture, NOW, settings=settings, exclude={key("sfu-0")}
    )
    assert isinstance(decision, Placement) and decision.pod_name != "sfu-0"


def test_two_choices_still_finds_the_only_pod_with_room():
    # Most samples hit full pods: the scan behind them keeps placement complete.
    picture = CapacityPicture()
    for i in range(50):
        add_pod(picture, f"sfu-{i:02}", load=0.0 if i == 37 else 79.0)
    settings = PlacementSettings(search=PodSearch.TWO_CHOICES)
    decisions = [
        place(request(f"a/r{i}", 5.0), [LEAST_LOADED], picture, NOW, settings=settings)
        for i in range(20)
    ]
    assert set(_pod_names(decisions)) == {"sfu-37"}


@pytest.mark.parametrize("settings", SEARCHES, ids=_search_id)
def test_a_batch_never_gives_the_last_slot_twice(settings):
    picture = CapacityPicture()
    _pods(picture, 2)
    decisions = place_many(
        [request(f"a/r{i}", 40.0) for i in range(5)], [LEAST_LOADED], picture, NOW, settings
    )
    # Each pod holds two rooms of 40 (80 = the mark); the fifth room has nowhere to go.
    assert Counter(type(d) for d in decisions) == {Placement: 4, Unschedulable: 1}
    for pod in ("sfu-0", "sfu-1"):
        assert picture.free_capacity(key(pod)) == pytest.approx(20.0)


def test_a_batch_keeps_rooms_that_are_already_placed_where_they_are():
    picture = CapacityPicture()
    _pods(picture, 2)
    [first] = place_many([request("a/r", 10.0)], [LEAST_LOADED], picture, NOW)
    again = place_many([request("a/r", 10.0), request("a/r", 10.0)], [LEAST_LOADED], picture, NOW)
    assert again == [first, first]
    assert picture.room_count() == 1


def test_place_alone_reserves_nothing():
    picture = CapacityPicture()
    _pods(picture, 1)
    place(request("a/r", 10.0), [LEAST_LOADED], picture, NOW)
    assert picture.placement_of("a/r") is None
    assert picture.free_capacity(key("sfu-0")) == pytest.approx(100.0)
