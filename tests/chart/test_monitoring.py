"""The chart's monitoring: ServiceMonitor and PodMonitors that select what Switchboard runs
(and are accepted by the Prometheus Operator's own CRDs), alerting rules that promtool checks
and unit-tests, and the dashboard generated as code and shipped as a ConfigMap."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from chart_render import kinds, one, render

from fixtures.waiting import wait_for
from switchboard_api import ports
from switchboard_api.region import Region
from switchboard_dev import dashboard
from switchboard_dev.helm import helm_binary
from switchboard_dev.monitoring_crds import crd_files
from switchboard_operator.logic.manifests.meta import Component, object_labels

HERE = Path(__file__).parent
MONITORING = [
    "--set",
    "monitoring.serviceMonitor.enabled=true",
    "--set",
    "monitoring.podMonitors.enabled=true",
    "--set",
    "monitoring.rules.enabled=true",
    "--set",
    "monitoring.dashboard.enabled=true",
]


def sample_region() -> Region:
    return Region.model_validate(
        {
            "apiVersion": "switchboard.dev/v1alpha1",
            "kind": "Region",
            "metadata": {"name": "eu-west", "uid": "6f1c2a9e-0d4b-4a57-9a43-0e8b7f0d2c11"},
            "spec": {"namespace": "media-eu", "location": {"latitude": 53.3, "longitude": -6.3}},
        }
    )


@pytest.fixture(scope="module")
def helm():
    return str(helm_binary(build=True))


@pytest.fixture(scope="module")
def monitored(helm):
    return render(helm, *MONITORING)


def test_monitoring_objects_are_off_by_default(helm):
    found = set(kinds(render(helm)))
    assert not found & {"ServiceMonitor", "PodMonitor", "PrometheusRule", "ConfigMap"}


def test_the_service_monitor_scrapes_every_operator_replica_on_the_metrics_port(monitored):
    monitor = one(monitored, "ServiceMonitor")
    service = one(monitored, "Service", "switchboard-operator-metrics")
    selects = monitor["spec"]["selector"]["matchLabels"].items()
    assert selects <= service["metadata"]["labels"].items()
    # Not the leader's Service: a standby must be scraped too.
    assert (
        not selects
        <= one(monitored, "Service", "switchboard-operator")["metadata"]["labels"].items()
    )
    deployment = one(monitored, "Deployment")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["clusterIP"] == "None"
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == ports.METRICS_PORT_NAME
    metrics = next(p for p in service["spec"]["ports"] if p["name"] == ports.METRICS_PORT_NAME)
    assert metrics["port"] == ports.OPERATOR_INTERNAL_PORT
    container = one(monitored, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "metrics", "containerPort": ports.OPERATOR_INTERNAL_PORT} in container["ports"]


@pytest.mark.parametrize("component", [Component.SFU, Component.TURN])
def test_pod_monitors_select_the_pods_the_operator_builds(monitored, component):
    monitor = one(monitored, "PodMonitor", f"switchboard-{component.value}")
    pod_labels = object_labels(sample_region(), component)
    assert monitor["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert monitor["spec"]["namespaceSelector"] == {"any": True}
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == ports.METRICS_PORT_NAME
    targets = {r["targetLabel"]: r["sourceLabels"] for r in endpoint["relabelings"]}
    assert targets == {
        "region": ["__meta_kubernetes_pod_label_switchboard_dev_region"],
        "pod": ["__meta_kubernetes_pod_name"],
    }


def test_the_committed_dashboard_is_what_the_code_builds():
    assert dashboard.DASHBOARD_FILE.read_text() == dashboard.render(), (
        "the dashboard JSON is stale; run `python -m switchboard_dev.dashboard`"
    )


def test_the_dashboard_config_map_carries_the_dashboard_and_the_sidecar_label(monitored, helm):
    config_map = one(monitored, "ConfigMap", "switchboard-dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = json.loads(config_map["data"]["switchboard.json"])
    assert shipped == json.loads(dashboard.DASHBOARD_FILE.read_text())
    moved = render(helm, *MONITORING, "--set", "monitoring.dashboard.namespace=grafana")
    assert one(moved, "ConfigMap")["metadata"]["namespace"] == "grafana"


def test_no_panel_hides_missing_data_behind_a_constant():
    queries = [q.expr for panel in dashboard.panels() for q in panel.queries]
    assert queries
    assert not [q for q in queries if dashboard.hides_missing_data(q)]
    for fallback in ("sum(x) or vector(0)", "x or on() vector(0)", "vector(1)", "absent(x)"):
        assert dashboard.hides_missing_data(fallback), fallback


@pytest.fixture(scope="module")
def rules_dir(monitored, tmp_path_factory) -> Path:
    """The rendered PrometheusRule's groups as a rules file, beside the promtool tests."""
    directory = tmp_path_factory.mktemp("rules")
    rule = one(monitored, "PrometheusRule")
    (directory / "rules.yaml").write_text(yaml.safe_dump(rule["spec"]))
    shutil.copy(HERE / "alerts.test.yaml", directory)
    return directory


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], cwd=cwd, check=False, capture_output=True, text=True)


def test_promtool_checks_the_rules(rules_dir):
    result = promtool("check", "rules", "rules.yaml", cwd=rules_dir)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_every_alert(rules_dir):
    result = promtool("test", "rules", "alerts.test.yaml", cwd=rules_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    alerts = {
        r["alert"]
        for g in yaml.safe_load((rules_dir / "rules.yaml").read_text())["groups"]
        for r in g["rules"]
    }
    tested = set(re.findall(r"alertname: (\w+)", (rules_dir / "alerts.test.yaml").read_text()))
    assert alerts == tested


def test_every_alert_links_its_runbook(rules_dir):
    runbooks = (Path(dashboard.__file__).parents[2] / "docs" / "runbooks.md").read_text()
    headings = {h.strip().lower() for h in re.findall(r"^## (\w+)", runbooks, re.MULTILINE)}
    for group in yaml.safe_load((rules_dir / "rules.yaml").read_text())["groups"]:
        for rule in group["rules"]:
            url = rule["annotations"]["runbook_url"]
            assert url.endswith(f"/docs/runbooks.md#{rule['alert'].lower()}")
            assert rule["alert"].lower() in headings


@pytest.mark.cluster
def test_monitors_and_rules_are_accepted_by_the_prometheus_operator_crds(monitored, control_plane):
    for path in crd_files():
        control_plane.kubectl("apply", "--server-side", "-f", str(path))
    for name in ("servicemonitors", "podmonitors", "prometheusrules"):
        # Polled: `kubectl wait` fails while a new CRD has no conditions yet.
        wait_for(
            lambda name=name: _established(control_plane, f"{name}.monitoring.coreos.com"),
            60,
            f"the {name} CRD Established",
        )
    namespace = control_plane.create_namespace("chart-monitoring-check")
    objects = [
        {**d, "metadata": {**d["metadata"], "namespace": namespace}}
        for d in monitored
        if d["kind"] in ("ServiceMonitor", "PodMonitor", "PrometheusRule")
    ]
    assert len(objects) == 4
    result = control_plane.kubectl(
        "apply", "--server-side", "-f", "-", input=yaml.safe_dump_all(objects), check=False
    )
    assert result.returncode == 0, result.stderr
    for obj in objects:
        control_plane.kubectl(
            "delete", obj["kind"].lower(), obj["metadata"]["name"], "-n", namespace
        )


def _established(control_plane, crd: str) -> bool:
    jsonpath = "jsonpath={.status.conditions[?(@.type=='Established')].status}"
    return bool(control_plane.kubectl("get", "crd", crd, "-o", jsonpath).stdout == "True")
