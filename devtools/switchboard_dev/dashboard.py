"""Switchboard's Grafana dashboard, generated as code with grafana-foundation-sdk.

`python -m switchboard_dev.dashboard` writes `charts/switchboard/files/dashboards/
switchboard.json`, which the chart ships as a ConfigMap; a test fails while the committed
file differs from what this module builds. Every query names its metrics from
`switchboard_api.metrics`, and every legend names the labels a series must carry
(`{{region}}`, `{{pod}}`, ...): the end-to-end test checks each query against a real
Prometheus scraping a running Switchboard, and that each series has those labels.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field

from grafana_foundation_sdk.builders import dashboard as gd
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DataSourceRef,
    VariableRefresh,
)

from switchboard_api import metrics as m
from switchboard_dev.paths import CHART_DIR

DASHBOARD_FILE = CHART_DIR / "files" / "dashboards" / "switchboard.json"
UID = "switchboard-overview"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
RATE = "$__rate_interval"
REGION = 'region=~"$region"'
CONSTANT_FALLBACK = re.compile(r"\bor\b[^()]*\bvector\s*\(|\bvector\s*\(\s*[0-9]|\babsent\s*\(")
"""`or vector(0)`, a bare `vector(1)`, `absent(...)`: a panel that shows a constant when its
metric is missing hides exactly what it should reveal."""


def hides_missing_data(expr: str) -> bool:
    return bool(CONSTANT_FALLBACK.search(expr))


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class PanelSpec:
    title: str
    description: str
    queries: tuple[Query, ...]
    unit: str = "short"
    kind: str = "timeseries"
    needs: str = ""
    """What the panel needs beyond a running Switchboard (empty: nothing), e.g. coturn's
    exporter; the end-to-end proof skips such a panel with this reason."""


@dataclass(frozen=True)
class RowSpec:
    title: str
    panels: tuple[PanelSpec, ...] = field(default_factory=tuple)


def _q(expr: str, legend: str) -> Query:
    return Query(expr, legend)


def _by_region(spec: m.MetricSpec, legend: str, agg: str = "sum") -> Query:
    return _q(f"{agg} by (region) ({spec.name}{{{REGION}}})", legend)


def _quantile(q: float, spec: m.MetricSpec, by: str, legend: str, selector: str = "") -> Query:
    series = f"{spec.name}_bucket" + (f"{{{selector}}}" if selector else "")
    expr = f"histogram_quantile({q}, sum by ({by}, le) (rate({series}[{RATE}])))"
    return _q(expr, legend)


def _pod_rate(spec: m.MetricSpec, legend: str, selector: str = "", by: str = "") -> Query:
    labels = ", ".join(["region", "pod", *([by] if by else [])])
    sel = ", ".join(s for s in (REGION, selector) if s)
    return _q(f"sum by ({labels}) (rate({spec.name}{{{sel}}}[{RATE}]))", legend)


ROWS: tuple[RowSpec, ...] = (
    RowSpec(
        "Regions",
        (
            PanelSpec(
                "Capacity and load",
                "Capacity units offered by SFU pods that take rooms, units reserved by placed "
                "rooms, and the load the pods measured.",
                (
                    _by_region(m.REGION_CAPACITY, "{{region}} capacity"),
                    _by_region(m.REGION_RESERVED, "{{region}} reserved"),
                    _by_region(m.REGION_LOAD, "{{region}} measured"),
                ),
            ),
            PanelSpec(
                "Utilisation",
                "Reserved over capacity, against the Region's autoscaling target.",
                (
                    _by_region(m.REGION_UTILIZATION, "{{region}}", "max"),
                    _by_region(m.REGION_TARGET_UTILIZATION, "{{region}} target", "max"),
                ),
                unit="percentunit",
            ),
            PanelSpec(
                "SFU pods",
                "Desired (the Region reconciler), current, Ready and draining SFU pods, and "
                "the autoscaling bounds.",
                (
                    _by_region(m.REGION_SFU_PODS_DESIRED, "{{region}} desired"),
                    _by_region(m.REGION_SFU_PODS_CURRENT, "{{region}} current"),
                    _by_region(m.REGION_SFU_PODS_READY, "{{region}} ready"),
                    _by_region(m.REGION_SFU_PODS_DRAINING, "{{region}} draining"),
                    _by_region(m.REGION_SFU_PODS_MAX, "{{region}} max"),
                ),
            ),
            PanelSpec(
                "SFU pods reporting late",
                "SFU pods whose capacity reports are older than the freshness bound: they take "
                "no new rooms, and their rooms move past the failover timeout.",
                (_by_region(m.CAPACITY_REPORTS_LATE, "{{region}}"),),
            ),
        ),
    ),
    RowSpec(
        "Rooms",
        (
            PanelSpec(
                "Rooms by phase",
                "Every Room by its phase (Pending and Unschedulable rooms wait for capacity).",
                (_q(f"sum by (phase) ({m.ROOMS.name})", "{{phase}}"),),
            ),
            PanelSpec(
                "Rooms by Region",
                "Placed rooms by the Region they run in, and rooms waiting for each Region.",
                (
                    _q(f'sum by (region) ({m.ROOMS.name}{{{REGION}, region!=""}})', "{{region}}"),
                    _by_region(m.REGION_ROOMS_WAITING, "{{region}} waiting"),
                ),
            ),
            PanelSpec(
                "Placement latency (created to Scheduled)",
                "Time from a Room's creation to its first placement.",
                tuple(
                    _quantile(
                        q, m.ROOM_PLACEMENT_DURATION, "region", f"{{{{region}}}} p{n}", REGION
                    )
                    for q, n in ((0.5, 50), (0.95, 95), (0.99, 99))
                ),
                unit="s",
            ),
            PanelSpec(
                "Placements",
                "Rooms placed per second (first placements and moves).",
                (
                    _q(
                        f"sum by (region) (rate({m.ROOM_PLACEMENTS.name}{{{REGION}}}[{RATE}]))",
                        "{{region}}",
                    ),
                ),
                unit="ops",
            ),
            PanelSpec(
                "Failovers and rooms moved",
                "SFU pods declared lost and rooms moved off pods, by reason, over the last hour.",
                (
                    _q(
                        f"sum by (region, reason) (increase({m.FAILOVERS.name}{{{REGION}}}[1h]))",
                        "{{region}} {{reason}} pods lost",
                    ),
                    _q(
                        f"sum by (region, reason) (increase({m.ROOMS_MOVED.name}{{{REGION}}}[1h]))",
                        "{{region}} {{reason}} rooms moved",
                    ),
                ),
            ),
        ),
    ),
    RowSpec(
        "Control plane",
        (
            PanelSpec(
                "Join API requests",
                "Join API answers per second by HTTP status code.",
                (
                    _q(
                        f"sum by (code) (rate({m.JOIN_REQUESTS.name}[{RATE}]))",
                        "{{code}}",
                    ),
                ),
                unit="reqps",
            ),
            PanelSpec(
                "Join API latency",
                "Join latency by status code (a join waits for its room's placement).",
                (
                    _quantile(0.5, m.JOIN_REQUEST_DURATION, "code", "{{code}} p50"),
                    _quantile(0.99, m.JOIN_REQUEST_DURATION, "code", "{{code}} p99"),
                ),
                unit="s",
            ),
            PanelSpec(
                "Capacity reports",
                "Reports received per second by Region and outcome, and refusals by reason.",
                (
                    _q(
                        f"sum by (region, outcome) "
                        f"(rate({m.CAPACITY_REPORTS.name}{{{REGION}}}[{RATE}]))",
                        "{{region}} {{outcome}}",
                    ),
                    _q(
                        f"sum by (reason) (rate({m.CAPACITY_REPORTS_REFUSED.name}[{RATE}]))",
                        "refused {{reason}}",
                    ),
                ),
                unit="ops",
            ),
            PanelSpec(
                "Leader",
                "1 for the operator replica that holds the leader Lease.",
                (_q(f"max by (pod) ({m.LEADER.name})", "{{pod}}"),),
                kind="stat",
            ),
            PanelSpec(
                "Reconciles",
                "Reconcile passes and failed passes per second, by kind.",
                (
                    _q(
                        f"sum by (kind) (rate({m.RECONCILES.name}[{RATE}]))",
                        "{{kind}}",
                    ),
                    _q(
                        f"sum by (kind) (rate({m.RECONCILE_ERRORS.name}[{RATE}]))",
                        "{{kind}} errors",
                    ),
                ),
                unit="ops",
            ),
            PanelSpec(
                "Reconcile duration",
                "99th percentile of one reconcile pass, by kind.",
                (_quantile(0.99, m.RECONCILE_DURATION, "kind", "{{kind}} p99"),),
                unit="s",
            ),
        ),
    ),
    RowSpec(
        "SFU media",
        (
            PanelSpec(
                "Participants",
                "Connected participants and rooms per SFU pod.",
                (
                    _q(
                        f"sum by (region, pod) ({m.SFU_PARTICIPANTS.name}{{{REGION}}})",
                        "{{region}} {{pod}} participants",
                    ),
                    _q(
                        f"sum by (region, pod) ({m.SFU_ROOMS.name}{{{REGION}}})",
                        "{{region}} {{pod}} rooms",
                    ),
                ),
            ),
            PanelSpec(
                "Forwarded packets",
                "RTP packets received from publishers and forwarded to subscribers.",
                (
                    _pod_rate(m.SFU_RTP_RECEIVED_PACKETS, "{{region}} {{pod}} received"),
                    _pod_rate(m.SFU_RTP_SENT_PACKETS, "{{region}} {{pod}} forwarded"),
                ),
                unit="pps",
            ),
            PanelSpec(
                "NACK, PLI and retransmissions",
                "Feedback from subscribers and the SFU's repairs.",
                (
                    _pod_rate(m.SFU_NACKS_RECEIVED, "{{region}} {{pod}} NACK"),
                    _pod_rate(
                        m.SFU_KEYFRAME_REQUESTS_RECEIVED,
                        "{{region}} {{pod}} PLI",
                        selector='type="pli"',
                    ),
                    _pod_rate(m.SFU_RTP_RETRANSMITTED_PACKETS, "{{region}} {{pod}} RTX"),
                ),
                unit="ops",
            ),
            PanelSpec(
                "Packet loss",
                "RTP packets lost upstream (publishers to the SFU) and downstream (as "
                "subscribers report).",
                (
                    _pod_rate(
                        m.SFU_RTP_LOST_PACKETS, "{{region}} {{pod}} {{direction}}", by="direction"
                    ),
                ),
                unit="pps",
            ),
            PanelSpec(
                "Signalling outbox drops",
                "Participants dropped because their signalling outbox overflowed (a client "
                "that stopped reading), over the last hour.",
                (
                    _q(
                        f"sum by (region, pod) (increase({m.SFU_PARTICIPANTS_DROPPED.name}"
                        f'{{{REGION}, reason="slow-consumer"}}[1h]))',
                        "{{region}} {{pod}}",
                    ),
                ),
            ),
            PanelSpec(
                "Event-loop lag",
                "99th percentile of how late the SFU's event loop runs (every packet is "
                "forwarded on it): the first sign of an overloaded pod.",
                (
                    _quantile(
                        0.99, m.SFU_EVENT_LOOP_LAG, "region, pod", "{{region}} {{pod}}", REGION
                    ),
                ),
                unit="s",
            ),
        ),
    ),
    RowSpec(
        "TURN",
        (
            PanelSpec(
                "TURN pods",
                "coturn pods desired and Ready per Region.",
                (
                    _by_region(m.REGION_TURN_PODS_DESIRED, "{{region}} desired"),
                    _by_region(m.REGION_TURN_PODS_READY, "{{region}} ready"),
                ),
            ),
            PanelSpec(
                "TURN allocations and relayed traffic",
                "Allocations and relayed bytes per coturn pod, from coturn's own exporter.",
                (
                    _q(
                        f"sum by (region, pod) (turn_total_allocations{{{REGION}}})",
                        "{{region}} {{pod}} allocations",
                    ),
                    _q(
                        f"sum by (region, pod) "
                        f"(rate(turn_total_traffic_sentb{{{REGION}}}[{RATE}]))",
                        "{{region}} {{pod}} bytes relayed",
                    ),
                ),
                needs="coturn built with Prometheus support and the Region's "
                "turn.prometheusExporter (Debian's coturn has no exporter)",
            ),
        ),
    ),
)


def panels() -> list[PanelSpec]:
    return [panel for row in ROWS for panel in row.panels]


def _panel(spec: PanelSpec) -> timeseries.Panel | stat.Panel:
    for query in spec.queries:
        if hides_missing_data(query.expr):
            raise ValueError(f"{spec.title}: {query.expr!r} hides missing data behind a constant")
    builder = stat.Panel() if spec.kind == "stat" else timeseries.Panel()
    builder = (
        builder.title(spec.title)
        .description(spec.description + (f" Needs {spec.needs}." if spec.needs else ""))
        .datasource(DATASOURCE)
        .unit(spec.unit)
        .height(8)
        .span(12 if spec.kind == "timeseries" else 6)
    )
    for ref, query in zip("ABCDEFGH", spec.queries, strict=False):
        builder = builder.with_target(
            prometheus.Dataquery().expr(query.expr).legend_format(query.legend).ref_id(ref)
        )
    return builder


def build() -> dict:
    board = (
        gd.Dashboard("Switchboard")
        .uid(UID)
        .description(
            "Switchboard's Regions, rooms, control plane, SFU media and TURN. Generated by "
            "switchboard_dev.dashboard; edit the code, not this JSON."
        )
        .tags(["switchboard", "webrtc"])
        .refresh("30s")
        .time("now-1h", "now")
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .with_variable(gd.DatasourceVariable("datasource").label("Data source").type("prometheus"))
        .with_variable(
            gd.QueryVariable("region")
            .label("Region")
            .datasource(DATASOURCE)
            .query(f"label_values({m.REGION_CAPACITY.name}, region)")
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .multi(True)
            .include_all(True)
            .all_value(".*")
        )
    )
    for row in ROWS:
        board = board.with_row(gd.Row(row.title))
        for spec in row.panels:
            board = board.with_panel(_panel(spec))
    return json.loads(json.dumps(board.build(), cls=JSONEncoder))


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


def main() -> int:
    DASHBOARD_FILE.parent.mkdir(parents=True, exist_ok=True)
    DASHBOARD_FILE.write_text(render())
    print(f"wrote {DASHBOARD_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
