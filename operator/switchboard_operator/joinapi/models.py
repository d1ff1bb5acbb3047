"""The join API's request and response bodies. docs/join-api.openapi.yaml is generated
from these models (see `openapi.py`)."""

from __future__ import annotations

from typing import Final

from pydantic import AwareDatetime, ConfigDict, Field

from switchboard_api._camel import CamelModel
from switchboard_api.contract import JoinGrants, RoomKey
from switchboard_api.geo import GeoLocation
from switchboard_api.kube_types import DnsLabel
from switchboard_api.room import MAX_PARTICIPANTS_LIMIT
from switchboard_operator.joinapi.codes import ErrorCode

MAX_IDENTITY_LENGTH: Final = 100
"""Longest identity, in characters. The identity becomes part of the TURN username
(`<expiry>:<identity>`), which STUN limits to 513 bytes: 100 UTF-8 characters always fit."""

_PRINTABLE = r"^[^\x00-\x1f\x7f]+$"


class ClientLocation(GeoLocation):
    """Where the joining client is."""

    # A misspelt field would otherwise be dropped silently and the location ignored.
    model_config = ConfigDict(extra="forbid")


class RequestedGrants(JoinGrants):
    """What the participant may do in the room; each permission defaults to allowed."""

    # A misspelt permission must not silently leave the default (allowed) in place.
    model_config = ConfigDict(extra="forbid")


class JoinRequest(CamelModel):
    """A client asking to join a room."""

    model_config = ConfigDict(extra="forbid")

    identity: str = Field(
        min_length=1,
        max_length=MAX_IDENTITY_LENGTH,
        pattern=_PRINTABLE,
        description="The participant's identity in the room (no control characters).",
        examples=["alice"],
    )
    location: ClientLocation | None = Field(
        default=None,
        description="Where the client is: steers the region of a room placed by this join "
        "when the room has no location of its own.",
    )
    region: DnsLabel | None = Field(
        default=None,
        description="A Region the client says it is near, used when no location is known.",
    )
    grants: RequestedGrants = Field(
        default_factory=RequestedGrants, description="What the participant may do."
    )
    create: bool = Field(
        default=True,
        description="Create the room if it does not exist (the API key must allow creation).",
    )
    max_participants: int | None = Field(
        default=None,
        ge=1,
        le=MAX_PARTICIPANTS_LIMIT,
        description="Participant limit of a room this join creates; ignored otherwise.",
    )


class IceServer(CamelModel):
    """One WebRTC `RTCIceServer`."""

    urls: list[str] = Field(min_length=1, description="`turn:`/`turns:` URIs.")
    username: str | None = Field(default=None, description="TURN username.")
    credential: str | None = Field(default=None, description="TURN password.")


class JoinResponse(CamelModel):
    """Where to connect and the token to present there."""

    room: RoomKey
    region: str = Field(description="The Region serving the room.")
    pod: str = Field(description="The SFU pod serving the room.")
    pod_uid: str = Field(alias="podUID", description="UID of that pod.")
    url: str = Field(description="The SFU's public signalling URL.")
    token: str = Field(description="Join token (EdDSA JWT) for this room on this pod.")
    expires_at: AwareDatetime = Field(description="When the join token expires.")
    identity: str = Field(description="The identity the token was issued for.")
    ice_servers: list[IceServer] = Field(
        description="ICE servers with short-lived TURN credentials; empty when the room's "
        "Region has no TURN."
    )


class ErrorDetail(CamelModel):
    """What went wrong."""

    code: ErrorCode = Field(description="Stable machine-readable code.")
    message: str = Field(description="Human-readable explanation.")
    reason: str | None = Field(
        default=None,
        description="For room_unschedulable: placement's reason (e.g. `RegionFull`).",
    )


class ErrorBody(CamelModel):
    """The body of every error response."""

    error: ErrorDetail
