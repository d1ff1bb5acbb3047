"""The operator⇄SFU contract: capacity reports and their responses, join-token claims,
the `migrate` message, and the environment the operator gives SFU pods.

docs/contract.md explains it for humans; tests/api/test_contract_doc.py keeps the two in step.
"""

import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Final, Literal

from pydantic import AwareDatetime, Field, NonNegativeFloat, NonNegativeInt, PositiveFloat

from switchboard_api._camel import CamelModel
from switchboard_api.kube_types import DNS_LABEL, DNS_LABEL_MAX_LENGTH
from switchboard_api.ports import SFU_METRICS_PORT, SFU_PEER_PORT, SFU_SIGNALLING_PORT
from switchboard_api.resources import GROUP

CONTRACT_VERSION: Final = f"{GROUP}/v1"
"""Version stamped on every report and response. Adding optional fields keeps it; any
removal, rename or change of meaning moves it to `switchboard.dev/v2`."""

# The capacity unit. Region capacity, Room reservations and measured SFU load all use it.
REFERENCE_VIDEO_BITRATE_BPS: Final = 1_000_000
"""Bitrate of the reference video stream that defines one capacity unit."""
VIDEO_STREAM_UNITS: Final = 1.0
"""Capacity units of one forwarded (outgoing) video stream at the reference bitrate."""
AUDIO_STREAM_UNITS: Final = 0.1
"""Capacity units of one forwarded (outgoing) audio-only stream."""

# Report transport.
REPORT_PATH: Final = "/v1/capacity/reports"
"""Path of the control plane's report receiver; SWITCHBOARD_REPORT_URL ends with it."""
REPORT_TOKEN_AUDIENCE: Final = f"{GROUP}/capacity"
"""Audience of the projected ServiceAccount token an SFU sends with each report."""
REPORT_TOKEN_EXPIRATION_SECONDS: Final = 3600
"""Lifetime the operator requests for the projected report token (the kubelet renews it)."""
MAX_REPORT_INTERVAL_SECONDS: Final = 2.0

# Leases and the peer check between SFU pods (docs/contract.md, "Leases").
PEER_LEASE_PATH: Final = "/v1/lease"
"""Path on an SFU pod's peer port where it answers a peer's lease check."""
PEER_LEASE_CONTENT_TYPE: Final = "application/jwt"
"""A peer's answer is a LeaseStatus signed EdDSA with the answering pod's own peer key."""
PEER_CHECK_INTERVAL_SECONDS: Final = 1.0
"""How often an SFU whose lease expired checks its peers again while it keeps serving."""
PEER_QUERY_TIMEOUT_SECONDS: Final = 1.0
"""An SFU waits this long for a peer's answer; no answer counts as an unreached peer."""
PEER_QUERY_FANOUT: Final = 3
"""Peers asked per check (chosen at random from the response's `peers`)."""
NEWER_TERM_GRACE_SECONDS: Final = 3.0
"""A peer's acknowledgement from a newer term than the SFU's own is evidence against the SFU
only this long after the SFU's lease ended: a new leader acknowledges pods one report
interval apart, and the SFU's own acknowledgement may simply not have come round yet."""
LAST_REPORT_WAIT_SECONDS: Final = 0.5
"""Before an SFU fences on a peer check's verdict, it waits this long for a report of its own
(the one in flight, or one sent at once): a peer acknowledged a moment before this pod's own
turn came round (the control plane back after an outage) is no sign that this pod alone is
cut off."""
SILENCE_MARGIN_SECONDS: Final = (
    PEER_CHECK_INTERVAL_SECONDS + PEER_QUERY_TIMEOUT_SECONDS + LAST_REPORT_WAIT_SECONDS + 0.5
)
"""What the control plane waits, after it knows an SFU's lease has ended and every witness
holds a later acknowledgement, before it treats the SFU's silence as the SFU having fenced:
one peer check, one query timeout, the wait for the SFU's own last report, and half a
second for scheduling and clock rates."""

# The join API, as far as SFUs need it: a `migrate` message's `rejoin` names a room's endpoint.
JOIN_API_PREFIX: Final = "/v1/namespaces"
"""Where the join API is mounted on the control plane's HTTP server."""
JOIN_PATH_TEMPLATE: Final = JOIN_API_PREFIX + "/{namespace}/rooms/{name}/join"
"""Path of a room's join endpoint, below the join API's base URL."""

# Join tokens.
JOIN_TOKEN_ISSUER: Final = f"{GROUP}/control-plane"
JOIN_TOKEN_AUDIENCE: Final = f"{GROUP}/sfu"
JOIN_TOKEN_ALGORITHM: Final = "EdDSA"
"""JWS `alg` of join tokens: Ed25519 signatures (RFC 8037)."""
JOIN_TOKEN_LEEWAY_SECONDS: Final = 5
"""Clock skew an SFU tolerates when checking a join token's `nbf` and `exp`."""
JOIN_PUBLIC_KEY_SUFFIX: Final = ".pub"
"""A verification key is the file `<kid>.pub` (PEM SubjectPublicKeyInfo) in the keys dir."""


class SfuEnv(StrEnum):
    """Environment variables the operator sets on SFU pods (the SFU reads nothing else)."""

    REGION = "SWITCHBOARD_REGION"
    POD_NAME = "SWITCHBOARD_POD_NAME"
    POD_NAMESPACE = "SWITCHBOARD_POD_NAMESPACE"
    POD_UID = "SWITCHBOARD_POD_UID"
    POD_IP = "SWITCHBOARD_POD_IP"
    ANNOUNCE_ADDRESS = "SWITCHBOARD_ANNOUNCE_ADDRESS"
    LISTEN_HOST = "SWITCHBOARD_LISTEN_HOST"
    SIGNALLING_PORT = "SWITCHBOARD_SIGNALLING_PORT"
    METRICS_PORT = "SWITCHBOARD_METRICS_PORT"
    CAPACITY = "SWITCHBOARD_CAPACITY"
    REPORT_URL = "SWITCHBOARD_REPORT_URL"
    REPORT_INTERVAL_SECONDS = "SWITCHBOARD_REPORT_INTERVAL_SECONDS"
    REPORT_TOKEN_FILE = "SWITCHBOARD_REPORT_TOKEN_FILE"
    JOIN_KEYS_DIR = "SWITCHBOARD_JOIN_KEYS_DIR"
    TURN_URIS = "SWITCHBOARD_TURN_URIS"
    TURN_SECRET_FILE = "SWITCHBOARD_TURN_SECRET_FILE"
    TURN_CREDENTIAL_TTL_SECONDS = "SWITCHBOARD_TURN_CREDENTIAL_TTL_SECONDS"
    DRAIN_GRACE_SECONDS = "SWITCHBOARD_DRAIN_GRACE_SECONDS"
    JOIN_API_PUBLIC_URL = "SWITCHBOARD_JOIN_API_PUBLIC_URL"
    TLS_CERT_FILE = "SWITCHBOARD_TLS_CERT_FILE"
    TLS_KEY_FILE = "SWITCHBOARD_TLS_KEY_FILE"
    PEER_PORT = "SWITCHBOARD_PEER_PORT"
    REPORT_CA_FILE = "SWITCHBOARD_REPORT_CA_FILE"


SFU_ENV_MEANING: Final[Mapping[SfuEnv, str]] = {
    SfuEnv.REGION: "Name of the Region the pod serves.",
    SfuEnv.POD_NAME: "The pod's name (downward API).",
    SfuEnv.POD_NAMESPACE: "The pod's namespace (downward API).",
    SfuEnv.POD_UID: "The pod's UID (downward API): with the name, this incarnation of the pod.",
    SfuEnv.POD_IP: "The pod's IP (downward API).",
    SfuEnv.ANNOUNCE_ADDRESS: "The only host address offered in ICE candidates: the pod IP, "
    "or the node IP with HostNetwork exposure.",
    SfuEnv.LISTEN_HOST: "Address the HTTP server binds.",
    SfuEnv.SIGNALLING_PORT: "Public HTTP port: signalling, WHIP/WHEP and probes "
    f"(default {SFU_SIGNALLING_PORT}).",
    SfuEnv.METRICS_PORT: "Internal HTTP port serving only Prometheus `/metrics` "
    f"(default {SFU_METRICS_PORT}); `0` turns the listener off.",
    SfuEnv.CAPACITY: "Capacity units the pod offers (the Region's sfu.capacityPerPod).",
    SfuEnv.REPORT_URL: f"Where capacity reports are POSTed; its path is `{REPORT_PATH}`.",
    SfuEnv.REPORT_INTERVAL_SECONDS: "Seconds between reports, at most "
    f"{MAX_REPORT_INTERVAL_SECONDS:g}.",
    SfuEnv.REPORT_TOKEN_FILE: "Projected ServiceAccount token file (audience "
    f"`{REPORT_TOKEN_AUDIENCE}`); re-read before every report because the kubelet rotates it.",
    SfuEnv.JOIN_KEYS_DIR: f"Directory of `<kid>{JOIN_PUBLIC_KEY_SUFFIX}` Ed25519 public keys "
    "(PEM) that verify join tokens.",
    SfuEnv.TURN_URIS: "Comma-separated `turn:`/`turns:` URIs of the Region's TURN servers; "
    "empty without TURN.",
    SfuEnv.TURN_SECRET_FILE: "File holding the TURN REST API shared secret.",
    SfuEnv.TURN_CREDENTIAL_TTL_SECONDS: "Lifetime of the TURN credentials handed to clients.",
    SfuEnv.DRAIN_GRACE_SECONDS: "How long a draining SFU waits for its rooms to migrate or end "
    "before it exits.",
    SfuEnv.JOIN_API_PUBLIC_URL: "Base URL at which clients reach the join API; `migrate` "
    f"messages' `rejoin` is it followed by `{JOIN_PATH_TEMPLATE}`. Unset: no `rejoin`.",
    SfuEnv.TLS_CERT_FILE: "PEM certificate chain the HTTP port serves HTTPS/WSS with (the "
    "Region's sfu.tlsSecretName), re-read when it changes. Unset: plain HTTP.",
    SfuEnv.TLS_KEY_FILE: "PEM private key of that certificate; set together with "
    "SWITCHBOARD_TLS_CERT_FILE.",
    SfuEnv.REPORT_CA_FILE: "PEM CA certificate that the report receiver's certificate must "
    "chain to (the CA the operator publishes), re-read when it changes. Unset: the image's "
    "trust store verifies an `https` report URL.",
    SfuEnv.PEER_PORT: "Port where the pod answers its peers' lease checks "
    f"(`{PEER_LEASE_PATH}`, default {SFU_PEER_PORT}); announced in reports only when "
    f"`{SfuEnv.POD_IP.value}` is set.",
}
"""What each SFU environment variable means (docs/contract.md's table is rendered from it)."""


class SfuMounts:
    """Where the operator mounts files into SFU pods (the env vars above point here)."""

    REPORT_TOKEN_DIR: Final = "/var/run/secrets/switchboard.dev/capacity"
    REPORT_TOKEN_FILE: Final = f"{REPORT_TOKEN_DIR}/token"
    JOIN_KEYS_DIR: Final = "/etc/switchboard/join-keys"
    TURN_SECRET_DIR: Final = "/var/run/secrets/switchboard.dev/turn"
    TURN_SECRET_FILE: Final = f"{TURN_SECRET_DIR}/secret"
    TLS_DIR: Final = "/var/run/secrets/switchboard.dev/tls"
    """The Region's `kubernetes.io/tls` Secret, mounted whole so that renewals reach it."""
    TLS_CERT_FILE: Final = f"{TLS_DIR}/tls.crt"
    TLS_KEY_FILE: Final = f"{TLS_DIR}/tls.key"
    REPORT_CA_DIR: Final = "/etc/switchboard/report-ca"
    REPORT_CA_FILE: Final = f"{REPORT_CA_DIR}/ca.crt"


class JoinKeySecrets:
    """Key custody: the Secrets (in the operator's namespace) that hold join-token keys."""

    SIGNING_SECRET: Final = "switchboard-join-signing-key"
    """Private Ed25519 keys, data key `<kid>.pem`; only the control plane mounts it."""
    PUBLIC_KEYS_CONFIGMAP: Final = "switchboard-join-public-keys"
    """Public keys, data key `<kid>.pub`; copied into each Region namespace for SFU pods."""


class ReportTls:
    """The report receiver's TLS: a private CA and serving certificate the control plane
    keeps, and the CA certificate (public part only) it publishes to SFU pods."""

    SERVING_SECRET: Final = "switchboard-report-tls"
    """In the operator's namespace: `ca.crt`, `ca.key`, `tls.crt`, `tls.key`; only the
    control plane reads it."""
    CA_CONFIGMAP: Final = "switchboard-report-ca"
    """Data key `ca.crt`; copied into each Region namespace for SFU pods."""
    CA_KEY: Final = "ca.crt"


_ROOM_KEY = re.compile(rf"^{DNS_LABEL}/{DNS_LABEL}$")

RoomKey = Annotated[
    str,
    Field(
        pattern=_ROOM_KEY.pattern,
        max_length=2 * DNS_LABEL_MAX_LENGTH + 1,
        description="A Room as `<namespace>/<name>`.",
        examples=["default/standup"],
    ),
]


def room_key(namespace: str, name: str) -> str:
    """The `<namespace>/<name>` key that names a Room across the contract."""
    return f"{namespace}/{name}"


def split_room_key(key: str) -> tuple[str, str]:
    """(namespace, name) of a room key; ValueError if it is not `<namespace>/<name>`."""
    if not _ROOM_KEY.match(key):
        raise ValueError(f"not a room key (<namespace>/<name>): {key!r}")
    namespace, name = key.split("/", 1)
    return namespace, name


def join_path(namespace: str, name: str) -> str:
    """The join API path of a Room."""
    return JOIN_PATH_TEMPLATE.format(namespace=namespace, name=name)


def join_url(join_api_url: str, key: str) -> str:
    """The join endpoint of room `key` (`<namespace>/<name>`) below the join API's base URL
    (SWITCHBOARD_JOIN_API_PUBLIC_URL, which may carry a path prefix): a `migrate`'s `rejoin`."""
    return join_api_url.rstrip("/") + join_path(*split_room_key(key))


class RoomUsage(CamelModel):
    """What one room on an SFU pod is using right now."""

    room: RoomKey
    participants: NonNegativeInt = Field(description="Connected participants.")
    published_tracks: NonNegativeInt = Field(description="Tracks received from publishers.")
    forwarded_tracks: NonNegativeInt = Field(description="Tracks sent to subscribers.")
    load: NonNegativeFloat = Field(description="Measured load of the room, capacity units.")
    empty_since_seconds: NonNegativeFloat | None = Field(
        default=None,
        description="Seconds since the last participant left; null while anyone is connected.",
    )


_VERSION_DESCRIPTION = "Contract version; a receiver rejects a version it does not know."


class PeerEndpoint(CamelModel):
    """Where an SFU pod answers lease checks, and the key that verifies its answers."""

    url: str = Field(
        min_length=1, max_length=512, description=f"URL of the pod's `{PEER_LEASE_PATH}`."
    )
    public_key: str = Field(
        min_length=1,
        max_length=64,
        description="The pod's own Ed25519 public key, raw 32 bytes in base64url without "
        "padding; generated at process start, never written anywhere.",
    )


class LeasePeer(PeerEndpoint):
    """Another SFU pod of the same Region, as the control plane last heard from it."""

    pod: str = Field(min_length=1, description="The peer pod's name.")
    pod_uid: str = Field(alias="podUID", min_length=1, description="The peer pod's UID.")


MAX_JOIN_KEYS: Final = 16
"""Join-token keys a pod may hold at once (a rotation needs two or three)."""
JoinKeyId = Annotated[
    str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*$")
]
"""A join-token key id: a file name in the keys directory (`<kid>.pub`)."""


class CapacityReport(CamelModel):
    """The SFU's periodic report of its capacity and load (POSTed to SWITCHBOARD_REPORT_URL)."""

    version: Literal["switchboard.dev/v1"] = Field(
        default=CONTRACT_VERSION, description=_VERSION_DESCRIPTION
    )
    pod_name: str = Field(min_length=1, description="The reporting pod's name.")
    pod_uid: str = Field(
        alias="podUID",
        min_length=1,
        description="The pod's UID: a restarted pod with the same name is a new incarnation.",
    )
    namespace: str = Field(min_length=1, description="The pod's namespace.")
    region: str = Field(min_length=1, description="The Region the pod serves.")
    sequence: NonNegativeInt = Field(
        description="Increases by one per report from this incarnation, starting at 0."
    )
    sent_at: AwareDatetime = Field(description="When the report was sent.")
    draining: bool = Field(
        default=False, description="The pod is draining: it accepts no new rooms."
    )
    fenced: bool = Field(
        default=False,
        description="The pod has fenced itself (its lease ended while the control plane was "
        "evidently up without it, or reports went unacknowledged past the failover timeout) "
        "and has told its participants to migrate; it accepts no joins until a response to "
        "a report sent since reassigns rooms to it.",
    )
    capacity: NonNegativeFloat = Field(description="Capacity units the pod offers.")
    load: NonNegativeFloat = Field(description="Measured load, capacity units.")
    cpu_cores: NonNegativeFloat = Field(description="CPU used by the SFU process, in cores.")
    participants: NonNegativeInt = Field(description="Connected participants, all rooms.")
    published_tracks: NonNegativeInt = Field(description="Tracks received, all rooms.")
    forwarded_tracks: NonNegativeInt = Field(description="Tracks sent, all rooms.")
    bitrate_in_bps: NonNegativeFloat = Field(description="Received media bitrate, bit/s.")
    bitrate_out_bps: NonNegativeFloat = Field(description="Sent media bitrate, bit/s.")
    rooms: list[RoomUsage] = Field(default_factory=list, description="Per-room usage.")
    term: NonNegativeInt | None = Field(
        default=None,
        description="The newest control-plane term whose acknowledgement this pod applied; "
        "absent before the first one (or from a control plane that sends no term).",
    )
    acked_sequence: NonNegativeInt | None = Field(
        default=None,
        description="Sequence of the report whose acknowledgement this pod applied last: "
        "the control plane learns which of its acknowledgements arrived.",
    )
    peer: PeerEndpoint | None = Field(
        default=None,
        description="Where this pod answers lease checks; absent from pods that do not "
        "(older versions, or no pod IP).",
    )
    join_key_ids: list[JoinKeyId] | None = Field(
        default=None,
        alias="joinKeyIds",
        max_length=MAX_JOIN_KEYS,
        description="The `kid`s of the join-token public keys this pod holds now: the "
        "control plane signs a token for this pod only with a key listed here. Absent "
        "from older pods (then it signs with its newest key).",
    )


class RoomAssignment(CamelModel):
    """A room the control plane has placed on the pod (the pod admits joins only for these)."""

    room: RoomKey
    max_participants: NonNegativeInt = Field(description="Joins beyond this are refused.")
    closing: bool = Field(
        default=False, description="The room is closing: admit no new participants."
    )


class ReportResponse(CamelModel):
    """The control plane's answer to a report: its only channel of commands to the SFU."""

    version: Literal["switchboard.dev/v1"] = Field(
        default=CONTRACT_VERSION, description=_VERSION_DESCRIPTION
    )
    acknowledged: bool = Field(
        description="False if the report was rejected as stale (older sequence or a previous "
        "incarnation's UID); the SFU then keeps its last acknowledged state."
    )
    sequence: NonNegativeInt = Field(description="Sequence of the report this answers.")
    failover_timeout_seconds: NonNegativeFloat = Field(
        description="An SFU without an acknowledged report for this long fences itself, "
        "unless the response also grants a lease (`leaseSeconds`) that the SFU understands."
    )
    assignments: list[RoomAssignment] = Field(
        default_factory=list,
        description="The complete set of rooms placed on this pod (not a delta).",
    )
    drain: bool = Field(default=False, description="Stop accepting rooms and drain.")
    drain_deadline: AwareDatetime | None = Field(
        default=None, description="When draining, the time by which the pod must be empty."
    )
    close: list[RoomKey] = Field(
        default_factory=list,
        description="Rooms to end now: disconnect their participants with reason `closing`.",
    )
    term: NonNegativeInt | None = Field(
        default=None,
        description="The leader's term: increases with every new leader. An SFU never applies "
        "a response of an older term than one it has applied.",
    )
    lease_seconds: PositiveFloat | None = Field(
        default=None,
        description="The lease this acknowledgement grants, counted by the SFU from when it "
        "sent the report. Present: the SFU follows the lease protocol (keeps serving past "
        "the lease only while its peers are unacknowledged too) instead of "
        "`failoverTimeoutSeconds`.",
    )
    peers: list[LeasePeer] = Field(
        default_factory=list,
        description="The other lease-holding SFU pods of this pod's Region: whom to ask when "
        "the lease expires.",
    )


class JoinGrants(CamelModel):
    """What a join token lets its holder do in the room."""

    publish: bool = Field(default=True, description="May publish audio and video tracks.")
    subscribe: bool = Field(default=True, description="May receive other participants' tracks.")
    data: bool = Field(default=True, description="May send and receive data-channel messages.")


class JoinTokenClaims(CamelModel):
    """Claims of a join token: a JWT signed EdDSA (Ed25519), `kid` in its header."""

    iss: Literal["switchboard.dev/control-plane"] = Field(
        default=JOIN_TOKEN_ISSUER, description="Issuer: the control plane's join API."
    )
    aud: Literal["switchboard.dev/sfu"] = Field(
        default=JOIN_TOKEN_AUDIENCE, description="Audience: SFU pods."
    )
    sub: str = Field(min_length=1, description="The participant's identity.")
    room: RoomKey
    pod: str = Field(min_length=1, description="Name of the SFU pod the room is placed on.")
    pod_uid: str = Field(
        alias="podUID",
        min_length=1,
        description="UID of that pod (a token is not valid on "
        "a later incarnation with the same name).",
    )
    grants: JoinGrants = Field(
        default_factory=JoinGrants, description="What the participant may do; all by default."
    )
    exp: int = Field(description="Expiry, seconds since the epoch.")
    iat: int = Field(description="Issued at, seconds since the epoch.")
    nbf: int = Field(description="Not before, seconds since the epoch.")
    term: NonNegativeInt | None = Field(
        default=None,
        description="Term of the leader that issued the token. An SFU that has applied a "
        "newer term admits it only into a room that term assigns to it.",
    )


class LeaseQuery(CamelModel):
    """A lease check: POSTed by an SFU whose lease expired to a peer's `/v1/lease`."""

    nonce: str = Field(
        min_length=16, max_length=64, description="Random; the signed answer must echo it."
    )
    pod: str = Field(min_length=1, max_length=253, description="The asking pod's name.")


class LeaseStatus(CamelModel):
    """A peer's answer to a lease check, signed EdDSA with its own peer key (a JWT whose
    claims are these fields)."""

    pod: str = Field(min_length=1, description="The answering pod's name.")
    pod_uid: str = Field(alias="podUID", min_length=1, description="The answering pod's UID.")
    nonce: str = Field(description="The query's nonce.")
    term: NonNegativeInt | None = Field(
        default=None, description="Term of the acknowledgement the peer applied last."
    )
    ack_age_seconds: NonNegativeFloat | None = Field(
        default=None,
        description="Seconds since the peer received that acknowledgement, on its own "
        "monotonic clock; null if it never received one.",
    )
    fenced: bool = Field(default=False, description="The peer has fenced itself.")


class MigrateReason(StrEnum):
    """Why the SFU asks participants to move."""

    FENCED = "fenced"
    DRAINING = "draining"
    POD_LOST = "pod-lost"
    ROOM_MOVED = "room-moved"
    CLOSING = "closing"


class MigrateMessage(CamelModel):
    """Sent by the SFU on each participant's signalling WebSocket when they must leave this
    pod; clients call `rejoin` for a new token and endpoint. WHIP/WHEP sessions have no
    message channel: they are only closed."""

    type: Literal["migrate"] = Field(default="migrate", description="Message type.")
    room: RoomKey
    reason: MigrateReason = Field(
        description="fenced: the pod lost the control plane; draining: the pod is being "
        "removed; pod-lost: the room's pod is gone; room-moved: the control plane placed the "
        "room elsewhere; closing: the room ends (do not rejoin)."
    )
    rejoin: str | None = Field(
        default=None,
        description="The room's join API endpoint, which gives a new token and SFU endpoint; "
        "null when the room is closing or the pod was given no SWITCHBOARD_JOIN_API_PUBLIC_URL.",
    )
