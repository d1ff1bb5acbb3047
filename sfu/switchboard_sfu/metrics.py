"""Prometheus metrics of the SFU: gauges of what the pod holds, counters of what it
forwarded (read from the media core's plain counters at scrape time) and admission events.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import (
    CollectorRegistry,
    Counter,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from switchboard_sfu.media import MediaCounters
from switchboard_sfu.refusals import RefusalCode

PREFIX = "switchboard_sfu"


@dataclass(frozen=True)
class PodGauges:
    """What the pod holds right now (computed on demand by the service)."""

    rooms: int
    participants: int
    published_tracks: int
    forwarded_tracks: int
    load_units: float
    capacity_units: float
    draining: bool
    fenced: bool


class SfuCollector(Collector):
    """Exports the pod gauges and the media counters on every scrape."""

    def __init__(self, gauges: Callable[[], PodGauges], counters: MediaCounters) -> None:
        self._gauges = gauges
        self._counters = counters

    def collect(self) -> Iterator[Metric]:
        pod = self._gauges()
        yield _gauge("rooms", "Rooms on this pod.", pod.rooms)
        yield _gauge("participants", "Connected participants.", pod.participants)
        yield _gauge("published_tracks", "Tracks received from publishers.", pod.published_tracks)
        yield _gauge("forwarded_tracks", "Tracks sent to subscribers.", pod.forwarded_tracks)
        yield _gauge("load_units", "Measured load in capacity units.", pod.load_units)
        yield _gauge("capacity_units", "Capacity units this pod offers.", pod.capacity_units)
        ratio = pod.load_units / pod.capacity_units if pod.capacity_units else 0.0
        yield _gauge("load_ratio", "Measured load over configured capacity.", ratio)
        yield _gauge("draining", "1 while the pod drains.", float(pod.draining))
        yield _gauge("fenced", "1 while the pod is fenced (no control plane).", float(pod.fenced))

        c = self._counters
        yield _counter("rtp_received_packets", "RTP packets received.", c.rtp_packets_received)
        yield _counter(
            "rtp_received_payload_bytes",
            "RTP payload bytes received.",
            c.rtp_payload_bytes_received,
        )
        yield _counter("rtp_sent_packets", "RTP packets forwarded.", c.rtp_packets_sent)
        yield _counter(
            "rtp_sent_payload_bytes", "RTP payload bytes forwarded.", c.rtp_payload_bytes_sent
        )
        lost = CounterMetricFamily(
            f"{PREFIX}_rtp_lost_packets",
            "RTP packets lost: upstream (publisher to SFU) or reported by subscribers.",
            labels=["direction"],
        )
        lost.add_metric(["upstream"], c.rtp_packets_lost_upstream)
        lost.add_metric(["downstream"], c.rtp_packets_lost_downstream)
        yield lost
        yield _counter(
            "nacks_received", "NACK feedback messages from subscribers.", c.nacks_received
        )
        yield _counter(
            "rtp_retransmitted_packets", "Packets resent for NACKs.", c.retransmissions_sent
        )
        yield _counter(
            "rtp_retransmissions_missed",
            "NACKed packets no longer in the retransmission history.",
            c.retransmissions_missed,
        )
        keyframes = CounterMetricFamily(
            f"{PREFIX}_keyframe_requests_received",
            "Keyframe requests from subscribers, by type.",
            labels=["type"],
        )
        keyframes.add_metric(["pli"], c.plis_received)
        keyframes.add_metric(["fir"], c.firs_received)
        yield keyframes
        yield _counter(
            "keyframe_requests_sent",
            "Keyframe requests sent to publishers (after throttling).",
            c.keyframe_requests_sent,
        )
        yield _counter(
            "layer_switches",
            "Simulcast layer changes completed for subscribers.",
            c.layer_switches,
        )
        yield _counter(
            "padding_packets_sent",
            "Padding packets sent to probe subscribers' bandwidth for a higher layer.",
            c.padding_packets_sent,
        )
        yield _counter(
            "data_received_messages", "Data-channel messages received.", c.data_messages_received
        )
        yield _counter("data_sent_messages", "Data-channel messages sent.", c.data_messages_sent)
        yield _counter("data_sent_bytes", "Data-channel bytes sent.", c.data_bytes_sent)
        yield _counter(
            "forwarding_cpu_seconds",
            "Event-loop time spent forwarding packets (never suspends, so it is CPU time).",
            c.forwarding_seconds,
        )


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{PREFIX}_{name}", documentation, value=value)


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(f"{PREFIX}_{name}", documentation, value=value)


class SfuMetrics:
    """The SFU's registry and the event counters the service increments directly."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.joins = Counter(
            f"{PREFIX}_joins",
            "Admitted joins, by transport (signalling, whip, whep).",
            ["transport"],
            registry=self.registry,
        )
        self.joins_refused = Counter(
            f"{PREFIX}_joins_refused",
            "Refused joins, by refusal code.",
            ["code"],
            registry=self.registry,
        )
        for code in RefusalCode:
            self.joins_refused.labels(str(code))
        self.participants_dropped = Counter(
            f"{PREFIX}_participants_dropped",
            "Participants disconnected by the SFU, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.migrations_requested = Counter(
            f"{PREFIX}_migrate_messages_sent",
            "migrate messages sent to participants, by reason.",
            ["reason"],
            registry=self.registry,
        )

    def register_pod(self, gauges: Callable[[], PodGauges], counters: MediaCounters) -> None:
        self.registry.register(SfuCollector(gauges, counters))
