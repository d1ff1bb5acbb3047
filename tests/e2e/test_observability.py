"""Observability, proven on a running Switchboard: the chart installed with `helm install`
(the operator as the chart's Deployment, a pod of the local node agent), a real Prometheus
whose scrape configuration is generated from the chart's PodMonitors and ServiceMonitor and
whose rules are the chart's PrometheusRule, and real traffic (aiortc clients through the join
API). Every dashboard panel's query returns series with the labels its legend names, and an
alert fires on a lost SFU pod and resolves.

On its own control plane: the chart installs cluster-wide objects (CRDs, the operator's
ClusterRole, its Lease) that the session's other operator would fight over.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import secrets
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import aiohttp
import pytest
import yaml

from fixtures.nodeagent import TEST_AGENT_SETTINGS
from fixtures.sfu_clients import SignallingClient, SyntheticVideo
from fixtures.waiting import eventually, wait_for
from switchboard_dev import chart_install, dashboard
from switchboard_dev.images import require_built
from switchboard_dev.monitoring_crds import crd_files
from switchboard_dev.node_agent_process import NodeAgentProcess
from switchboard_dev.prometheus import PrometheusProcess, grant_discovery
from switchboard_localcluster.controlplane import ControlPlane
from switchboard_localcluster.nodeagent.presets import (
    NODE_AGENT_GROUPS,
    NODE_AGENT_USER,
    agent_config,
)

pytestmark = [pytest.mark.cluster, pytest.mark.nodeagent, pytest.mark.slow]

NAMESPACE = "switchboard-system"
MEDIA_NS = "obs-media"
ROOMS_NS = "obs-rooms"
REGION = "obs-eu"
SCRAPE = "2s"
OPERATOR_PODS = "app.kubernetes.io/component=operator"
API_KEY = secrets.token_hex(16)

VALUES = {
    "replicas": 1,
    "monitoring": {
        "serviceMonitor": {"enabled": True, "interval": SCRAPE},
        # Endpoints refuse loopback addresses, so the operator is scraped as a pod here.
        "podMonitors": {"enabled": True, "includeOperator": True, "interval": SCRAPE},
        "rules": {
            "enabled": True,
            "reportsLateFor": "10s",
            "unschedulableFor": "1m",
            "failoverWindow": "20s",
        },
        "dashboard": {"enabled": True},
    },
}


@dataclass
class Observed:
    plane: ControlPlane
    agent: NodeAgentProcess
    prometheus: PrometheusProcess
    chart: list[dict]

    def operator_url(self) -> str:
        url = chart_install.operator_url(self.plane)
        assert url is not None, "the operator Service selects no leader"
        return url


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Observed]:
    images = require_built()
    work = tmp_path_factory.mktemp("observability")
    plane = ControlPlane(workdir=work / "cluster")
    plane.start()
    agent = prometheus = None
    try:
        for path in crd_files():
            plane.kubectl("apply", "--server-side", "-f", str(path))
        config = agent_config(
            work / "node-agent" / "state",
            {REGION: [f"{REGION}-a"], "control": ["control-a"]},
            pod_address_range="127.60.0.0/16",
            image_stores=images.stores,
            **TEST_AGENT_SETTINGS,
        )
        kubeconfig = plane.issue_kubeconfig(NODE_AGENT_USER, NODE_AGENT_GROUPS)
        agent = NodeAgentProcess(plane, work / "node-agent", config, kubeconfig).start()
        values = work / "values.yaml"
        values.write_text(yaml.safe_dump(VALUES))
        chart_install.install(plane.kubeconfig, namespace=NAMESPACE, extra=["-f", str(values)])
        chart = chart_install.render(plane.kubeconfig, "-f", str(values), namespace=NAMESPACE)
        prometheus = PrometheusProcess(
            work / "prometheus",
            grant_discovery(plane),
            chart,
            evaluation_interval=SCRAPE,
        ).start()
        observed = Observed(plane, agent, prometheus, chart)
        wait_for(
            lambda: chart_install.operator_url(plane) is not None,
            120,
            "the operator Service to select its leader",
        )
        yield observed
    finally:
        if prometheus is not None:
            prometheus.stop()
        if agent is not None:
            agent.stop()
        plane.stop()


def _region() -> dict:
    return {
        "apiVersion": "switchboard.dev/v1alpha1",
        "kind": "Region",
        "metadata": {"name": REGION},
        "spec": {
            "namespace": MEDIA_NS,
            "location": {"latitude": 52.0, "longitude": 5.0},
            "sfu": {"minReplicas": 2, "maxReplicas": 3, "placementPolicy": "LeastLoaded"},
            "turn": {"enabled": True, "replicas": 1},
        },
    }


def _api_key() -> dict:
    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "obs-key",
            "namespace": NAMESPACE,
            "labels": {"switchboard.dev/api-key": "true"},
        },
        "data": {"key": b64(API_KEY), "namespaces": b64(ROOMS_NS), "create": b64("true")},
    }


def _pods(plane: ControlPlane, namespace: str, selector: str) -> list[dict]:
    out = plane.kubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "json").stdout
    return list(json.loads(out)["items"])


def _ready(pod: dict) -> bool:
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def sfu_pods(plane: ControlPlane) -> list[dict]:
    return [
        p
        for p in _pods(plane, MEDIA_NS, "app.kubernetes.io/component=sfu")
        if _ready(p) and not p["metadata"].get("deletionTimestamp")
    ]


@pytest.fixture(scope="module")
def traffic(observed: Observed) -> Iterator[dict[str, dict]]:
    """Two rooms joined through the join API, each with a publisher and a subscriber whose
    media flows through the SFU, kept running for the module."""
    plane = observed.plane
    for namespace, labels in (
        (MEDIA_NS, ["pod-security.kubernetes.io/enforce=restricted"]),
        (ROOMS_NS, []),
    ):
        plane.kubectl("create", "namespace", namespace)
        if labels:
            plane.kubectl("label", "namespace", namespace, *labels)
    for obj in (_region(), _api_key()):
        plane.kubectl("apply", "-f", "-", input=json.dumps(obj))
    wait_for(lambda: len(sfu_pods(plane)) == 2, 180, "two Ready SFU pods")
    base = observed.operator_url()
    loop = asyncio.new_event_loop()
    clients: list[SignallingClient] = []
    joined: dict[str, dict] = {}

    async def join(room: str, identity: str) -> dict:
        url = f"{base}/v1/namespaces/{ROOMS_NS}/rooms/{room}/join"
        headers = {"Authorization": f"Bearer {API_KEY}"}
        async with (
            aiohttp.ClientSession() as session,
            session.post(url, json={"identity": identity}, headers=headers) as reply,
        ):
            assert reply.status == 200, await reply.text()
            return dict(await reply.json())

    async def start() -> None:
        for room in ("standup", "townhall"):
            publisher_join = joined[room] = await join(room, "alice")
            subscriber_join = await join(room, "bob")
            publisher = SignallingClient(ws_url(publisher_join))
            subscriber = SignallingClient(ws_url(subscriber_join))
            clients.extend((publisher, subscriber))
            assert (await publisher.connect(publisher_join["token"]))["type"] == "joined"
            await publisher.publish(SyntheticVideo())
            assert (await subscriber.connect(subscriber_join["token"]))["type"] == "joined"

            async def decoded(subscriber: SignallingClient = subscriber) -> bool:
                return bool(subscriber.received) and all(
                    c.frames >= 5 for c in subscriber.received.values()
                )

            await eventually(decoded, 60, f"media flowing in {room}")

    # The clients run on their own loop in a thread, so media keeps flowing while the
    # (synchronous) tests query Prometheus.
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=180)
    try:
        yield joined
    finally:

        async def close() -> None:
            for client in clients:
                await client.close()

        asyncio.run_coroutine_threadsafe(close(), loop).result(timeout=60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)


def ws_url(joined: dict) -> str:
    return joined["url"].replace("http://", "ws://", 1) + "/ws"


LEGEND_LABEL = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def concrete(expr: str) -> str:
    """A panel query as Grafana sends it for the last quarter of an hour: every Region, and a
    rate window that spans the module's traffic (joins and placements happen at its start;
    on a loaded machine the panels are reached minutes later)."""
    return expr.replace("$region", ".*").replace("$__rate_interval", "15m")


def test_prometheus_scrapes_the_operator_and_every_sfu_pod_through_the_monitors(observed, traffic):
    prometheus = observed.prometheus

    def scraped() -> dict[str, set[str]]:
        pods: dict[str, set[str]] = {}
        for target in prometheus.targets():
            if target["health"] == "up":
                labels = target["labels"]
                pods.setdefault(labels["job"], set()).add(labels["pod"])
        return pods

    sfus = {p["metadata"]["name"] for p in sfu_pods(observed.plane)}
    operator = f"{NAMESPACE}/switchboard-operator"
    wait_for(
        lambda: scraped().get(f"{NAMESPACE}/switchboard-sfu") == sfus and operator in scraped(),
        60,
        "Prometheus scraping the operator and both SFU pods",
    )
    # Discovery ran under Prometheus' own identity, which can only read pods and endpoints.
    assert "forbidden" not in prometheus.log_tail(200).lower()


def join_a_room_now(observed: Observed, room: str) -> None:
    """A placement while Prometheus is scraping the leader: a rate panel shows what happened
    within its window, and a series whose first sample already counts the event shows none."""
    request = urllib.request.Request(
        f"{observed.operator_url()}/v1/namespaces/{ROOMS_NS}/rooms/{room}/join",
        data=json.dumps({"identity": "carol"}).encode(),
        headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=60) as reply:
        assert reply.status == 200


def test_every_dashboard_panel_returns_series_with_the_labels_it_shows(observed, traffic):
    prometheus = observed.prometheus
    wait_for(
        lambda: prometheus.query(f'switchboard_room_placements_total{{region="{REGION}"}}'),
        90,
        "the leader's placement counter for the Region to be scraped",
    )
    join_a_room_now(observed, "latecomer")
    sfus = {p["metadata"]["name"] for p in sfu_pods(observed.plane)}
    (operator_pod,) = _pods(observed.plane, NAMESPACE, OPERATOR_PODS)
    expected = {"region": {REGION}, "pod": sfus | {operator_pod["metadata"]["name"]}}
    checked = []
    for panel in dashboard.panels():
        if panel.needs:
            print(f"not proven here: {panel.title!r} needs {panel.needs}")
            continue
        for query in panel.queries:
            assert not dashboard.hides_missing_data(query.expr), query.expr
            labels = LEGEND_LABEL.findall(query.legend)

            last: list[list[dict]] = [[]]

            def answered(query=query, labels=labels, last=last) -> list[dict] | None:
                series = last[0] = prometheus.query(concrete(query.expr))
                numbers = [s for s in series if s["value"][1] not in ("NaN", "+Inf", "-Inf")]
                if not numbers or not all(all(s["metric"].get(k) for k in labels) for s in series):
                    return None
                return series

            try:
                series = wait_for(answered, 90, f"{panel.title}: {query.expr}")
            except AssertionError as error:
                raise AssertionError(f"{error}; Prometheus answered {last[0]}") from None
            for sample in series:
                for label in labels:
                    if label in expected:
                        assert sample["metric"][label] in expected[label], (query.expr, sample)
            checked.append((panel.title, query.expr, len(series)))
    for title, expr, count in checked:
        print(f"proven: {title}: {expr} -> {count} series")
    assert len({title for title, _, _ in checked}) == len(
        [p for p in dashboard.panels() if not p.needs]
    )


def _firing(prometheus: PrometheusProcess, name: str) -> list[dict]:
    return [
        a
        for a in prometheus.alerts()
        if a["labels"]["alertname"] == name and a["state"] == "firing"
    ]


def test_a_lost_sfu_pod_fires_the_failover_alert_and_it_resolves(observed, traffic):
    plane, prometheus = observed.plane, observed.prometheus
    assert not _firing(prometheus, "SwitchboardSfuFailover")
    victim = traffic["standup"]["pod"]
    plane.kubectl("delete", "pod", victim, "-n", MEDIA_NS, "--grace-period=0", "--force")
    alerts = wait_for(
        lambda: _firing(prometheus, "SwitchboardSfuFailover"), 120, "the failover alert to fire"
    )
    (alert,) = alerts
    assert alert["labels"]["region"] == REGION
    assert alert["labels"]["reason"] == "PodDeleted"
    assert alert["annotations"]["runbook_url"].endswith("runbooks.md#switchboardsfufailover")
    fired = time.monotonic()
    # No failover since: it resolves once the window (20 s here) has passed.
    wait_for(lambda: not _firing(prometheus, "SwitchboardSfuFailover"), 180, "the alert to resolve")
    print(f"failover alert firing for {time.monotonic() - fired:.0f}s, then resolved")
