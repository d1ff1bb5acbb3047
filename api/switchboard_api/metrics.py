"""Every Prometheus metric Switchboard exports: name, type, labels and meaning, in one place.

The operator and the SFU build their instruments from these specs (`counter`, `gauge`,
`histogram`), the dashboard and the
alerting rules name them from here, and `docs/metrics.md` is this table. Names follow the
Prometheus conventions: base units (`_seconds`, `_bytes`), `_total` on counters, `_ratio`
for 0..1 fractions, `_info` for constant build facts.

`region` is a metric label on the operator's per-Region figures. The SFU's metrics carry no
`region` or `pod` label of their own: the chart's PodMonitor adds both as target labels
(from the pod's `switchboard.dev/region` label and its name), so a metric name never
repeats what the scrape already knows. No operator metric uses `pod` or `namespace` as a
label, because those are the operator's own target labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class MetricType(StrEnum):
    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"


@dataclass(frozen=True)
class MetricSpec:
    """One metric family as it appears in the exposition (counters with `_total`)."""

    name: str
    type: MetricType
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()
    """Histogram bucket bounds (upper, in the metric's unit); empty for other types."""

    @property
    def family(self) -> str:
        """The family name without the `_total` a counter's samples carry."""
        if self.type is MetricType.COUNTER:
            return self.name.removesuffix("_total")
        return self.name


def counter(spec: MetricSpec, registry: CollectorRegistry) -> Counter:
    assert spec.type is MetricType.COUNTER, spec.name
    return Counter(spec.family, spec.help, spec.labels, registry=registry)


def gauge(spec: MetricSpec, registry: CollectorRegistry) -> Gauge:
    assert spec.type is MetricType.GAUGE, spec.name
    return Gauge(spec.family, spec.help, spec.labels, registry=registry)


def histogram(spec: MetricSpec, registry: CollectorRegistry) -> Histogram:
    assert spec.type is MetricType.HISTOGRAM, spec.name
    return Histogram(spec.family, spec.help, spec.labels, buckets=spec.buckets, registry=registry)


def _counter(name: str, help: str, *labels: str) -> MetricSpec:
    assert name.endswith("_total"), name
    return MetricSpec(name, MetricType.COUNTER, help, labels)


def _gauge(name: str, help: str, *labels: str) -> MetricSpec:
    return MetricSpec(name, MetricType.GAUGE, help, labels)


def _histogram(name: str, help: str, buckets: tuple[float, ...], *labels: str) -> MetricSpec:
    return MetricSpec(name, MetricType.HISTOGRAM, help, labels, buckets)


# Label names.
REGION: Final = "region"
KIND: Final = "kind"
PHASE: Final = "phase"
CODE: Final = "code"
REASON: Final = "reason"
OUTCOME: Final = "outcome"
VERSION: Final = "version"
COMPONENT: Final = "component"
DIRECTION: Final = "direction"
TRANSPORT: Final = "transport"
TYPE: Final = "type"
VERDICT: Final = "verdict"

LATENCY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Seconds, for request and placement latencies: milliseconds when healthy, up to the
seconds a room waits for a starting pod."""


# ---- Both components --------------------------------------------------------------------
BUILD_INFO: Final = _gauge(
    "switchboard_build_info",
    "Always 1: the running component and its version.",
    COMPONENT,
    VERSION,
)

# ---- Operator ---------------------------------------------------------------------------
LEADER: Final = _gauge(
    "switchboard_operator_leader",
    "1 while this operator replica holds the leader Lease, 0 while it stands by.",
)
RECONCILES: Final = _counter(
    "switchboard_operator_reconciles_total",
    "Reconcile passes, by kind of object (Region, Room).",
    KIND,
)
RECONCILE_ERRORS: Final = _counter(
    "switchboard_operator_reconcile_errors_total",
    "Reconcile passes that failed and will be retried with back-off, by kind.",
    KIND,
)
RECONCILE_DURATION: Final = _histogram(
    "switchboard_operator_reconcile_duration_seconds",
    "Time one reconcile pass took, by kind.",
    LATENCY_BUCKETS,
    KIND,
)
ROOM_PLACEMENTS: Final = _counter(
    "switchboard_room_placements_total",
    "Rooms placed on an SFU pod (first placements and moves), by Region.",
    REGION,
)
ROOM_PLACEMENT_DURATION: Final = _histogram(
    "switchboard_room_placement_duration_seconds",
    "Time from a Room's creation to its first placement (phase Scheduled), by Region.",
    LATENCY_BUCKETS,
    REGION,
)
ROOMS: Final = _gauge(
    "switchboard_rooms",
    "Rooms by phase and by the Region they are placed in (empty while not placed).",
    REGION,
    PHASE,
)
FAILOVERS: Final = _counter(
    "switchboard_failovers_total",
    "SFU pods declared lost (reports missing, pod gone, failed or restarted), by Region "
    "and reason; their rooms are moved.",
    REGION,
    REASON,
)
ROOMS_MOVED: Final = _counter(
    "switchboard_rooms_moved_total",
    "Rooms moved to another SFU pod, by Region they left and reason (pod lost, drain, rebalance).",
    REGION,
    REASON,
)
CAPACITY_REPORTS: Final = _counter(
    "switchboard_capacity_reports_total",
    "Capacity reports received from SFU pods, by Region and outcome (accepted, "
    "unacknowledged: the picture did not take it).",
    REGION,
    OUTCOME,
)
CAPACITY_REPORTS_REFUSED: Final = _counter(
    "switchboard_capacity_reports_refused_total",
    "Capacity reports refused before they reached the capacity picture, by reason "
    "(missing_token, unauthenticated, forbidden, untrusted_pod, invalid_report, too_large, "
    "starting, not_leading).",
    REASON,
)
CAPACITY_REPORTS_LATE: Final = _gauge(
    "switchboard_region_sfu_pods_reports_late",
    "SFU pods whose last capacity report is older than the report freshness bound "
    "(or that never reported past their start-up grace), by Region.",
    REGION,
)
REGION_CAPACITY: Final = _gauge(
    "switchboard_region_capacity_units",
    "Capacity units the Region's reporting SFU pods offer.",
    REGION,
)
REGION_RESERVED: Final = _gauge(
    "switchboard_region_reserved_units",
    "Capacity units reserved by the rooms placed in the Region (reservation or measured "
    "cost, whichever the capacity model holds).",
    REGION,
)
REGION_LOAD: Final = _gauge(
    "switchboard_region_load_units",
    "Load the Region's SFU pods measured and reported, in capacity units.",
    REGION,
)
REGION_UTILIZATION: Final = _gauge(
    "switchboard_region_utilization_ratio",
    "Reserved units over capacity units (0 with no capacity).",
    REGION,
)
REGION_SFU_PODS_DESIRED: Final = _gauge(
    "switchboard_region_sfu_pods_desired",
    "SFU pods the Region reconciler wants.",
    REGION,
)
REGION_SFU_PODS_CURRENT: Final = _gauge(
    "switchboard_region_sfu_pods_current",
    "SFU pods that exist (any phase short of terminated).",
    REGION,
)
REGION_SFU_PODS_READY: Final = _gauge(
    "switchboard_region_sfu_pods_ready",
    "SFU pods that are Ready.",
    REGION,
)
REGION_SFU_PODS_DRAINING: Final = _gauge(
    "switchboard_region_sfu_pods_draining",
    "SFU pods draining (no new rooms; their rooms migrate or end).",
    REGION,
)
REGION_TURN_PODS_DESIRED: Final = _gauge(
    "switchboard_region_turn_pods_desired",
    "TURN (coturn) pods the Region asks for (0 without TURN).",
    REGION,
)
REGION_TURN_PODS_READY: Final = _gauge(
    "switchboard_region_turn_pods_ready",
    "TURN (coturn) pods that are Ready.",
    REGION,
)
# The autoscaler's inputs (exported before the autoscaler exists) and its decisions.
REGION_SFU_PODS_MIN: Final = _gauge(
    "switchboard_region_sfu_pods_min",
    "spec.sfu.autoscaling.minReplicas.",
    REGION,
)
REGION_SFU_PODS_MAX: Final = _gauge(
    "switchboard_region_sfu_pods_max",
    "spec.sfu.autoscaling.maxReplicas.",
    REGION,
)
REGION_TARGET_UTILIZATION: Final = _gauge(
    "switchboard_region_target_utilization_ratio",
    "spec.sfu.autoscaling.targetUtilization.",
    REGION,
)
REGION_ROOMS_WAITING: Final = _gauge(
    "switchboard_region_rooms_waiting",
    "Rooms waiting for capacity (Pending or Unschedulable) whose nearest Region this is.",
    REGION,
)
REGION_AT_MAX_REPLICAS: Final = _gauge(
    "switchboard_region_at_max_replicas",
    "1 while demand exceeds what maxReplicas SFU pods offer (the Region's AtMaxReplicas "
    "condition); set by the autoscaler.",
    REGION,
)
REGION_SCALE_DOWN_HELD: Final = _gauge(
    "switchboard_region_scale_down_held",
    "1 while a scale-down is due but held because some SFU pod's reports are missing or "
    "stale (the Region's ScaleDownHeld condition); set by the autoscaler.",
    REGION,
)
AUTOSCALER_SCALINGS: Final = _counter(
    "switchboard_autoscaler_scalings_total",
    "SFU pod count changes the autoscaler decided, by Region and direction (up, down).",
    REGION,
    DIRECTION,
)
JOIN_REQUESTS: Final = _counter(
    "switchboard_join_requests_total",
    "Join API requests answered, by HTTP status code.",
    CODE,
)
JOIN_REQUEST_DURATION: Final = _histogram(
    "switchboard_join_request_duration_seconds",
    "Join API request latency, by HTTP status code (a join waits for the room's placement).",
    LATENCY_BUCKETS,
    CODE,
)

OPERATOR: Final = (
    BUILD_INFO,
    LEADER,
    RECONCILES,
    RECONCILE_ERRORS,
    RECONCILE_DURATION,
    ROOM_PLACEMENTS,
    ROOM_PLACEMENT_DURATION,
    ROOMS,
    FAILOVERS,
    ROOMS_MOVED,
    CAPACITY_REPORTS,
    CAPACITY_REPORTS_REFUSED,
    CAPACITY_REPORTS_LATE,
    REGION_CAPACITY,
    REGION_RESERVED,
    REGION_LOAD,
    REGION_UTILIZATION,
    REGION_SFU_PODS_DESIRED,
    REGION_SFU_PODS_CURRENT,
    REGION_SFU_PODS_READY,
    REGION_SFU_PODS_DRAINING,
    REGION_TURN_PODS_DESIRED,
    REGION_TURN_PODS_READY,
    REGION_SFU_PODS_MIN,
    REGION_SFU_PODS_MAX,
    REGION_TARGET_UTILIZATION,
    REGION_ROOMS_WAITING,
    REGION_AT_MAX_REPLICAS,
    REGION_SCALE_DOWN_HELD,
    AUTOSCALER_SCALINGS,
    JOIN_REQUESTS,
    JOIN_REQUEST_DURATION,
)
"""What the operator exports (besides the standard `process_*` and `python_*` families)."""

# ---- SFU --------------------------------------------------------------------------------
SFU_ROOMS: Final = _gauge("switchboard_sfu_rooms", "Rooms on this pod.")
SFU_PARTICIPANTS: Final = _gauge("switchboard_sfu_participants", "Connected participants.")
SFU_PUBLISHED_TRACKS: Final = _gauge(
    "switchboard_sfu_published_tracks", "Tracks received from publishers."
)
SFU_FORWARDED_TRACKS: Final = _gauge(
    "switchboard_sfu_forwarded_tracks", "Tracks sent to subscribers."
)
SFU_LOAD: Final = _gauge("switchboard_sfu_load_units", "Measured load in capacity units.")
SFU_CAPACITY: Final = _gauge("switchboard_sfu_capacity_units", "Capacity units this pod offers.")
SFU_LOAD_RATIO: Final = _gauge(
    "switchboard_sfu_load_ratio", "Measured load over configured capacity."
)
SFU_DRAINING: Final = _gauge("switchboard_sfu_draining", "1 while the pod drains.")
SFU_FENCED: Final = _gauge(
    "switchboard_sfu_fenced", "1 while the pod is fenced (its control plane stopped answering)."
)
SFU_RTP_RECEIVED_PACKETS: Final = _counter(
    "switchboard_sfu_rtp_received_packets_total", "RTP packets received."
)
SFU_RTP_RECEIVED_BYTES: Final = _counter(
    "switchboard_sfu_rtp_received_payload_bytes_total", "RTP payload bytes received."
)
SFU_RTP_SENT_PACKETS: Final = _counter(
    "switchboard_sfu_rtp_sent_packets_total", "RTP packets forwarded."
)
SFU_RTP_SENT_BYTES: Final = _counter(
    "switchboard_sfu_rtp_sent_payload_bytes_total", "RTP payload bytes forwarded."
)
SFU_RTP_LOST_PACKETS: Final = _counter(
    "switchboard_sfu_rtp_lost_packets_total",
    "RTP packets lost: upstream (publisher to SFU) or reported by subscribers (downstream).",
    DIRECTION,
)
SFU_NACKS_RECEIVED: Final = _counter(
    "switchboard_sfu_nacks_received_total", "NACK feedback messages from subscribers."
)
SFU_RTP_RETRANSMITTED_PACKETS: Final = _counter(
    "switchboard_sfu_rtp_retransmitted_packets_total", "Packets resent for NACKs."
)
SFU_RTP_RETRANSMISSIONS_MISSED: Final = _counter(
    "switchboard_sfu_rtp_retransmissions_missed_total",
    "NACKed packets no longer in the retransmission history.",
)
SFU_KEYFRAME_REQUESTS_RECEIVED: Final = _counter(
    "switchboard_sfu_keyframe_requests_received_total",
    "Keyframe requests from subscribers, by type (pli, fir).",
    TYPE,
)
SFU_KEYFRAME_REQUESTS_SENT: Final = _counter(
    "switchboard_sfu_keyframe_requests_sent_total",
    "Keyframe requests sent to publishers (after throttling).",
)
SFU_LAYER_SWITCHES: Final = _counter(
    "switchboard_sfu_layer_switches_total",
    "Simulcast layer changes completed for subscribers.",
)
SFU_PADDING_PACKETS_SENT: Final = _counter(
    "switchboard_sfu_padding_packets_sent_total",
    "Padding packets sent to probe subscribers' bandwidth for a higher simulcast layer.",
)
SFU_DATA_RECEIVED_MESSAGES: Final = _counter(
    "switchboard_sfu_data_received_messages_total", "Data-channel messages received."
)
SFU_DATA_SENT_MESSAGES: Final = _counter(
    "switchboard_sfu_data_sent_messages_total", "Data-channel messages sent."
)
SFU_DATA_SENT_BYTES: Final = _counter(
    "switchboard_sfu_data_sent_bytes_total", "Data-channel bytes sent."
)
SFU_FORWARDING_CPU: Final = _counter(
    "switchboard_sfu_forwarding_cpu_seconds_total",
    "Event-loop time spent forwarding packets (never suspends, so it is CPU time).",
)
SFU_JOINS: Final = _counter(
    "switchboard_sfu_joins_total",
    "Admitted joins, by transport (signalling, whip, whep).",
    TRANSPORT,
)
SFU_JOINS_REFUSED: Final = _counter(
    "switchboard_sfu_joins_refused_total", "Refused joins, by refusal code.", CODE
)
SFU_PARTICIPANTS_DROPPED: Final = _counter(
    "switchboard_sfu_participants_dropped_total",
    "Participants disconnected by the SFU, by reason (slow-consumer: its signalling "
    "outbox overflowed; data-channel-stalled; duplicate-identity; ...).",
    REASON,
)
SFU_MIGRATE_MESSAGES: Final = _counter(
    "switchboard_sfu_migrate_messages_sent_total",
    "migrate messages sent to participants, by reason.",
    REASON,
)
SFU_CAPACITY_REPORTS: Final = _counter(
    "switchboard_sfu_capacity_reports_total",
    "Capacity reports sent, by outcome (acknowledged, rejected, failed).",
    OUTCOME,
)
SFU_CAPACITY_REPORT_LAST_ACK: Final = _gauge(
    "switchboard_sfu_capacity_report_last_acknowledged_timestamp_seconds",
    "Unix time the control plane last acknowledged a capacity report (the process start "
    "until the first).",
)
SFU_PEER_CHECKS: Final = _counter(
    "switchboard_sfu_peer_checks_total",
    "Lease checks with the Region's other SFU pods after the lease ended, by verdict "
    "(serve, fence).",
    VERDICT,
)
SFU_EVENT_LOOP_LAG: Final = _histogram(
    "switchboard_sfu_event_loop_lag_seconds",
    "How late event-loop probes ran beyond their scheduled time.",
    (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)

SFU: Final = (
    BUILD_INFO,
    SFU_ROOMS,
    SFU_PARTICIPANTS,
    SFU_PUBLISHED_TRACKS,
    SFU_FORWARDED_TRACKS,
    SFU_LOAD,
    SFU_CAPACITY,
    SFU_LOAD_RATIO,
    SFU_DRAINING,
    SFU_FENCED,
    SFU_RTP_RECEIVED_PACKETS,
    SFU_RTP_RECEIVED_BYTES,
    SFU_RTP_SENT_PACKETS,
    SFU_RTP_SENT_BYTES,
    SFU_RTP_LOST_PACKETS,
    SFU_NACKS_RECEIVED,
    SFU_RTP_RETRANSMITTED_PACKETS,
    SFU_RTP_RETRANSMISSIONS_MISSED,
    SFU_KEYFRAME_REQUESTS_RECEIVED,
    SFU_KEYFRAME_REQUESTS_SENT,
    SFU_LAYER_SWITCHES,
    SFU_PADDING_PACKETS_SENT,
    SFU_DATA_RECEIVED_MESSAGES,
    SFU_DATA_SENT_MESSAGES,
    SFU_DATA_SENT_BYTES,
    SFU_FORWARDING_CPU,
    SFU_JOINS,
    SFU_JOINS_REFUSED,
    SFU_PARTICIPANTS_DROPPED,
    SFU_MIGRATE_MESSAGES,
    SFU_CAPACITY_REPORTS,
    SFU_CAPACITY_REPORT_LAST_ACK,
    SFU_PEER_CHECKS,
    SFU_EVENT_LOOP_LAG,
)
"""What the SFU exports (besides the standard `process_*` and `python_*` families)."""

COMPONENT_OPERATOR: Final = "operator"
COMPONENT_SFU: Final = "sfu"

# Target labels the chart's monitors attach to every scraped series.
TARGET_REGION: Final = "region"
TARGET_POD: Final = "pod"
TARGET_NAMESPACE: Final = "namespace"
