"""The operator's Prometheus metrics and the internal listener that serves them.

Instruments are built from `switchboard_api.metrics` (the project's one registry). The
manager creates one `OperatorMetrics` per process, before leader election, and hands it to
the parts that record: events (reconcile passes, placements, failovers, reports, joins) are
counted where they happen; the control plane's state (Regions, rooms by phase) is computed
at scrape time from what the operator already holds (`watch_figures`), so a scrape costs
no API call and the figures never drift from the state they describe.

Adding a metric: declare its `MetricSpec` in `switchboard_api/metrics.py` (and list it in
`OPERATOR`), build its instrument here, and give the part that records it a method to call
(as `region_at_max_replicas` and `scaled` are kept for the autoscaler).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from switchboard_api import metrics as m
from switchboard_api.version import SWITCHBOARD_VERSION
from switchboard_operator.logic.capacity import LossReason
from switchboard_operator.logic.region_figures import ControlPlaneFigures

log = logging.getLogger(__name__)

METRICS_PATH = "/metrics"
LOSS_REASONS = tuple(reason.value for reason in LossReason)
REBALANCE = "Rebalance"
REPORT_OUTCOMES = ("accepted", "unacknowledged")
REFUSAL_REASONS = (
    "missing_token",
    "unauthenticated",
    "too_large",
    "invalid_report",
    "forbidden",
    "untrusted_pod",
    "starting",
    "not_leading",
)
SCALING_DIRECTIONS = ("up", "down")
RECONCILED_KINDS = ("Region", "Room")

FiguresSource = Callable[[], ControlPlaneFigures | None]
"""The control plane's current figures; None while it does not lead (nothing to say)."""


class OperatorMetrics:
    """One per process: the registry, its instruments, and the figures collector."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        m.gauge(m.BUILD_INFO, self.registry).labels(m.COMPONENT_OPERATOR, SWITCHBOARD_VERSION).set(
            1
        )
        self._leader = m.gauge(m.LEADER, self.registry)
        self._leader.set(0)
        self._reconciles = m.counter(m.RECONCILES, self.registry)
        self._reconcile_errors = m.counter(m.RECONCILE_ERRORS, self.registry)
        self._reconcile_duration = m.histogram(m.RECONCILE_DURATION, self.registry)
        self._placements = m.counter(m.ROOM_PLACEMENTS, self.registry)
        self._placement_duration = m.histogram(m.ROOM_PLACEMENT_DURATION, self.registry)
        self._failovers = m.counter(m.FAILOVERS, self.registry)
        self._rooms_moved = m.counter(m.ROOMS_MOVED, self.registry)
        self._reports = m.counter(m.CAPACITY_REPORTS, self.registry)
        self._reports_refused = m.counter(m.CAPACITY_REPORTS_REFUSED, self.registry)
        for reason in REFUSAL_REASONS:
            self._reports_refused.labels(reason)
        for kind in RECONCILED_KINDS:
            self._reconciles.labels(kind)
            self._reconcile_errors.labels(kind)
            self._reconcile_duration.labels(kind)
        self._joins = m.counter(m.JOIN_REQUESTS, self.registry)
        self._join_duration = m.histogram(m.JOIN_REQUEST_DURATION, self.registry)
        # Recorded by the autoscaler (region_at_max_replicas, region_scale_down_held,
        # scaled); registered here so the names exist, and every Region's series start,
        # before it does.
        self._at_max_replicas = m.gauge(m.REGION_AT_MAX_REPLICAS, self.registry)
        self._scale_down_held = m.gauge(m.REGION_SCALE_DOWN_HELD, self.registry)
        self._scalings = m.counter(m.AUTOSCALER_SCALINGS, self.registry)
        self._figures = _FiguresCollector(self._regions_seen)
        self.registry.register(self._figures)
        self._known_regions: set[str] = set()

    def _regions_seen(self, regions: Iterable[str]) -> None:
        """Start each Region's event counters at 0 (a counter that first appears at 1 shows
        no increase in `rate()` or `increase()`, so the first failover would go unseen)."""
        for region in set(regions) - self._known_regions:
            self._known_regions.add(region)
            self._placements.labels(region)
            self._placement_duration.labels(region)
            for reason in LOSS_REASONS:
                self._failovers.labels(region, reason)
            for reason in (*LOSS_REASONS, REBALANCE):
                self._rooms_moved.labels(region, reason)
            for outcome in REPORT_OUTCOMES:
                self._reports.labels(region, outcome)
            self._at_max_replicas.labels(region)
            self._scale_down_held.labels(region)
            for direction in SCALING_DIRECTIONS:
                self._scalings.labels(region, direction)

    def set_leader(self, leading: bool) -> None:
        self._leader.set(1 if leading else 0)

    def watch_figures(self, source: FiguresSource) -> None:
        """Export the control plane's figures from `source` on every scrape."""
        self._figures.source = source

    def reconciled(self, kind: str, seconds: float, failed: bool) -> None:
        self._reconciles.labels(kind).inc()
        self._reconcile_duration.labels(kind).observe(seconds)
        if failed:
            self._reconcile_errors.labels(kind).inc()

    def reconciles(self, kind: str) -> Callable[[float, bool], None]:
        """The work queue's observer for the reconciler of `kind` (kit.workqueue.Observe):
        every pass counted, timed, and counted again if it failed."""
        return lambda seconds, failed: self.reconciled(kind, seconds, failed)

    def placed(self, region: str, since_created: float | None) -> None:
        """A room placed; `since_created` for its first placement only (a move is no wait
        a user saw at creation)."""
        self._placements.labels(region).inc()
        if since_created is not None:
            self._placement_duration.labels(region).observe(max(0.0, since_created))

    def pod_lost(self, region: str, reason: str, rooms: int) -> None:
        """A pod's rooms had to leave it: a failover, unless it only drained past its
        deadline (that moves rooms, but loses no pod)."""
        if reason != LossReason.DRAIN_DEADLINE.value:
            self._failovers.labels(region, reason).inc()
        if rooms:
            self._rooms_moved.labels(region, reason).inc(rooms)

    def rooms_moved(self, region: str, reason: str = REBALANCE, rooms: int = 1) -> None:
        self._rooms_moved.labels(region, reason).inc(rooms)

    def report_received(self, region: str, accepted: bool) -> None:
        self._reports.labels(region, REPORT_OUTCOMES[0 if accepted else 1]).inc()

    def report_refused(self, reason: str) -> None:
        self._reports_refused.labels(reason).inc()

    def region_at_max_replicas(self, region: str, at_max: bool) -> None:
        """The autoscaler's AtMaxReplicas condition for `region`."""
        self._at_max_replicas.labels(region).set(1 if at_max else 0)

    def region_scale_down_held(self, region: str, held: bool) -> None:
        """The autoscaler's ScaleDownHeld condition for `region`."""
        self._scale_down_held.labels(region).set(1 if held else 0)

    def scaled(self, region: str, direction: str) -> None:
        """The autoscaler changed `region`'s SFU pod count (direction: up or down)."""
        self._scalings.labels(region, direction).inc()

    def expect_join_statuses(self, statuses: Iterable[int]) -> None:
        """Start the join API's series for every status it can answer at 0 (an answer first
        counted at 1 shows no increase, so early joins would vanish from rates)."""
        for status in statuses:
            self._joins.labels(str(status))
            self._join_duration.labels(str(status))

    def join_answered(self, status: int, seconds: float) -> None:
        code = str(status)
        self._joins.labels(code).inc()
        self._join_duration.labels(code).observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _FiguresCollector(Collector):
    def __init__(self, regions_seen: Callable[[Iterable[str]], None]) -> None:
        self.source: FiguresSource = lambda: None
        self._regions_seen = regions_seen

    def collect(self) -> Iterator[Metric]:
        try:
            figures = self.source()
        except Exception:  # a scrape must never take the operator down
            log.exception("metrics figures failed")
            return
        if figures is None:
            return
        self._regions_seen(figures.regions)
        per_region: list[tuple[m.MetricSpec, Callable[..., float]]] = [
            (m.REGION_CAPACITY, lambda r: r.figures.capacity),
            (m.REGION_RESERVED, lambda r: r.figures.reserved),
            (m.REGION_LOAD, lambda r: r.figures.load),
            (m.REGION_UTILIZATION, lambda r: r.figures.utilization),
            (m.CAPACITY_REPORTS_LATE, lambda r: r.figures.reports_late),
            (m.REGION_SFU_PODS_DESIRED, lambda r: r.sfu_desired),
            (m.REGION_SFU_PODS_CURRENT, lambda r: r.sfu_current),
            (m.REGION_SFU_PODS_READY, lambda r: r.sfu_ready),
            (m.REGION_SFU_PODS_DRAINING, lambda r: r.sfu_draining),
            (m.REGION_TURN_PODS_DESIRED, lambda r: r.turn_desired),
            (m.REGION_TURN_PODS_READY, lambda r: r.turn_ready),
            (m.REGION_SFU_PODS_MIN, lambda r: r.min_replicas),
            (m.REGION_SFU_PODS_MAX, lambda r: r.max_replicas),
            (m.REGION_TARGET_UTILIZATION, lambda r: r.target_utilization),
            (m.REGION_ROOMS_WAITING, lambda r: r.rooms_waiting),
        ]
        for spec, value in per_region:
            family = GaugeMetricFamily(spec.family, spec.help, labels=[m.REGION])
            for name in sorted(figures.regions):
                family.add_metric([name], float(value(figures.regions[name])))
            yield family
        rooms = GaugeMetricFamily(m.ROOMS.family, m.ROOMS.help, labels=[m.REGION, m.PHASE])
        for (region, phase), count in sorted(figures.rooms.items()):
            rooms.add_metric([region, phase], count)
        yield rooms


def metrics_app(metrics: OperatorMetrics) -> web.Application:
    """The internal listener's app: `/metrics` and nothing else. Served on every replica
    (a standby says it stands by), from before leader election."""

    async def serve(_: web.Request) -> web.Response:
        response = web.Response(body=metrics.exposition())
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    app = web.Application()
    app.router.add_get(METRICS_PATH, serve)
    return app
