"""Region choice: pinned regions are honoured, otherwise the nearest admitted region with
room wins, spilling to the next nearest; tenancy by namespace selector."""

from __future__ import annotations

import pytest

from fixtures.placement_builders import (
    AMSTERDAM,
    FRANKFURT,
    NEW_YORK,
    NOW,
    SAO_PAULO,
    TOKYO,
    add_pod,
    observe,
    region,
    request,
)
from switchboard_api.geo import GeoLocation
from switchboard_api.kube_types import LabelSelector, LabelSelectorRequirement, SelectorOperator
from switchboard_operator.logic.capacity import CapacityPicture
from switchboard_operator.logic.placement import (
    Placement,
    Unschedulable,
    UnschedulableReason,
    place,
)
from switchboard_operator.logic.placement.geo import great_circle_km
from switchboard_operator.logic.placement.tenancy import selector_admits

EU = region("eu", AMSTERDAM)
US = region("us", NEW_YORK)
BR = region("br", SAO_PAULO)
REGIONS = [EU, US, BR]


def _picture(free: dict[str, float] | None = None) -> CapacityPicture:
    """One pod per region (named after it), 100 units each, `free[region]` units free."""
    picture = CapacityPicture()
    for r in REGIONS:
        load = 100.0 - (free or {}).get(r.name, 100.0)
        add_pod(picture, f"{r.name}-0", region=r.name, load=load)
    return picture


def _region_of(decision) -> str:
    assert isinstance(decision, Placement), decision
    return decision.region


# Distances.


def test_great_circle_distance_between_cities():
    assert great_circle_km(AMSTERDAM, NEW_YORK) == pytest.approx(5860, rel=0.01)
    assert great_circle_km(AMSTERDAM, FRANKFURT) == pytest.approx(365, rel=0.02)
    assert great_circle_km(TOKYO, TOKYO) == 0.0


def test_great_circle_distance_is_at_most_half_the_circumference():
    north = GeoLocation(latitude=90, longitude=0)
    south = GeoLocation(latitude=-90, longitude=0)
    assert great_circle_km(north, south) == pytest.approx(20015, rel=0.001)


# Pinned regions.


def test_a_pinned_room_goes_to_its_region_even_when_another_is_nearer():
    decision = place(request("a/r", region="br", location=AMSTERDAM), REGIONS, _picture(), NOW)
    assert _region_of(decision) == "br"


def test_a_pinned_room_whose_region_is_full_is_unschedulable_not_placed_elsewhere():
    picture = _picture(free={"br": 5.0})
    decision = place(request("a/r", 10.0, region="br"), REGIONS, picture, NOW)
    assert isinstance(decision, Unschedulable)
    assert decision.reason == UnschedulableReason.REGION_FULL
    assert "'br'" in decision.message and "10" in decision.message


def test_a_room_pinned_to_a_missing_region_is_unschedulable():
    decision = place(request("a/r", region="mars"), REGIONS, _picture(), NOW)
    assert isinstance(decision, Unschedulable)
    assert decision.reason == UnschedulableReason.REGION_NOT_FOUND
    assert "'mars'" in decision.message


def test_a_room_pinned_to_a_region_that_excludes_its_namespace_is_unschedulable():
    private = region("eu", AMSTERDAM, selector=LabelSelector(match_labels={"tier": "gold"}))
    decision = place(request("a/r", region="eu"), [private, US], _picture(), NOW)
    assert isinstance(decision, Unschedulable)
    assert decision.reason == UnschedulableReason.NAMESPACE_NOT_ADMITTED


# Nearest region.


@pytest.mark.parametrize(
    ("location", "expected"),
    [(FRANKFURT, "eu"), (GeoLocation(latitude=42.36, longitude=-71.06), "us"), (SAO_PAULO, "br")],
)
def test_a_room_goes_to_the_region_nearest_its_participants(location, expected):
    assert (
        _region_of(place(request("a/r", location=location), REGIONS, _picture(), NOW)) == expected
    )


def test_a_full_nearest_region_spills_to_the_next_nearest():
    # From Frankfurt, New York is nearer than Sao Paulo.
    picture = _picture(free={"eu": 5.0})
    decision = place(request("a/r", 10.0, location=FRANKFURT), REGIONS, picture, NOW)
    assert _region_of(decision) == "us"


def test_a_region_with_no_pod_taking_rooms_is_skipped():
    picture = _picture()
    picture.apply_pod(observe("eu-0", region="eu", ready=False), NOW)
    assert _region_of(place(request("a/r", location=AMSTERDAM), REGIONS, picture, NOW)) == "us"


def test_a_region_hint_stands_in_for_a_location():
    decision = place(request("a/r", region_hint="br"), REGIONS, _picture(), NOW)
    assert _region_of(decision) == "br"


def test_a_region_hint_spills_to_the_region_nearest_the_hinted_one():
    picture = _picture(free={"br": 0.0})
    assert _region_of(place(request("a/r", region_hint="br"), REGIONS, picture, NOW)) == "us"


def test_an_unknown_region_hint_falls_back_to_free_capacity():
    picture = _picture(free={"eu": 20.0, "us": 60.0, "br": 40.0})
    assert _region_of(place(request("a/r", region_hint="mars"), REGIONS, picture, NOW)) == "us"


def test_a_room_without_location_goes_to_the_region_with_most_free_capacity():
    picture = _picture(free={"eu": 20.0, "us": 40.0, "br": 60.0})
    assert _region_of(place(request("a/r"), REGIONS, picture, NOW)) == "br"


def test_equal_distances_and_equal_free_capacity_are_decided_by_region_name():
    twin_a, twin_b = region("b-twin", AMSTERDAM), region("a-twin", AMSTERDAM)
    picture = CapacityPicture()
    add_pod(picture, "x", region="b-twin")
    add_pod(picture, "y", region="a-twin")
    for req in (request("a/r", location=AMSTERDAM), request("a/r")):
        assert _region_of(place(req, [twin_a, twin_b], picture, NOW)) == "a-twin"


def test_when_every_region_is_full_the_message_says_how_full():
    # 25 units free below capacity are 5 below the high-water mark.
    picture = _picture(free={"eu": 25.0, "us": 25.0, "br": 0.0})
    decision = place(request("a/r", 10.0, location=AMSTERDAM), REGIONS, picture, NOW)
    assert isinstance(decision, Unschedulable)
    assert decision.reason == UnschedulableReason.NO_CAPACITY
    assert "eu, us, br" in decision.message
    assert "at most 5 units free" in decision.message


# Tenancy.


def test_a_region_whose_selector_excludes_the_namespace_is_never_chosen():
    gold_only = region("eu", AMSTERDAM, selector=LabelSelector(match_labels={"tier": "gold"}))
    regions = [gold_only, US]
    picture = _picture()
    plain = place(request("a/r", location=AMSTERDAM), regions, picture, NOW)
    gold = place(request("a/r", location=AMSTERDAM, labels={"tier": "gold"}), regions, picture, NOW)
    assert (_region_of(plain), _region_of(gold)) == ("us", "eu")


def test_no_region_admitting_the_namespace_is_unschedulable():
    gold_only = region("eu", AMSTERDAM, selector=LabelSelector(match_labels={"tier": "gold"}))
    decision = place(request("a/r"), [gold_only], _picture(), NOW)
    assert isinstance(decision, Unschedulable)
    assert decision.reason == UnschedulableReason.NO_REGION_ADMITS_NAMESPACE
    assert "'a'" in decision.message


def test_no_region_at_all_is_unschedulable():
    decision = place(request("a/r"), [], CapacityPicture(), NOW)
    assert isinstance(decision, Unschedulable)
    assert decision.message == "no Region exists"


def _expression(operator: SelectorOperator, *values: str) -> LabelSelector:
    requirement = LabelSelectorRequirement(
        key="tier", operator=operator, values=list(values) or None
    )
    return LabelSelector(match_expressions=[requirement])


@pytest.mark.parametrize(
    ("selector", "labels", "admitted"),
    [
        (None, {}, True),
        (LabelSelector(), {"tier": "gold"}, True),
        (LabelSelector(match_labels={"tier": "gold"}), {"tier": "gold", "x": "y"}, True),
        (LabelSelector(match_labels={"tier": "gold"}), {"tier": "silver"}, False),
        (LabelSelector(match_labels={"tier": "gold"}), {}, False),
        (_expression(SelectorOperator.IN, "gold", "silver"), {"tier": "silver"}, True),
        (_expression(SelectorOperator.IN, "gold"), {}, False),
        (_expression(SelectorOperator.NOT_IN, "gold"), {"tier": "silver"}, True),
        (_expression(SelectorOperator.NOT_IN, "gold"), {}, True),
        (_expression(SelectorOperator.NOT_IN, "gold"), {"tier": "gold"}, False),
        (_expression(SelectorOperator.EXISTS), {"tier": ""}, True),
        (_expression(SelectorOperator.EXISTS), {}, False),
        (_expression(SelectorOperator.DOES_NOT_EXIST), {}, True),
        (_expression(SelectorOperator.DOES_NOT_EXIST), {"tier": "gold"}, False),
    ],
)
def test_namespace_selectors_follow_kubernetes_label_selector_semantics(selector, labels, admitted):
    assert selector_admits(selector, labels) is admitted
