"""Prometheus metrics of the SFU: gauges of what the pod holds, counters of what it
forwarded (read from the media core's plain counters at scrape time) and admission events.
Names, types and labels come from `switchboard_api.metrics`, the project's one registry.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from switchboard_api import metrics as m
from switchboard_api.version import SWITCHBOARD_VERSION
from switchboard_sfu.media import MediaCounters
from switchboard_sfu.outbox import SLOW_CONSUMER
from switchboard_sfu.refusals import RefusalCode


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
        yield _gauge(m.SFU_ROOMS, pod.rooms)
        yield _gauge(m.SFU_PARTICIPANTS, pod.participants)
        yield _gauge(m.SFU_PUBLISHED_TRACKS, pod.published_tracks)
        yield _gauge(m.SFU_FORWARDED_TRACKS, pod.forwarded_tracks)
        yield _gauge(m.SFU_LOAD, pod.load_units)
        yield _gauge(m.SFU_CAPACITY, pod.capacity_units)
        ratio = pod.load_units / pod.capacity_units if pod.capacity_units else 0.0
        yield _gauge(m.SFU_LOAD_RATIO, ratio)
        yield _gauge(m.SFU_DRAINING, float(pod.draining))
        yield _gauge(m.SFU_FENCED, float(pod.fenced))

        c = self._counters
        yield _counter(m.SFU_RTP_RECEIVED_PACKETS, c.rtp_packets_received)
        yield _counter(m.SFU_RTP_RECEIVED_BYTES, c.rtp_payload_bytes_received)
        yield _counter(m.SFU_RTP_SENT_PACKETS, c.rtp_packets_sent)
        yield _counter(m.SFU_RTP_SENT_BYTES, c.rtp_payload_bytes_sent)
        yield _labelled_counter(
            m.SFU_RTP_LOST_PACKETS,
            {"upstream": c.rtp_packets_lost_upstream, "downstream": c.rtp_packets_lost_downstream},
        )
        yield _counter(m.SFU_NACKS_RECEIVED, c.nacks_received)
        yield _counter(m.SFU_RTP_RETRANSMITTED_PACKETS, c.retransmissions_sent)
        yield _counter(m.SFU_RTP_RETRANSMISSIONS_MISSED, c.retransmissions_missed)
        yield _labelled_counter(
            m.SFU_KEYFRAME_REQUESTS_RECEIVED, {"pli": c.plis_received, "fir": c.firs_received}
        )
        yield _counter(m.SFU_KEYFRAME_REQUESTS_SENT, c.keyframe_requests_sent)
        yield _counter(m.SFU_LAYER_SWITCHES, c.layer_switches)
        yield _counter(m.SFU_PADDING_PACKETS_SENT, c.padding_packets_sent)
        yield _counter(m.SFU_DATA_RECEIVED_MESSAGES, c.data_messages_received)
        yield _counter(m.SFU_DATA_SENT_MESSAGES, c.data_messages_sent)
        yield _counter(m.SFU_DATA_SENT_BYTES, c.data_bytes_sent)
        yield _counter(m.SFU_FORWARDING_CPU, c.forwarding_seconds)


def _gauge(spec: m.MetricSpec, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(spec.family, spec.help, value=value)


def _counter(spec: m.MetricSpec, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(spec.family, spec.help, value=value)


def _labelled_counter(spec: m.MetricSpec, values: dict[str, float]) -> CounterMetricFamily:
    (label,) = spec.labels
    family = CounterMetricFamily(spec.family, spec.help, labels=[label])
    for value, number in values.items():
        family.add_metric([value], number)
    return family


class SfuMetrics:
    """The SFU's registry and the event counters the service increments directly."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        m.gauge(m.BUILD_INFO, self.registry).labels(m.COMPONENT_SFU, SWITCHBOARD_VERSION).set(1)
        self.joins = m.counter(m.SFU_JOINS, self.registry)
        self.joins_refused = m.counter(m.SFU_JOINS_REFUSED, self.registry)
        for code in RefusalCode:
            self.joins_refused.labels(str(code))
        self.participants_dropped = m.counter(m.SFU_PARTICIPANTS_DROPPED, self.registry)
        # Dashboards and alerts watch this one from the first scrape.
        self.participants_dropped.labels(SLOW_CONSUMER)
        self.migrations_requested = m.counter(m.SFU_MIGRATE_MESSAGES, self.registry)

    def register_pod(self, gauges: Callable[[], PodGauges], counters: MediaCounters) -> None:
        self.registry.register(SfuCollector(gauges, counters))
