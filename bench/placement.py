"""Placement decisions per second, pure logic: 1,000 SFU pods x 100,000 rooms.

Compares the pod searches (exact scan, two random choices with a scan as fallback) under
both placement policies, in one region of 1,000 pods (the scan's worst case) and in ten
regions of 100 pods with located rooms (region choice included). Also times failover:
re-placing the 1,000 rooms of one lost pod. Figures and ratios against the exact scan
measured in the same run; no thresholds.

    python bench/placement.py [--pods 1000] [--rooms 100000] [--seed 1]
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from switchboard_api.contract import CapacityReport
from switchboard_api.geo import GeoLocation
from switchboard_api.region import PlacementPolicy
from switchboard_api.room import MediaProfile, RoomSpec
from switchboard_operator.logic.capacity import (
    CapacityModel,
    CapacityPicture,
    PodObservation,
    lost_pods,
    pod_key,
)
from switchboard_operator.logic.placement import (
    Placement,
    PlacementRegion,
    PlacementSettings,
    PodSearch,
    RoomRequest,
    place_many,
    replace_rooms_of,
)

NOW = 1_000_000.0
NAMESPACE = "media"
MODEL = CapacityModel()

# Room shapes and how often they occur: 1:1 calls, small meetings, the default room,
# audio-only rooms and a few large meetings.
ROOM_SHAPES = [
    (
        RoomSpec(
            max_participants=2, media_profile=MediaProfile(video_publishers=2, audio_publishers=2)
        ),
        40,
    ),
    (
        RoomSpec(
            max_participants=5, media_profile=MediaProfile(video_publishers=3, audio_publishers=5)
        ),
        30,
    ),
    (RoomSpec(), 15),
    (
        RoomSpec(
            max_participants=8, media_profile=MediaProfile(video_publishers=0, audio_publishers=8)
        ),
        10,
    ),
    (
        RoomSpec(
            max_participants=25, media_profile=MediaProfile(video_publishers=4, audio_publishers=8)
        ),
        5,
    ),
]
RESERVATIONS = [MODEL.reservation(spec) for spec, _ in ROOM_SHAPES]
WEIGHTS = [weight for _, weight in ROOM_SHAPES]
MEAN_RESERVATION = sum(r * w for r, w in zip(RESERVATIONS, WEIGHTS, strict=True)) / sum(WEIGHTS)


@dataclass(frozen=True)
class Layout:
    name: str
    regions: list[PlacementRegion]
    located: bool


@dataclass(frozen=True)
class Result:
    seconds: float
    decisions: int
    placed: int
    pods_used: int
    utilization_max: float
    utilization_stdev: float

    @property
    def rate(self) -> float:
        return self.decisions / self.seconds


def _report(name: str, region: str, capacity: float) -> CapacityReport:
    return CapacityReport(
        pod_name=name,
        pod_uid=f"uid-{name}",
        namespace=NAMESPACE,
        region=region,
        sequence=0,
        sent_at=datetime(2025, 1, 1, tzinfo=UTC),
        capacity=capacity,
        load=0.0,
        cpu_cores=0.0,
        participants=0,
        published_tracks=0,
        forwarded_tracks=0,
        bitrate_in_bps=0.0,
        bitrate_out_bps=0.0,
    )


def _add_pod(picture: CapacityPicture, name: str, region: str, capacity: float) -> None:
    picture.apply_pod(PodObservation(NAMESPACE, name, f"uid-{name}", region, ready=True), NOW)
    picture.apply_report(_report(name, region, capacity), NOW)


def _picture(layout: Layout, pods: int, capacity: float) -> CapacityPicture:
    picture = CapacityPicture(MODEL)
    per_region = pods // len(layout.regions)
    for r in layout.regions:
        for i in range(per_region):
            _add_pod(picture, f"{r.name}-sfu-{i:04}", r.name, capacity)
    return picture


def _requests(count: int, located: bool, rng: random.Random) -> list[RoomRequest]:
    sizes = rng.choices(RESERVATIONS, WEIGHTS, k=count)
    requests = []
    for i, size in enumerate(sizes):
        location = (
            GeoLocation(latitude=rng.uniform(-60, 70), longitude=rng.uniform(-180, 180))
            if located
            else None
        )
        requests.append(
            RoomRequest(room=f"tenant-{i % 50}/room-{i}", reservation=size, location=location)
        )
    return requests


def _layouts(pods: int, rng: random.Random) -> list[Layout]:
    world = [
        PlacementRegion(
            name=f"region-{i}",
            location=GeoLocation(latitude=rng.uniform(-50, 60), longitude=rng.uniform(-180, 180)),
        )
        for i in range(10)
    ]
    single = [PlacementRegion(name="region-0", location=world[0].location)]
    return [
        Layout(f"1 region x {pods} pods", single, located=False),
        Layout(f"10 regions x {pods // 10} pods, located rooms", world, located=True),
    ]


def _with_policy(regions: list[PlacementRegion], policy: PlacementPolicy) -> list[PlacementRegion]:
    return [
        PlacementRegion(r.name, r.location, policy, r.high_water_mark, r.namespace_selector)
        for r in regions
    ]


def _run(
    layout: Layout, policy: PlacementPolicy, search: PodSearch, args, capacity: float
) -> Result:
    rng = random.Random(args.seed)
    picture = _picture(layout, args.pods, capacity)
    requests = _requests(args.rooms, layout.located, rng)
    regions = _with_policy(layout.regions, policy)
    settings = PlacementSettings(search=search)
    started = time.perf_counter()
    decisions = place_many(requests, regions, picture, NOW, settings)
    seconds = time.perf_counter() - started
    utilization = [pod.utilization for pod in picture.pods()]
    return Result(
        seconds=seconds,
        decisions=len(decisions),
        placed=sum(isinstance(d, Placement) for d in decisions),
        pods_used=sum(1 for pod in picture.pods() if pod.rooms),
        utilization_max=max(utilization),
        utilization_stdev=statistics.pstdev(utilization),
    )


def _failover(args, capacity: float, search: PodSearch) -> tuple[float, int, int]:
    """Seconds to re-place the 1,000 rooms of one lost pod among the others."""
    rng = random.Random(args.seed)
    region = PlacementRegion(name="region-0", location=GeoLocation(latitude=0, longitude=0))
    picture = CapacityPicture(MODEL)
    for i in range(args.pods - 1):
        _add_pod(picture, f"sfu-{i:04}", region.name, capacity)
    background = args.rooms - 1000
    place_many(_requests(background, False, rng), [region], picture, NOW)
    lost_rooms = _requests(1000, False, rng)
    lost_key = pod_key(NAMESPACE, "sfu-lost")
    for request in lost_rooms:
        picture.assign(
            f"lost-{request.room}",
            request.reservation,
            pod=lost_key,
            pod_uid="uid-lost",
            now=NOW,
        )
    picture.remove_pod(lost_key, "uid-lost")
    requests = {f"lost-{r.room}": RoomRequest(f"lost-{r.room}", r.reservation) for r in lost_rooms}
    [lost] = lost_pods(picture, NOW, 6.0)
    started = time.perf_counter()
    replacements = replace_rooms_of(
        picture, lost, requests, [region], NOW, settings=PlacementSettings(search=search)
    )
    seconds = time.perf_counter() - started
    placed = sum(isinstance(r.decision, Placement) for r in replacements)
    return seconds, placed, len(replacements)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--rooms", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    # Pods sized so every room fits below the default 0.8 high-water mark with a margin:
    # the benchmark measures decisions, not refusals.
    capacity = math.ceil(args.rooms * MEAN_RESERVATION / args.pods / 0.8 * 1.25)
    print(
        f"placement: {args.pods} pods x {args.rooms} rooms, pod capacity {capacity} units, "
        f"mean room reservation {MEAN_RESERVATION:.2f} units, seed {args.seed}"
    )
    header = (
        f"{'layout':<38} {'policy':<12} {'search':<11} {'decisions/s':>11} {'vs exact':>9} "
        f"{'us/decision':>11} {'placed':>8} {'pods used':>9} {'util max':>8} {'util sd':>8}"
    )
    rng = random.Random(args.seed)
    for layout in _layouts(args.pods, rng):
        print()
        print(header)
        for policy in PlacementPolicy:
            baseline: Result | None = None
            for search in (PodSearch.EXACT, PodSearch.TWO_CHOICES):
                result = _run(layout, policy, search, args, capacity)
                baseline = baseline or result
                print(
                    f"{layout.name:<38} {policy.value:<12} {search.value:<11} "
                    f"{result.rate:>11,.0f} {result.rate / baseline.rate:>8.2f}x "
                    f"{1e6 * result.seconds / result.decisions:>11.1f} {result.placed:>8} "
                    f"{result.pods_used:>9} {result.utilization_max:>8.3f} "
                    f"{result.utilization_stdev:>8.3f}"
                )
    print()
    print("failover: re-place the 1,000 rooms of one lost pod (LeastLoaded, one region)")
    exact_seconds = None
    for search in (PodSearch.EXACT, PodSearch.TWO_CHOICES):
        seconds, placed, total = _failover(args, capacity, search)
        exact_seconds = exact_seconds or seconds
        print(
            f"  {search.value:<11} {seconds * 1000:8.1f} ms  ({placed}/{total} placed, "
            f"{exact_seconds / seconds:.2f}x the exact scan's speed)"
        )


if __name__ == "__main__":
    main()
