"""The chart keeps the operator's public and internal listeners apart (finding 3): the
join API's Service exposes the public port alone, SFU pods report to a Service and port
of their own over HTTPS, and the NetworkPolicy admits only SFU pods to that port."""

from __future__ import annotations

import pytest
from chart_render import NAMESPACE, kinds, one, pod_spec, render

from switchboard_dev.helm import helm_binary
from switchboard_operator.config import OperatorConfig

SFU_PODS = {
    "namespaceSelector": {},
    "podSelector": {
        "matchLabels": {
            "app.kubernetes.io/part-of": "switchboard",
            "app.kubernetes.io/component": "sfu",
        }
    },
}


@pytest.fixture(scope="module")
def helm():
    return str(helm_binary(build=True))


@pytest.fixture(scope="module")
def defaults(helm):
    return render(helm)


def container_ports(docs: list[dict]) -> dict[str, int]:
    (container,) = pod_spec(docs)["containers"]
    return {p["name"]: p["containerPort"] for p in container["ports"]}


def operator_config(docs: list[dict]) -> OperatorConfig:
    (container,) = pod_spec(docs)["containers"]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    return OperatorConfig.from_env(env)


def test_the_join_api_service_exposes_the_public_port_alone(defaults):
    public = one(defaults, "Service", "switchboard-operator")
    assert [(p["port"], p["targetPort"]) for p in public["spec"]["ports"]] == [(8080, "http")]
    config = operator_config(defaults)
    assert container_ports(defaults)["http"] == config.listen_port == 8080


def test_sfu_pods_report_over_https_to_a_service_and_port_of_their_own(defaults):
    reports = one(defaults, "Service", "switchboard-operator-reports")
    assert [(p["port"], p["targetPort"]) for p in reports["spec"]["ports"]] == [(8444, "reports")]
    # The leader's receiver, as for joins.
    assert reports["spec"]["selector"]["switchboard.dev/leader"] == "true"
    config = operator_config(defaults)
    assert container_ports(defaults)["reports"] == config.report_port == 8444
    assert config.report_url == (
        f"https://switchboard-operator-reports.{NAMESPACE}.svc:8444/v1/capacity/reports"
    )
    # The operator writes the serving certificate where its read-only root can take it.
    volumes = {v["name"]: v for v in pod_spec(defaults)["volumes"]}
    assert volumes["tmp"]["emptyDir"]["medium"] == "Memory"


def test_only_sfu_pods_may_reach_the_report_port(defaults):
    policy = one(defaults, "NetworkPolicy")
    selector = one(defaults, "Deployment")["spec"]["selector"]["matchLabels"]
    assert policy["spec"]["podSelector"]["matchLabels"] == selector
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    open_to_all = [r for r in policy["spec"]["ingress"] if "from" not in r]
    open_ports = {p["port"] for rule in open_to_all for p in rule["ports"]}
    assert open_ports == {"http", "metrics", "health"}
    (report_rule,) = [r for r in policy["spec"]["ingress"] if "from" in r]
    assert report_rule["ports"] == [{"protocol": "TCP", "port": "reports"}]
    assert report_rule["from"] == [SFU_PODS]


def test_more_report_sources_and_no_policy_are_choices(helm):
    cidr = "10.0.0.0/16"
    docs = render(helm, "--set", f"networkPolicy.extraReportPeers[0].ipBlock.cidr={cidr}")
    (report_rule,) = [r for r in one(docs, "NetworkPolicy")["spec"]["ingress"] if "from" in r]
    assert report_rule["from"] == [SFU_PODS, {"ipBlock": {"cidr": cidr}}]
    assert "NetworkPolicy" not in kinds(render(helm, "--set", "networkPolicy.enabled=false"))
