"""What placement takes and returns: room requests, regions as placement sees them, the
search settings, and the decisions (a placement or the reason there is none)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from switchboard_api import defaults
from switchboard_api.contract import split_room_key
from switchboard_api.geo import GeoLocation
from switchboard_api.kube_types import LabelSelector
from switchboard_api.region import PlacementPolicy, Region
from switchboard_api.room import Room
from switchboard_operator.logic.capacity import CapacityModel

_NO_LABELS: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class RoomRequest:
    """A room asking for a pod: its reservation and where it may or should go."""

    room: str
    """The room's `<namespace>/<name>` key."""
    reservation: float
    namespace_labels: Mapping[str, str] = field(default_factory=dict)
    """Labels of the room's namespace, matched against each Region's namespaceSelector."""
    region: str | None = None
    """Pinned region: placed there or nowhere."""
    location: GeoLocation | None = None
    """Where the participants are (the Room's location, else the joining client's)."""
    region_hint: str | None = None
    """A region the client says it is near, used when no location is known."""

    @property
    def namespace(self) -> str:
        return split_room_key(self.room)[0]

    @classmethod
    def for_room(
        cls,
        room: Room,
        model: CapacityModel,
        namespace_labels: Mapping[str, str] = _NO_LABELS,
        client_location: GeoLocation | None = None,
        region_hint: str | None = None,
    ) -> RoomRequest:
        """The request for a Room object; the Room's own location wins over the client's."""
        return cls(
            room=room.key,
            reservation=model.reservation(room.spec),
            namespace_labels=namespace_labels,
            region=room.spec.region,
            location=room.spec.location or client_location,
            region_hint=region_hint,
        )


@dataclass(frozen=True, slots=True)
class PlacementRegion:
    """The facts of a Region that placement uses."""

    name: str
    location: GeoLocation
    policy: PlacementPolicy = PlacementPolicy.LEAST_LOADED
    high_water_mark: float = defaults.SFU_HIGH_WATER_MARK
    namespace_selector: LabelSelector | None = None
    wanted_pods: int = 0
    """SFU pods the Region asks for (`minReplicas`)."""
    created_at: float | None = None
    """When the Region was created: a new Region is waited for while its pods are created."""

    @classmethod
    def of(cls, region: Region) -> PlacementRegion:
        spec = region.spec
        created = region.metadata.creation_timestamp
        return cls(
            name=region.metadata.name or "",
            location=spec.location,
            policy=spec.sfu.placement_policy,
            high_water_mark=spec.sfu.high_water_mark,
            namespace_selector=spec.namespace_selector,
            wanted_pods=spec.sfu.min_replicas,
            created_at=created.timestamp() if created is not None else None,
        )


class PodSearch(StrEnum):
    """How the pod inside a region is found."""

    EXACT = "Exact"
    """Scan every pod of the region: the best pod by the region's policy."""
    TWO_CHOICES = "TwoChoices"
    """Sample two pods (seeded by the room key) and take the better; scan only if neither
    fits, so a room is never refused while some pod has room."""


DEFAULT_POD_SEARCH = PodSearch.EXACT
"""Chosen by bench/placement.py: see CAPACITY.md for the figures."""


@dataclass(frozen=True, slots=True)
class PlacementSettings:
    search: PodSearch = DEFAULT_POD_SEARCH


class UnschedulableReason(StrEnum):
    """Why a room could not be placed (CamelCase: usable as a condition reason)."""

    REGION_NOT_FOUND = "RegionNotFound"
    NAMESPACE_NOT_ADMITTED = "NamespaceNotAdmitted"
    NO_REGION_ADMITS_NAMESPACE = "NoRegionAdmitsNamespace"
    REGION_FULL = "RegionFull"
    NO_CAPACITY = "NoCapacity"


@dataclass(frozen=True, slots=True)
class Placement:
    """A room's pod: the decision the Room status records."""

    room: str
    region: str
    pod: str
    """The pod's `<namespace>/<name>` key."""
    pod_uid: str
    reservation: float
    home: str | None = None
    """The room's own region (pinned or nearest), when it is not `region`: that one was
    full, so the room counts towards its demand (the autoscaler grows it)."""

    @property
    def pod_namespace(self) -> str:
        return self.pod.split("/", 1)[0]

    @property
    def pod_name(self) -> str:
        return self.pod.split("/", 1)[1]


@dataclass(frozen=True, slots=True)
class Unschedulable:
    """No pod can take the room now; `message` says why, for status and Events."""

    room: str
    reason: UnschedulableReason
    message: str
    home: str | None = None
    """The region whose capacity the room needed (pinned, nearest, or first in order):
    its reservation counts towards that region's demand."""
    reservation: float = 0.0


WAITING_REASON = "WaitingForPods"
"""Condition reason of a room that waits for its region's SFU pods to start."""


@dataclass(frozen=True, slots=True)
class Waiting:
    """No pod can take the room yet, but SFU pods of `region` are starting: the room waits
    for them instead of going elsewhere (CAPACITY.md, "Waiting")."""

    room: str
    region: str
    message: str
    recheck_at: float
    """When the wait may end without any event (a startup grace runs out): decide again."""
    reservation: float = 0.0
    """What the room reserves: it counts towards `region`'s demand while it waits."""

    @property
    def reason(self) -> str:
        return WAITING_REASON


Decision = Placement | Unschedulable | Waiting
