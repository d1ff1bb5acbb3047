"""Properties of placement over generated clusters, checked against an independent model
of the scenario: capacity is never exceeded, pinned regions are respected, the nearest
region with room is preferred, placement is complete and deterministic, a room waits only
for a region whose SFU pods are starting, and a batch never double-books a pod."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fixtures.placement_builders import NOW, POD_NAMESPACE, observe, report
from switchboard_api.geo import GeoLocation
from switchboard_api.kube_types import LabelSelector
from switchboard_api.region import PlacementPolicy
from switchboard_operator.logic.capacity import (
    FIT_TOLERANCE,
    CapacityModel,
    CapacityPicture,
    pod_key,
)
from switchboard_operator.logic.placement import (
    Placement,
    PlacementRegion,
    PlacementSettings,
    PodSearch,
    RoomRequest,
    Unschedulable,
    Waiting,
    place_many,
)
from switchboard_operator.logic.placement.geo import great_circle_km

GRACE = CapacityModel().startup_grace_seconds
GOLD = LabelSelector(match_labels={"tier": "gold"})
HEALTHY = "healthy"
STARTING_CONDITIONS = ("not-ready", "never-reported")
"""Pods that have never taken rooms: starting while younger than the startup grace."""
POD_CONDITIONS = [
    HEALTHY,
    "not-ready",
    "drain-marked",
    "reports-draining",
    "fenced",
    "stale",
    "never-reported",
]


@dataclass
class Pod:
    name: str
    region: str
    capacity: float
    load: float
    condition: str
    reservations: list[float]

    @property
    def key(self) -> str:
        return pod_key(POD_NAMESPACE, self.name)


@dataclass
class Scenario:
    regions: list[PlacementRegion]
    pods: list[Pod]
    requests: list[RoomRequest]
    search: PodSearch
    young: bool
    """Pods were first seen within the startup grace (else long before it)."""
    used: dict[str, float] = field(default_factory=dict)
    has_rooms: dict[str, bool] = field(default_factory=dict)

    def build(self, pod_order: list[Pod] | None = None) -> CapacityPicture:
        picture = CapacityPicture()
        for pod in pod_order or self.pods:
            _add(picture, pod, seen_at=NOW if self.young else NOW - 10 * GRACE)
        return picture


def _add(picture: CapacityPicture, pod: Pod, seen_at: float) -> None:
    picture.apply_pod(
        observe(
            pod.name,
            region=pod.region,
            ready=pod.condition != "not-ready",
            draining=pod.condition == "drain-marked",
        ),
        seen_at,
    )
    if pod.condition != "never-reported":
        sent = NOW - 30 if pod.condition == "stale" else NOW
        picture.apply_report(
            report(
                pod.name,
                region=pod.region,
                capacity=pod.capacity,
                load=pod.load,
                draining=pod.condition == "reports-draining",
                fenced=pod.condition == "fenced",
            ),
            sent,
        )
    uid = f"uid-{pod.name}"
    for i, reservation in enumerate(pod.reservations):
        picture.assign(f"old/{pod.name}-{i}", reservation, pod=pod.key, pod_uid=uid, now=NOW)


locations = st.builds(
    GeoLocation,
    latitude=st.floats(-90, 90, allow_nan=False),
    longitude=st.floats(-180, 180, allow_nan=False),
)


@st.composite
def scenarios(draw) -> Scenario:
    region_count = draw(st.integers(1, 4))
    regions = [
        PlacementRegion(
            name=f"r{i}",
            location=draw(locations),
            policy=draw(st.sampled_from(list(PlacementPolicy))),
            high_water_mark=draw(st.floats(0.5, 1.0)),
            namespace_selector=draw(st.sampled_from([None, None, GOLD])),
            wanted_pods=draw(st.integers(0, 3)),
            created_at=draw(st.sampled_from([None, NOW - GRACE / 2, NOW - 10 * GRACE])),
        )
        for i in range(region_count)
    ]
    pods = []
    for r in regions:
        for j in range(draw(st.integers(0, 6))):
            capacity = draw(st.floats(10, 200))
            pods.append(
                Pod(
                    name=f"{r.name}-sfu-{j}",
                    region=r.name,
                    capacity=capacity,
                    load=draw(st.sampled_from([0.0, 0.0, draw(st.floats(0, 1.2 * capacity))])),
                    condition=draw(st.sampled_from([HEALTHY] * 4 + POD_CONDITIONS)),
                    reservations=draw(st.lists(st.floats(0.1, 40), max_size=3)),
                )
            )
    names = [r.name for r in regions] + ["missing"]
    requests = []
    for i in range(draw(st.integers(1, 12))):
        namespace = draw(st.sampled_from(["gold", "plain"]))
        requests.append(
            RoomRequest(
                room=f"{namespace}/room-{i}",
                reservation=draw(st.floats(0.1, 150)),
                namespace_labels={"tier": "gold"} if namespace == "gold" else {},
                region=draw(st.one_of(st.none(), st.none(), st.sampled_from(names))),
                location=draw(st.one_of(st.none(), locations)),
                region_hint=draw(st.one_of(st.none(), st.sampled_from(names))),
            )
        )
    return Scenario(
        regions, pods, requests, draw(st.sampled_from(list(PodSearch))), young=draw(st.booleans())
    )


# The independent model: what the scenario says each pod can take.


def _initial_state(scenario: Scenario) -> None:
    for pod in scenario.pods:
        baseline = pod.load if pod.condition != "never-reported" else 0.0
        scenario.used[pod.key] = baseline + math.fsum(pod.reservations)
        scenario.has_rooms[pod.key] = bool(pod.reservations)


def _fits(scenario: Scenario, pod: Pod, region: PlacementRegion, reservation: float) -> bool:
    if pod.condition != HEALTHY:
        return False
    used = scenario.used[pod.key]
    idle = not scenario.has_rooms[pod.key] and used <= 0
    limit = pod.capacity if idle else pod.capacity * region.high_water_mark
    return used + reservation <= limit + FIT_TOLERANCE


def _admits(region: PlacementRegion, request: RoomRequest) -> bool:
    return region.namespace_selector is None or request.namespace_labels.get("tier") == "gold"


def _region_has_room(scenario: Scenario, region: PlacementRegion, request: RoomRequest) -> bool:
    return any(
        _fits(scenario, pod, region, request.reservation)
        for pod in scenario.pods
        if pod.region == region.name
    )


def _starting(scenario: Scenario, region: PlacementRegion) -> bool:
    pods = [pod for pod in scenario.pods if pod.region == region.name]
    if scenario.young and any(pod.condition in STARTING_CONDITIONS for pod in pods):
        return True
    live = [pod for pod in pods if pod.condition not in ("drain-marked", "reports-draining")]
    young_region = region.created_at is not None and NOW - region.created_at < GRACE
    return young_region and len(live) < region.wanted_pods


def _own_region(scenario: Scenario, request: RoomRequest) -> PlacementRegion | None:
    """The room's own region: its pinned region, else the nearest candidate (ties by
    name), if a location is known."""
    candidates = _candidate_regions(scenario, request)
    origin = _origin(scenario, request)
    if not candidates or (request.region is None and origin is None):
        return None
    if request.region is not None:
        return candidates[0]
    return min(candidates, key=lambda r: (great_circle_km(origin, r.location), r.name))


def _candidate_regions(scenario: Scenario, request: RoomRequest) -> list[PlacementRegion]:
    if request.region is not None:
        return [r for r in scenario.regions if r.name == request.region and _admits(r, request)]
    return [r for r in scenario.regions if _admits(r, request)]


def _origin(scenario: Scenario, request: RoomRequest) -> GeoLocation | None:
    if request.location is not None:
        return request.location
    hinted = [r for r in scenario.regions if r.name == request.region_hint]
    return hinted[0].location if hinted else None


def _decide(scenario: Scenario):
    picture = scenario.build()
    decisions = place_many(
        scenario.requests,
        scenario.regions,
        picture,
        NOW,
        PlacementSettings(search=scenario.search),
    )
    return picture, decisions


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_every_decision_obeys_capacity_pinning_nearness_and_completeness(scenario):
    """Completeness with waiting: whenever some eligible pod has room, the room is placed,
    except that it waits (Waiting, never Unschedulable) when its own region (pinned, or
    nearest to a known location) has no room and is starting. A room waits for no other
    region unless no eligible pod has room at all; it is Unschedulable only when no
    eligible pod has room and no candidate region is starting."""
    _initial_state(scenario)
    _, decisions = _decide(scenario)
    pods = {pod.key: pod for pod in scenario.pods}
    regions = {r.name: r for r in scenario.regions}
    for request, decision in zip(scenario.requests, decisions, strict=True):
        candidates = _candidate_regions(scenario, request)
        with_room = [r for r in candidates if _region_has_room(scenario, r, request)]
        own = _own_region(scenario, request)
        if own is not None and own not in with_room and _starting(scenario, own):
            assert isinstance(decision, Waiting), (request, decision)
            assert decision.region == own.name
            continue
        if isinstance(decision, Waiting):
            # Waiting for another region than its own: only when nothing has room.
            waited = regions[decision.region]
            assert with_room == [], (request, decision)
            assert waited in candidates and _starting(scenario, waited), (request, decision)
            continue
        if isinstance(decision, Unschedulable):
            # Completeness: nothing is refused while some eligible pod has room, or while
            # some candidate region is starting.
            assert with_room == [], (request, decision)
            assert not any(_starting(scenario, r) for r in candidates), (request, decision)
            continue
        pod, region = pods[decision.pod], regions[decision.region]
        # Capacity: the chosen pod takes new rooms and has room for this one.
        assert pod.region == region.name
        assert _fits(scenario, pod, region, request.reservation), (request, decision)
        # Pinning: a pinned room is placed in its region or nowhere.
        if request.region is not None:
            assert decision.region == request.region
        # Nearness: no admitted region strictly nearer had room.
        origin = _origin(scenario, request)
        if request.region is None and origin is not None:
            chosen = great_circle_km(origin, region.location)
            assert all(great_circle_km(origin, r.location) >= chosen - 1e-6 for r in with_room)
        scenario.used[pod.key] += request.reservation
        scenario.has_rooms[pod.key] = True
    # A pod that took rooms in this batch ends within its capacity (pods may start over
    # it through measured load; those take nothing).
    gained = {d.pod for d in decisions if isinstance(d, Placement)}
    for pod in scenario.pods:
        if pod.key in gained:
            assert scenario.used[pod.key] <= pod.capacity + 1e-6


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_a_batch_books_each_room_once_and_the_picture_agrees_with_the_decisions(scenario):
    _initial_state(scenario)
    picture, decisions = _decide(scenario)
    placed = [d for d in decisions if isinstance(d, Placement)]
    assert len({d.room for d in placed}) == len(placed)
    for decision in placed:
        assert picture.placement_of(decision.room).pod == decision.pod
    for pod in scenario.pods:
        state = picture.pod(pod.key)
        new = [d.reservation for d in placed if d.pod == pod.key]
        # Reserved units are exactly the old rooms plus the rooms this batch placed.
        assert state.reserved == pytest.approx(math.fsum(pod.reservations) + math.fsum(new))
        if new:
            assert state.used <= state.capacity + 1e-6


@settings(max_examples=150, deadline=None)
@given(scenarios(), st.randoms(use_true_random=False))
def test_decisions_do_not_depend_on_the_order_pods_were_seen(scenario, rng):
    shuffled = list(scenario.pods)
    rng.shuffle(shuffled)
    settings_ = PlacementSettings(search=scenario.search)
    first = place_many(scenario.requests, scenario.regions, scenario.build(), NOW, settings_)
    second = place_many(
        scenario.requests, scenario.regions, scenario.build(shuffled), NOW, settings_
    )
    assert first == second
