"""The Region custom resource: where a media region's SFU and TURN workloads run, and how."""

import ipaddress
import re
from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, Field, WithJsonSchema

from switchboard_api import defaults, ports
from switchboard_api._camel import CamelModel
from switchboard_api.cel import CelRule, CelValidated
from switchboard_api.geo import GeoLocation
from switchboard_api.kube_types import (
    Condition,
    DnsLabel,
    DnsSubdomain,
    LabelSelector,
    ObjectMeta,
    PullPolicy,
    ResourceRequirements,
)
from switchboard_api.resources import (
    AGE_COLUMN,
    API_VERSION,
    REGION,
    PrinterColumn,
    ResourceNames,
)

Port = Annotated[int, Field(ge=1, le=65535)]
_MAX_CIDRS = 64


class RegionConditionType(StrEnum):
    """Condition types the operator sets on a Region."""

    READY = "Ready"
    """The SFU (and, when enabled, TURN) workloads have their minimum of ready pods."""
    PROGRESSING = "Progressing"
    """Workloads are being created, scaled or rolled out."""
    DEGRADED = "Degraded"
    """Something needs attention: e.g. fewer ready pods than desired, or invalid TLS secret."""
    AT_MAX_REPLICAS = "AtMaxReplicas"
    """Demand needs more SFU pods than `maxReplicas` allows: rooms may wait or spill."""
    SCALE_DOWN_HELD = "ScaleDownHeld"
    """Demand needs fewer SFU pods, but some pod's reports are missing or stale: none is
    removed until they report again."""


class PlacementPolicy(StrEnum):
    """How the control plane picks an SFU pod for a new room."""

    LEAST_LOADED = "LeastLoaded"
    PACKED = "Packed"


class MediaExposure(StrEnum):
    """How SFU pods are reached by media traffic from clients."""

    POD_IP = "PodIP"
    HOST_NETWORK = "HostNetwork"


BUFFER_PATTERN = r"^(100|[1-9]?[0-9])%$"
"""A percentage buffer: `0%` to `100%`."""


def _check_buffer(value: int | str) -> int | str:
    if isinstance(value, int):
        if not 0 <= value <= 1000:
            raise ValueError("a buffer of pods must be between 0 and 1000")
    elif not re.fullmatch(BUFFER_PATTERN, value):
        raise ValueError('a buffer must be a count of pods (2) or a percentage ("25%")')
    return value


Buffer = Annotated[
    int | str,
    AfterValidator(_check_buffer),
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": BUFFER_PATTERN,
            "x-kubernetes-int-or-string": True,
        }
    ),
]
"""Spare SFU pods: a count (`2`) or a percentage of the pods demand needs (`"25%"`)."""


class SfuAutoscaling(CamelModel):
    """Autoscaling targets for the region's SFU pods."""

    enabled: bool = Field(
        default=True,
        description="Scale SFU pods between minReplicas and maxReplicas to follow demand "
        "(room reservations). false: keep minReplicas pods.",
    )
    buffer: Buffer | None = Field(
        default=None,
        description="Spare SFU pods kept above what demand needs (at least minReplicas), "
        "ready for a spike: a count such as 1, or a percentage of that count such as "
        '"25%" (rounded up). The total stays within maxReplicas. Unset: 0.',
    )
    target_utilization: float = Field(
        default=defaults.SFU_TARGET_UTILIZATION,
        gt=0,
        le=1,
        description="Fraction of the region's SFU capacity that room reservations should "
        "fill: the autoscaler runs the fewest pods that keep reservations at or below it "
        "(plus the buffer).",
    )
    scale_down_stabilization_seconds: int = Field(
        default=defaults.SFU_SCALE_DOWN_STABILIZATION_SECONDS,
        ge=0,
        le=86400,
        description="Demand must stay low for this long before the autoscaler removes a pod: "
        "it then cordons the emptiest pods (no new rooms, nobody is moved) and deletes each "
        "once its last room has ended.",
    )
    drain_grace_seconds: int = Field(
        default=defaults.SFU_DRAIN_GRACE_SECONDS,
        ge=0,
        le=86400,
        description="Only for drains a user asks for (the pod annotation "
        "switchboard.dev/drain=true) and pod deletion: how long a draining SFU, after telling "
        "its participants to migrate, waits for them to leave before it disconnects them and "
        "exits; the pods' terminationGracePeriodSeconds is this plus 30 s. The autoscaler "
        "never drains: it deletes only pods that hold no room.",
    )


class SfuRebalance(CamelModel):
    """Optional policy: pods above a utilization threshold shed rooms that are still empty
    to cooler pods of the region, so that participants arriving later find room."""

    enabled: bool = Field(
        default=False,
        description="Move empty rooms off hot SFU pods. Rooms with participants never move.",
    )
    hot_threshold: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="Fraction of a pod's capacity above which it is hot and sheds empty rooms, "
        "until it is at or below it again; no room moves onto a pod it would take above it. "
        "Unset: highWaterMark.",
    )
    max_moves_per_minute: int = Field(
        default=defaults.SFU_REBALANCE_MAX_MOVES_PER_MINUTE,
        ge=1,
        le=600,
        description="Most rooms moved in the region in any 60 seconds.",
    )


MAX_SFU_REPLICAS = 1000
"""Bound of `minReplicas` and `maxReplicas`."""


class SfuSpec(CelValidated):
    """The region's SFU (selective forwarding unit) pods."""

    image: str | None = Field(
        default=None,
        min_length=1,
        max_length=512,
        description="SFU container image. Unset: the operator's (the Helm chart's `image` "
        "values), so a chart upgrade or registry override reaches the region.",
    )
    image_pull_policy: PullPolicy | None = Field(
        default=None,
        description="When to pull the SFU image. Unset: the operator's (the chart's "
        "`image.pullPolicy`).",
    )
    resources: ResourceRequirements | None = Field(
        default=None, description="CPU and memory for each SFU container."
    )
    min_replicas: int = Field(
        default=defaults.SFU_MIN_REPLICAS,
        ge=0,
        le=MAX_SFU_REPLICAS,
        description="Fewest SFU pods kept running, even with no rooms.",
    )
    max_replicas: int = Field(
        default=defaults.SFU_MAX_REPLICAS,
        ge=1,
        le=MAX_SFU_REPLICAS,
        description="Most SFU pods the autoscaler may run.",
    )
    capacity_per_pod: float = Field(
        default=defaults.SFU_CAPACITY_PER_POD,
        gt=0,
        le=100000,
        description="Capacity units one SFU pod offers. One unit is one forwarded video stream "
        "at 1 Mbit/s; an audio-only stream is 0.1.",
    )
    placement_policy: PlacementPolicy = Field(
        default=PlacementPolicy.LEAST_LOADED,
        description="LeastLoaded spreads rooms over pods; Packed fills the busiest pod that "
        "still fits, so idle pods can be drained.",
    )
    high_water_mark: float = Field(
        default=defaults.SFU_HIGH_WATER_MARK,
        gt=0,
        le=1,
        description="Fraction of a pod's capacity above which it takes no new rooms.",
    )
    autoscaling: SfuAutoscaling = Field(
        default_factory=SfuAutoscaling,
        description="When the autoscaler adds SFU pods and when it removes them.",
    )
    rebalance: SfuRebalance = Field(
        default_factory=SfuRebalance,
        description="Optional: hot pods shed rooms that are still empty to cooler pods.",
    )
    priority_class_name: DnsSubdomain | None = Field(
        default=None,
        description="PriorityClass of the SFU pods, e.g. one that keeps them from being "
        "preempted by batch work. Unset: the cluster default.",
    )
    media_exposure: MediaExposure = Field(
        default=MediaExposure.POD_IP,
        description="PodIP announces the pod's IP in ICE candidates; HostNetwork runs SFU pods "
        "on the node's network and announces the node's IP.",
    )
    public_url_template: str | None = Field(
        default=None,
        alias="publicURLTemplate",
        pattern=r"^(wss?|https?)://",
        max_length=512,
        description="Signalling URL clients use for a pod, with placeholders `{pod}`, "
        "`{podIP}`, `{namespace}`, `{region}` and `{port}`, e.g. "
        "`wss://{pod}.eu-west.example.com/`. Unset: `http://{podIP}:{port}` "
        "(`https://` with tlsSecretName).",
    )
    tls_secret_name: DnsSubdomain | None = Field(
        default=None,
        description="Secret of type kubernetes.io/tls in the region's namespace whose "
        "certificate SFU pods serve signalling (WSS), WHIP and WHEP with (HTTPS only), e.g. a "
        "wildcard for `*.sfu.example.com` with publicURLTemplate "
        "`wss://{pod}.sfu.example.com`. A renewed certificate is served to new connections "
        "within seconds, without restarting pods. Unset: plain HTTP.",
    )

    cel_rules = (
        CelRule(
            rule="self.minReplicas <= self.maxReplicas",
            message="minReplicas must not exceed maxReplicas",
            field_path=".minReplicas",
            check=lambda s: s.min_replicas <= s.max_replicas,
            violation={"minReplicas": 5, "maxReplicas": 2},
        ),
        CelRule(
            rule="self.autoscaling.targetUtilization <= self.highWaterMark",
            message="autoscaling.targetUtilization must not exceed highWaterMark, or pods fill "
            "up before the autoscaler adds more",
            field_path=".autoscaling.targetUtilization",
            check=lambda s: s.autoscaling.target_utilization <= s.high_water_mark,
            violation={"highWaterMark": 0.5, "autoscaling": {"targetUtilization": 0.9}},
        ),
        CelRule(
            rule="!has(self.tlsSecretName) || !has(self.publicURLTemplate) || "
            "self.publicURLTemplate.matches('^(wss|https)://')",
            message="with tlsSecretName, SFU pods serve only HTTPS: publicURLTemplate must "
            "start with wss:// or https://",
            field_path=".publicURLTemplate",
            check=lambda s: (
                s.tls_secret_name is None
                or s.public_url_template is None
                or s.public_url_template.startswith(("wss://", "https://"))
            ),
            violation={"tlsSecretName": "sfu-tls", "publicURLTemplate": "ws://{pod}.example.com"},
        ),
    )


class RelayPortRange(CelValidated):
    """UDP ports coturn allocates relay addresses from."""

    min: int = Field(
        default=ports.TURN_RELAY_PORT_MIN, ge=1024, le=65535, description="Lowest relay port."
    )
    max: int = Field(
        default=ports.TURN_RELAY_PORT_MAX, ge=1024, le=65535, description="Highest relay port."
    )

    cel_rules = (
        CelRule(
            rule="self.min <= self.max",
            message="min must not exceed max",
            field_path=".min",
            check=lambda s: s.min <= s.max,
            violation={"min": 60000, "max": 50000},
        ),
    )


def _all_cidrs(cidrs: list[str] | None) -> bool:
    try:
        for cidr in cidrs or ():
            ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False
    return True


class TurnSpec(CelValidated):
    """The region's TURN servers (coturn), for clients that cannot reach SFU pods directly."""

    enabled: bool = Field(default=True, description="Run TURN servers for this region.")
    image: str | None = Field(
        default=None,
        min_length=1,
        max_length=512,
        description="Image of the coturn container (it runs `turnserver`). Unset: the "
        "operator's TURN image (the Helm chart's `image` values), which also runs the "
        "secret-sync sidecar.",
    )
    image_pull_policy: PullPolicy | None = Field(
        default=None,
        description="When to pull the coturn image. Unset: the operator's (the chart's "
        "`image.pullPolicy`).",
    )
    resources: ResourceRequirements | None = Field(
        default=None, description="CPU and memory for each TURN container."
    )
    replicas: int = Field(
        default=defaults.TURN_REPLICAS, ge=0, le=100, description="Number of TURN pods."
    )
    realm: str = Field(
        default=defaults.TURN_REALM,
        min_length=1,
        max_length=253,
        pattern=r"^[A-Za-z0-9.-]+$",
        description="TURN realm (RFC 8656), usually a domain name.",
    )
    listening_port: Port = Field(
        default=ports.TURN_LISTENING_PORT, description="TURN/STUN port, UDP and TCP."
    )
    tls_port: Port = Field(default=ports.TURN_TLS_PORT, description="TURN over TLS/DTLS port.")
    tls_secret_name: DnsSubdomain | None = Field(
        default=None,
        description="Secret of type kubernetes.io/tls in the region's namespace with the "
        "certificate for `turns:` URIs. Unset: TLS is not offered.",
    )
    relay_port_range: RelayPortRange = Field(
        default_factory=RelayPortRange, description="Relay ports allocated to clients."
    )
    credential_ttl_seconds: int = Field(
        default=defaults.TURN_CREDENTIAL_TTL_SECONDS,
        alias="credentialTTLSeconds",
        ge=60,
        le=86400,
        description="Lifetime of the TURN REST API credentials handed to clients.",
    )
    allowed_peer_cidrs: list[Annotated[str, Field(max_length=64)]] | None = Field(
        default=None,
        alias="allowedPeerCIDRs",
        max_length=_MAX_CIDRS,
        description="Peer address ranges relays may send to, e.g. the SFU pod network. coturn "
        "denies private and loopback ranges unless listed here.",
    )
    prometheus_exporter: bool = Field(
        default=False,
        description="Enable coturn's Prometheus exporter (port 9641). Needs a coturn built "
        "with it: the operator's TURN image (Debian's coturn) has none, so with it the "
        "Region is Degraded until `image` names one that has.",
    )

    cel_rules = (
        CelRule(
            rule="self.listeningPort != self.tlsPort",
            message="tlsPort must differ from listeningPort",
            field_path=".tlsPort",
            check=lambda s: s.listening_port != s.tls_port,
            violation={"listeningPort": 3478, "tlsPort": 3478},
        ),
        CelRule(
            rule="!self.enabled || self.replicas >= 1",
            message="an enabled TURN service needs at least one replica",
            field_path=".replicas",
            check=lambda s: not s.enabled or s.replicas >= 1,
            violation={"enabled": True, "replicas": 0},
        ),
        CelRule(
            rule="!has(self.allowedPeerCIDRs) || self.allowedPeerCIDRs.all(c, isCIDR(c))",
            message="allowedPeerCIDRs must be CIDRs such as 10.0.0.0/8 or fd00::/8",
            field_path=".allowedPeerCIDRs",
            check=lambda s: _all_cidrs(s.allowed_peer_cidrs),
            violation={"allowedPeerCIDRs": ["10.0.0.0/8", "not-a-cidr"]},
        ),
    )


class RegionSpec(CelValidated):
    """Desired state of a media region."""

    namespace: DnsLabel = Field(
        default=defaults.REGION_NAMESPACE,
        description="Namespace the region's SFU and TURN workloads run in. It must exist: until "
        "it does, the Region is Degraded with reason NamespaceMissing. An installation whose "
        "chart sets regionNamespaces accepts only those: another is Degraded with reason "
        "NamespaceNotAllowed, and nothing is created for the Region.",
    )
    topology_region: str | None = Field(
        default=None,
        max_length=63,
        pattern=r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$",
        description="Value of the nodes' `topology.kubernetes.io/region` label the workloads "
        "are scheduled onto. Unset: the Region's name.",
    )
    node_selector: dict[str, str] | None = Field(
        default=None,
        description="Further node labels the workloads require, in addition to the topology "
        "region.",
    )
    location: GeoLocation = Field(
        description="Where the region is: rooms are placed in the region nearest their "
        "participants' location."
    )
    sfu: SfuSpec = Field(
        default_factory=SfuSpec,
        description="The region's SFU (selective forwarding unit) pods: image, resources, "
        "replica bounds, per-pod capacity, room placement and autoscaling.",
    )
    turn: TurnSpec = Field(
        default_factory=TurnSpec,
        description="The region's TURN servers (coturn), which relay media for clients that "
        "cannot reach SFU pods directly: replicas, ports, realm, TLS and credentials.",
    )
    namespace_selector: LabelSelector | None = Field(
        default=None,
        description="Namespaces whose Rooms may be placed in this region. Unset: all.",
    )


MAX_RECORDED_SFU_PODS = 2 * MAX_SFU_REPLICAS
"""Bound of `status.sfu.pods`: every pod of a Region at its largest, and as many again on
their way out (a pod stays recorded until it is seen gone)."""


MAX_RESERVED_SFU_PODS = MAX_SFU_REPLICAS
"""Bound of `status.sfu.reservedPods`: the pods one pass creates, never more than the
Region wants."""


class SfuPodRecord(CamelModel):
    """An SFU pod the operator created, by the UID the API server gave it."""

    name: DnsSubdomain = Field(description="The pod's name, in the Region's namespace.")
    uid: str = Field(min_length=1, max_length=64, description="The pod's `metadata.uid`.")


class SfuStatus(CamelModel):
    """Observed state of the region's SFU pods."""

    desired_replicas: int = Field(default=0, ge=0, description="Pods the operator wants.")
    current_replicas: int = Field(
        default=0, ge=0, description="Pods that exist and are not on their way out."
    )
    ready_replicas: int = Field(default=0, ge=0, description="Ready pods accepting rooms.")
    draining_replicas: int = Field(
        default=0,
        ge=0,
        description="Pods being removed: cordoned by the autoscaler until their rooms end, "
        "or drained.",
    )
    last_scale_time: str | None = Field(
        default=None, description="When the autoscaler last changed desiredReplicas."
    )
    last_scale_reason: str | None = Field(
        default=None, description="Why the autoscaler last changed desiredReplicas."
    )
    pods: list[SfuPodRecord] | None = Field(
        default=None,
        max_length=MAX_RECORDED_SFU_PODS,
        description="The SFU pods the operator created, by UID. Only these pods are "
        "trusted: their capacity reports are accepted, rooms are placed on them and they "
        "count as the Region's pods. Labels, ownerReferences and the ServiceAccount of a "
        "pod can be copied by anyone who may create pods; a UID cannot.",
    )
    reserved_pods: list[DnsSubdomain] | None = Field(
        default=None,
        max_length=MAX_RESERVED_SFU_PODS,
        description="Names of SFU pods the operator is about to create, written before the "
        "create and released when the pod's UID is recorded in `pods`. A pod under a "
        "reserved name whose UID was never recorded (the operator stopped in between) is "
        "deleted and replaced; a pod under any other name is never touched.",
    )


class TurnStatus(CamelModel):
    """Observed state of the region's TURN pods."""

    desired_replicas: int = Field(default=0, ge=0, description="Pods the operator wants.")
    ready_replicas: int = Field(default=0, ge=0, description="Ready pods.")


class RegionStatus(CamelModel):
    """Observed state of a media region, written by the operator."""

    observed_generation: int | None = Field(
        default=None, ge=0, description="The `.metadata.generation` this status describes."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=16,
        description="Ready, Progressing and Degraded.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    sfu: SfuStatus | None = Field(default=None, description="SFU pods.")
    turn: TurnStatus | None = Field(default=None, description="TURN pods.")
    turn_uris: list[str] | None = Field(
        default=None,
        alias="turnURIs",
        description="`turn:` and `turns:` URIs clients are given for this region.",
    )
    rooms: int | None = Field(default=None, ge=0, description="Rooms placed in the region.")
    capacity: float | None = Field(
        default=None, ge=0, description="Capacity units of the ready SFU pods."
    )
    load: float | None = Field(
        default=None, ge=0, description="Measured load of the SFU pods, capacity units."
    )


class Region(CamelModel):
    """A media region: the SFU and TURN pods serving rooms near one geographic location.

    Cluster-scoped; the operator runs the workloads in `spec.namespace`.
    """

    api_version: Literal["switchboard.dev/v1alpha1"] = Field(
        default=API_VERSION, alias="apiVersion"
    )
    kind: Literal["Region"] = REGION.kind
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: RegionSpec
    status: RegionStatus | None = None

    resource_names: ClassVar[ResourceNames] = REGION
    printer_columns: ClassVar[tuple[PrinterColumn, ...]] = (
        PrinterColumn("Lat", "number", ".spec.location.latitude", "Latitude of the region."),
        PrinterColumn("Lon", "number", ".spec.location.longitude", "Longitude of the region."),
        PrinterColumn("Desired", "integer", ".status.sfu.desiredReplicas", "SFU pods wanted."),
        PrinterColumn("Available", "integer", ".status.sfu.readyReplicas", "Ready SFU pods."),
        PrinterColumn("Rooms", "integer", ".status.rooms", "Rooms placed in the region."),
        PrinterColumn("Load", "number", ".status.load", "Measured SFU load, capacity units."),
        PrinterColumn(
            "Capacity", "number", ".status.capacity", "Capacity of ready SFU pods.", priority=1
        ),
        PrinterColumn(
            "Ready",
            "string",
            '.status.conditions[?(@.type=="Ready")].status',
            "Whether the region can take rooms.",
        ),
        PrinterColumn(
            "Namespace", "string", ".spec.namespace", "Namespace of the workloads.", priority=1
        ),
        AGE_COLUMN,
    )

    @property
    def topology_region(self) -> str:
        """The `topology.kubernetes.io/region` value the region's workloads run in."""
        return self.spec.topology_region or self.metadata.name or ""
