"""A real Prometheus beside the local control plane, configured from the chart.

Debian's `prometheus` 2.42 is built without Kubernetes service discovery, so the server is
the same release built from the pinned Go module (`tools/prometheus`, into the per-version
cache, like the control plane and helm); Debian's `promtool` checks and unit-tests the rules.

Its scrape configuration is generated from the ServiceMonitors and PodMonitors the chart
renders, the way the Prometheus Operator generates it (`kubernetes_sd_configs` against the
API server, keep rules from the monitors' selectors and port names, the standard target
labels, then the monitors' own relabelings), so what the tests scrape is what a cluster with
the Prometheus Operator scrapes. Discovery runs under its own client certificate, bound to a
ClusterRole that can only get, list and watch pods, services and endpoints. Its rules are
the chart's PrometheusRule.
"""

from __future__ import annotations

import json
import re
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import yaml

from switchboard_dev.gotools import cached
from switchboard_localcluster.controlplane import free_port
from switchboard_localcluster.processes import Supervised, wait_until

PROMETHEUS_USER = "switchboard:prometheus"
"""The client-certificate user Prometheus discovers targets as (and nothing else)."""
DISCOVERY_ROLE: dict[str, Any] = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "ClusterRole",
    "metadata": {"name": "switchboard-local-prometheus"},
    "rules": [
        {
            "apiGroups": [""],
            "resources": ["pods", "services", "endpoints"],
            "verbs": ["get", "list", "watch"],
        },
        {
            "apiGroups": ["discovery.k8s.io"],
            "resources": ["endpointslices"],
            "verbs": ["get", "list", "watch"],
        },
    ],
}
MONITOR_KINDS = ("ServiceMonitor", "PodMonitor")
MODULE = "github.com/prometheus/prometheus"


def prometheus_binary(build: bool = True) -> Path:
    """The pinned Prometheus server (built once per pin from `tools/prometheus`)."""
    return cached("prometheus", MODULE, "build.sh", run=build) / "prometheus"


class Cluster(Protocol):
    def kubectl(self, *args: str, check: bool = True, input: str | None = None) -> Any: ...

    def issue_kubeconfig(self, user: str, groups: tuple[str, ...] = ()) -> Path: ...


def _label(name: str) -> str:
    """A Kubernetes label key as Prometheus' discovery meta label suffix."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def _selector_keeps(prefix: str, match_labels: Mapping[str, str]) -> list[dict[str, Any]]:
    return [
        {
            "action": "keep",
            "source_labels": [f"{prefix}_label_{_label(k)}", f"{prefix}_labelpresent_{_label(k)}"],
            "regex": f"({re.escape(v)});true",
        }
        for k, v in sorted(match_labels.items())
    ]


def _relabelings(items: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A monitor's relabelings (camelCase) as Prometheus relabel_configs."""
    names = {"sourceLabels": "source_labels", "targetLabel": "target_label"}
    return [{names.get(k, k.lower()): v for k, v in item.items()} for item in items]


def _sd(role: str, monitor: Mapping[str, Any], kubeconfig: Path) -> dict[str, Any]:
    sd: dict[str, Any] = {"role": role, "kubeconfig_file": str(kubeconfig)}
    selector = monitor["spec"].get("namespaceSelector") or {}
    if not selector.get("any"):
        names = selector.get("matchNames") or [monitor["metadata"]["namespace"]]
        sd["namespaces"] = {"names": list(names)}
    return sd


def scrape_configs(monitors: Iterable[Mapping[str, Any]], kubeconfig: Path) -> list[dict]:
    """Prometheus scrape configs for ServiceMonitors and PodMonitors (matchLabels selectors,
    endpoints by port name), as the Prometheus Operator generates them."""
    configs = []
    for monitor in monitors:
        kind = monitor["kind"]
        namespace, name = monitor["metadata"]["namespace"], monitor["metadata"]["name"]
        spec = monitor["spec"]
        match = (spec.get("selector") or {}).get("matchLabels") or {}
        if kind == "PodMonitor":
            endpoints, role, prefix = spec["podMetricsEndpoints"], "pod", "__meta_kubernetes_pod"
            port_label = "__meta_kubernetes_pod_container_port_name"
        elif kind == "ServiceMonitor":
            endpoints, role, prefix = spec["endpoints"], "endpoints", "__meta_kubernetes_service"
            port_label = "__meta_kubernetes_endpoint_port_name"
        else:
            continue
        for index, endpoint in enumerate(endpoints):
            relabel = [
                *_selector_keeps(prefix, match),
                {"action": "keep", "source_labels": [port_label], "regex": endpoint["port"]},
            ]
            if kind == "PodMonitor":
                relabel.append(
                    {
                        "action": "drop",
                        "source_labels": ["__meta_kubernetes_pod_phase"],
                        "regex": "(Failed|Succeeded)",
                    }
                )
            relabel += [
                {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
                {
                    "source_labels": ["__meta_kubernetes_pod_container_name"],
                    "target_label": "container",
                },
                {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
            ]
            if kind == "ServiceMonitor":
                relabel.append(
                    {"source_labels": ["__meta_kubernetes_service_name"], "target_label": "service"}
                )
                relabel.append(
                    {"source_labels": ["__meta_kubernetes_service_name"], "target_label": "job"}
                )
            else:
                relabel.append({"target_label": "job", "replacement": f"{namespace}/{name}"})
            relabel.append({"target_label": "endpoint", "replacement": endpoint["port"]})
            relabel += _relabelings(endpoint.get("relabelings") or ())
            config = {
                "job_name": f"{kind[0].lower()}{kind[1:]}/{namespace}/{name}/{index}",
                "kubernetes_sd_configs": [_sd(role, monitor, kubeconfig)],
                "metrics_path": endpoint.get("path", "/metrics"),
                "relabel_configs": relabel,
            }
            if endpoint.get("interval"):
                config["scrape_interval"] = endpoint["interval"]
            configs.append(config)
    return configs


def rule_groups(docs: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The groups of every PrometheusRule among `docs`, as a Prometheus rules file."""
    groups = [g for d in docs if d["kind"] == "PrometheusRule" for g in d["spec"]["groups"]]
    return {"groups": groups}


def grant_discovery(cluster: Cluster) -> Path:
    """Bind the discovery ClusterRole to Prometheus' user; its kubeconfig."""
    cluster.kubectl("apply", "-f", "-", input=json.dumps(DISCOVERY_ROLE))
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": DISCOVERY_ROLE["metadata"]["name"]},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": DISCOVERY_ROLE["metadata"]["name"],
        },
        "subjects": [
            {"kind": "User", "name": PROMETHEUS_USER, "apiGroup": "rbac.authorization.k8s.io"}
        ],
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(binding))
    return cluster.issue_kubeconfig(PROMETHEUS_USER)


class PrometheusProcess:
    """`prometheus` on a free loopback port with the generated configuration."""

    def __init__(
        self,
        workdir: Path,
        kubeconfig: Path,
        chart_docs: Sequence[Mapping[str, Any]],
        *,
        evaluation_interval: str = "15s",
        binary: Path | None = None,
    ) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        monitors = [d for d in chart_docs if d["kind"] in MONITOR_KINDS]
        self.config = {
            "global": {"scrape_interval": "15s", "evaluation_interval": evaluation_interval},
            "rule_files": ["rules.yaml"],
            "scrape_configs": scrape_configs(monitors, kubeconfig),
        }
        self.rules = rule_groups(chart_docs)
        executable = binary or prometheus_binary(build=False)
        if not executable.exists():
            raise FileNotFoundError(f"{executable} is missing: run tools/bootstrap.sh")
        self._process = Supervised(
            "prometheus",
            [
                str(executable),
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=6h",
                "--web.enable-lifecycle",
            ],
            workdir / "prometheus.log",
        )

    def start(self, timeout: float = 60.0) -> PrometheusProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "prometheus.yml").write_text(yaml.safe_dump(self.config, sort_keys=False))
        (self.workdir / "rules.yaml").write_text(yaml.safe_dump(self.rules, sort_keys=False))
        self._process.start()
        wait_until(
            lambda: self._process.check_running() or self._ready(), timeout, "Prometheus ready"
        )
        return self

    def stop(self) -> None:
        self._process.stop()

    def log_tail(self, lines: int = 40) -> str:
        return self._process.log_tail(lines)

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def _get(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=30) as response:
            body = json.loads(response.read())
        if body.get("status") != "success":
            raise RuntimeError(f"Prometheus {path} failed: {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result: [{"metric": {labels}, "value": [time, "value"]}]."""
        data = self._get("/api/v1/query", query=expr)
        if data["resultType"] != "vector":
            raise RuntimeError(f"{expr!r} gave a {data['resultType']}, not a vector")
        return list(data["result"])

    def targets(self) -> list[dict[str, Any]]:
        return list(self._get("/api/v1/targets", state="active")["activeTargets"])

    def alerts(self) -> list[dict[str, Any]]:
        return list(self._get("/api/v1/alerts")["alerts"])
