"""Builders for capacity and placement tests: SFU pods that report, regions, room requests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from switchboard_api.contract import CapacityReport, RoomUsage
from switchboard_api.geo import GeoLocation
from switchboard_api.kube_types import LabelSelector
from switchboard_api.region import PlacementPolicy
from switchboard_operator.logic.capacity import (
    CapacityPicture,
    PodObservation,
    PodState,
    apply_pod,
    apply_report,
    pod_key,
)
from switchboard_operator.logic.placement import PlacementRegion, RoomRequest

NOW = 1_000_000.0
"""An arbitrary clock reading: the logic only ever sees differences."""
POD_NAMESPACE = "media"
EPOCH = datetime(2025, 1, 1, tzinfo=UTC)

AMSTERDAM = GeoLocation(latitude=52.37, longitude=4.90)
FRANKFURT = GeoLocation(latitude=50.11, longitude=8.68)
NEW_YORK = GeoLocation(latitude=40.71, longitude=-74.01)
SAO_PAULO = GeoLocation(latitude=-23.55, longitude=-46.63)
TOKYO = GeoLocation(latitude=35.68, longitude=139.69)


def key(name: str) -> str:
    return pod_key(POD_NAMESPACE, name)


def usage(room: str, *, participants: int = 0, load: float = 0.0, empty_since=None) -> RoomUsage:
    return RoomUsage(
        room=room,
        participants=participants,
        published_tracks=0,
        forwarded_tracks=0,
        load=load,
        empty_since_seconds=empty_since,
    )


def report(
    name: str,
    *,
    uid: str | None = None,
    region: str = "eu",
    sequence: int = 0,
    capacity: float = 100.0,
    load: float = 0.0,
    participants: int = 0,
    rooms: tuple[RoomUsage, ...] = (),
    draining: bool = False,
    fenced: bool = False,
) -> CapacityReport:
    return CapacityReport(
        pod_name=name,
        pod_uid=uid or f"uid-{name}",
        namespace=POD_NAMESPACE,
        region=region,
        sequence=sequence,
        sent_at=EPOCH + timedelta(seconds=sequence),
        draining=draining,
        fenced=fenced,
        capacity=capacity,
        load=load,
        cpu_cores=0.0,
        participants=participants,
        published_tracks=0,
        forwarded_tracks=0,
        bitrate_in_bps=0.0,
        bitrate_out_bps=0.0,
        rooms=list(rooms),
    )


def observe(
    name: str,
    *,
    uid: str | None = None,
    region: str = "eu",
    ready: bool = True,
    draining: bool = False,
    drain_deadline: float | None = None,
) -> PodObservation:
    return PodObservation(
        namespace=POD_NAMESPACE,
        name=name,
        uid=uid or f"uid-{name}",
        region=region,
        ready=ready,
        draining=draining,
        drain_deadline=drain_deadline,
    )


def add_pod(
    picture: CapacityPicture,
    name: str,
    *,
    region: str = "eu",
    capacity: float = 100.0,
    load: float = 0.0,
    ready: bool = True,
    draining: bool = False,
    uid: str | None = None,
    now: float = NOW,
) -> PodState:
    """A pod seen by the Pod watch that has sent one report at `now`."""
    apply_pod(picture, observe(name, uid=uid, region=region, ready=ready, draining=draining), now)
    outcome = apply_report(
        picture, report(name, uid=uid, region=region, capacity=capacity, load=load), now
    )
    assert outcome.accepted, outcome.reason
    state = picture.pod(key(name))
    assert state is not None
    return state


def region(
    name: str,
    location: GeoLocation = AMSTERDAM,
    *,
    policy: PlacementPolicy = PlacementPolicy.LEAST_LOADED,
    high_water_mark: float = 0.8,
    selector: LabelSelector | None = None,
) -> PlacementRegion:
    return PlacementRegion(
        name=name,
        location=location,
        policy=policy,
        high_water_mark=high_water_mark,
        namespace_selector=selector,
    )


def request(
    room: str,
    reservation: float = 10.0,
    *,
    region: str | None = None,
    location: GeoLocation | None = None,
    region_hint: str | None = None,
    labels: dict[str, str] | None = None,
) -> RoomRequest:
    return RoomRequest(
        room=room,
        reservation=reservation,
        namespace_labels=labels or {},
        region=region,
        location=location,
        region_hint=region_hint,
    )
