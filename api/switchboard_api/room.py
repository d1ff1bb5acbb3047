"""The Room custom resource: one conference, placed by the control plane on one SFU pod."""

from enum import StrEnum
from typing import ClassVar, Literal

from pydantic import AwareDatetime, Field

from switchboard_api import defaults
from switchboard_api._camel import CamelModel
from switchboard_api.contract import (
    AUDIO_STREAM_UNITS,
    REFERENCE_VIDEO_BITRATE_BPS,
    VIDEO_STREAM_UNITS,
    room_key,
)
from switchboard_api.geo import GeoLocation
from switchboard_api.kube_types import (
    Condition,
    DnsLabel,
    ObjectMeta,
)
from switchboard_api.resources import (
    AGE_COLUMN,
    API_VERSION,
    ROOM,
    PrinterColumn,
    ResourceNames,
)

MAX_PARTICIPANTS_LIMIT = 1000


class RoomPhase(StrEnum):
    """Where a Room is in its life."""

    PENDING = "Pending"
    """Not yet placed."""
    SCHEDULED = "Scheduled"
    """Placed on an SFU pod; nobody has joined yet."""
    RUNNING = "Running"
    """Participants are connected."""
    MIGRATING = "Migrating"
    """Moving to another SFU pod (its pod drains, was fenced or was lost)."""
    UNSCHEDULABLE = "Unschedulable"
    """No region or pod can take the room's reservation; retried as capacity changes."""
    CLOSED = "Closed"
    """Ended: empty for emptyTimeoutSeconds, or closed on request."""


class RoomConditionType(StrEnum):
    """Condition types the operator sets on a Room."""

    SCHEDULED = "Scheduled"
    """The room has a region, an SFU pod and an endpoint."""
    READY = "Ready"
    """The room's SFU pod has acknowledged the assignment and admits participants."""


class MediaProfile(CamelModel):
    """The media a room is expected to carry at its busiest: the capacity it reserves."""

    video_publishers: int = Field(
        default=2,
        ge=0,
        le=MAX_PARTICIPANTS_LIMIT,
        description="Participants publishing video at the same time (at most "
        "maxParticipants count).",
    )
    audio_publishers: int = Field(
        default=4,
        ge=0,
        le=MAX_PARTICIPANTS_LIMIT,
        description="Participants publishing audio at the same time (at most "
        "maxParticipants count).",
    )
    video_bitrate_kbps: int = Field(
        default=defaults.ROOM_VIDEO_BITRATE_KBPS,
        ge=50,
        le=20000,
        description="Expected bitrate of each published video stream, kbit/s.",
    )


class RoomSpec(CamelModel):
    """Desired state of a room."""

    region: DnsLabel | None = Field(
        default=None,
        description="Pin the room to this Region. Unset: the region nearest `location` (or "
        "with the most free capacity when no location is given).",
    )
    location: GeoLocation | None = Field(
        default=None, description="Where the participants are, to pick the nearest region."
    )
    max_participants: int = Field(
        default=defaults.ROOM_MAX_PARTICIPANTS,
        ge=1,
        le=MAX_PARTICIPANTS_LIMIT,
        description="Joins beyond this many connected participants are refused.",
    )
    media_profile: MediaProfile = Field(
        default_factory=MediaProfile,
        description="Expected media, from which the room's capacity reservation is computed.",
    )
    empty_timeout_seconds: int = Field(
        default=defaults.ROOM_EMPTY_TIMEOUT_SECONDS,
        ge=0,
        le=86400,
        description="Close the room after it has been empty this long; 0 closes it as soon "
        "as the last participant leaves.",
    )
    ttl_seconds_after_closed: int | None = Field(
        default=None,
        ge=0,
        le=2592000,
        description="Delete the Room this long after it closes. Unset: keep it.",
    )

    def reservation_units(self) -> float:
        """Capacity units the room reserves on its SFU pod.

        Every published stream is forwarded to each other participant, so a room at its
        busiest forwards `publishers x (maxParticipants - 1)` streams of each kind; video is
        weighted by its bitrate relative to the reference stream. A profile expecting more
        publishers than the room admits counts only as many as it admits.
        """
        receivers = self.max_participants - 1
        profile = self.media_profile
        video_publishers = min(profile.video_publishers, self.max_participants)
        audio_publishers = min(profile.audio_publishers, self.max_participants)
        video_weight = profile.video_bitrate_kbps * 1000 / REFERENCE_VIDEO_BITRATE_BPS
        video = video_publishers * receivers * VIDEO_STREAM_UNITS * video_weight
        audio = audio_publishers * receivers * AUDIO_STREAM_UNITS
        return round(video + audio, 3)


class RoomStatus(CamelModel):
    """Observed state of a room, written by the control plane."""

    observed_generation: int | None = Field(
        default=None, ge=0, description="The `.metadata.generation` this status describes."
    )
    phase: RoomPhase | None = Field(default=None, description="Where the room is in its life.")
    region: str | None = Field(default=None, description="Region the room is placed in.")
    pod: str | None = Field(default=None, description="SFU pod the room is placed on.")
    pod_uid: str | None = Field(
        default=None,
        alias="podUID",
        description="UID of that pod: a pod recreated with the same name is a different pod.",
    )
    endpoint: str | None = Field(
        default=None, description="Signalling URL of the room on its SFU pod."
    )
    participants: int | None = Field(
        default=None, ge=0, description="Connected participants, as last reported by the SFU."
    )
    reservation: float | None = Field(
        default=None, ge=0, description="Capacity units reserved for the room on its pod."
    )
    closed_at: AwareDatetime | None = Field(
        default=None,
        description="When the room closed; ttlSecondsAfterClosed counts from here.",
    )
    message: str | None = Field(
        default=None, max_length=32768, description="Why the room is in its phase."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=16,
        description="Scheduled and Ready.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )


class Room(CamelModel):
    """A conference room: participants who join it meet on one SFU pod chosen by the
    control plane, in the nearest Region with capacity for the room's reservation."""

    api_version: Literal["switchboard.dev/v1alpha1"] = Field(
        default=API_VERSION, alias="apiVersion"
    )
    kind: Literal["Room"] = ROOM.kind
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: RoomSpec = Field(default_factory=RoomSpec)
    status: RoomStatus | None = None

    resource_names: ClassVar[ResourceNames] = ROOM
    printer_columns: ClassVar[tuple[PrinterColumn, ...]] = (
        PrinterColumn("Phase", "string", ".status.phase", "Where the room is in its life."),
        PrinterColumn("Region", "string", ".status.region", "Region the room is placed in."),
        PrinterColumn("Pod", "string", ".status.pod", "SFU pod the room is placed on."),
        PrinterColumn("Participants", "integer", ".status.participants", "Connected now."),
        PrinterColumn("Max", "integer", ".spec.maxParticipants", "Maximum participants."),
        PrinterColumn(
            "Reservation",
            "number",
            ".status.reservation",
            "Capacity units reserved.",
            priority=1,
        ),
        PrinterColumn(
            "Endpoint", "string", ".status.endpoint", "Signalling URL of the room.", priority=1
        ),
        AGE_COLUMN,
    )

    @property
    def key(self) -> str:
        """The room's `<namespace>/<name>` key used across the operator⇄SFU contract."""
        return room_key(self.metadata.namespace or "", self.metadata.name or "")
