"""What a platform team sets in the chart's values does what it says: names, images, pod
metadata, scheduling, disruption budget, CRD handling, and values.schema.json refusing what
it does not describe."""

from __future__ import annotations

import pytest
from chart_render import NAMESPACE, kinds, one, pod_spec, render

from switchboard_dev.chart_install import helm as run_helm
from switchboard_dev.helm import helm_binary
from switchboard_dev.paths import CHART_DIR
from switchboard_operator.config import OperatorConfig


@pytest.fixture(scope="module")
def helm():
    return str(helm_binary(build=True))


@pytest.fixture(scope="module")
def defaults(helm):
    return render(helm)


def test_every_object_carries_the_chart_label(defaults):
    for doc in defaults:
        labels = doc["metadata"].get("labels") or {}
        if doc["kind"] in ("ClusterRole", "Role"):
            continue  # applied verbatim by the test suite: no templating
        assert labels.get("helm.sh/chart") == "switchboard-0.1.0", doc["kind"]


def test_the_selector_includes_the_instance(defaults):
    selector = one(defaults, "Deployment")["spec"]["selector"]["matchLabels"]
    assert selector == {
        "app.kubernetes.io/name": "switchboard",
        "app.kubernetes.io/instance": "sb",
        "app.kubernetes.io/component": "operator",
    }
    # Joins and reports reach the leader; metrics are scraped from every replica.
    leader = one(defaults, "Service", "switchboard-operator")["spec"]["selector"]
    assert leader == {**selector, "switchboard.dev/leader": "true"}
    assert one(defaults, "Service", "switchboard-operator-metrics")["spec"]["selector"] == selector


def test_full_name_override_renames_the_operator_and_where_sfus_report(helm):
    docs = render(helm, "--set", "fullnameOverride=rtc-control")
    assert one(docs, "Deployment")["metadata"]["name"] == "rtc-control"
    assert one(docs, "Service", "rtc-control")["spec"]["ports"][0]["name"] == "http"
    assert one(docs, "Service", "rtc-control-metrics")["spec"]["clusterIP"] == "None"
    assert one(docs, "ServiceAccount")["metadata"]["name"] == "rtc-control"
    assert pod_spec(docs)["serviceAccountName"] == "rtc-control"
    for binding in ("switchboard-operator", "switchboard-operator-regions"):
        (subject,) = one(docs, "ClusterRoleBinding", binding)["subjects"]
        assert subject["name"] == "rtc-control"
    env = {e["name"]: e.get("value") for e in pod_spec(docs)["containers"][0]["env"]}
    config = OperatorConfig.from_env({k: v for k, v in env.items() if v is not None})
    assert (
        config.report_url == f"https://rtc-control-reports.{NAMESPACE}.svc:8444/v1/capacity/reports"
    )
    assert one(docs, "Service", "rtc-control-reports")["spec"]["ports"][0]["name"] == "reports"


def test_name_override_renames_objects_and_the_name_label(helm):
    docs = render(helm, "--set", "nameOverride=rtc")
    deployment = one(docs, "Deployment")
    assert deployment["metadata"]["name"] == "rtc-operator"
    assert deployment["metadata"]["labels"]["app.kubernetes.io/name"] == "rtc"


def test_pull_secrets_pod_metadata_and_priority_class(helm):
    docs = render(
        helm,
        "--set",
        "imagePullSecrets[0].name=regcred",
        "--set",
        "podAnnotations.team=rtc",
        "--set",
        "podLabels.cost-centre=media",
        "--set",
        "priorityClassName=platform-critical",
    )
    template = one(docs, "Deployment")["spec"]["template"]
    assert template["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    assert template["metadata"]["annotations"] == {"team": "rtc"}
    assert template["metadata"]["labels"]["cost-centre"] == "media"
    assert template["spec"]["priorityClassName"] == "platform-critical"


def test_replicas_spread_over_nodes_and_keep_a_standby_through_drains(defaults, helm):
    affinity = pod_spec(defaults)["affinity"]["podAntiAffinity"]
    (term,) = affinity["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    pdb = one(defaults, "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"] == one(defaults, "Deployment")["spec"]["selector"]
    # One replica: a budget would block every drain.
    assert "PodDisruptionBudget" not in kinds(render(helm, "--set", "replicas=1"))


def test_crds_install_and_keep(defaults, helm):
    crds = [d for d in defaults if d["kind"] == "CustomResourceDefinition"]
    assert sorted(c["metadata"]["name"] for c in crds) == [
        "regions.switchboard.dev",
        "rooms.switchboard.dev",
    ]
    assert all(c["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep" for c in crds)
    dropped = render(helm, "--set", "crds.keep=false")
    assert all(
        "helm.sh/resource-policy" not in (d["metadata"].get("annotations") or {})
        for d in dropped
        if d["kind"] == "CustomResourceDefinition"
    )
    assert "CustomResourceDefinition" not in kinds(render(helm, "--set", "crds.install=false"))


def helm_install(cluster, *args: str, check: bool = False):
    """`helm install` against the local cluster (with --dry-run, nothing stays)."""
    install = ["install", "sb", str(CHART_DIR), "-n", NAMESPACE, *args]
    return run_helm(cluster.kubeconfig, *install, check=check)


@pytest.mark.cluster
def test_notes_say_how_to_join_make_a_key_and_which_ports_to_open(control_plane):
    # The suite's cluster may hold the CRDs and the operator's RBAC, applied without helm by
    # other tests: a dry run that would adopt them (it changes nothing).
    out = helm_install(control_plane, "--dry-run=server", "--take-ownership", check=True).stdout
    notes = out[out.index("NOTES:") :]
    assert f"http://switchboard-operator.{NAMESPACE}.svc:8080" in notes
    assert "switchboard.dev/api-key=true" in notes
    assert "kind: Region" in notes and "kind: Room" in notes
    assert "TCP 7880" in notes and "UDP and TCP 3478" in notes


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "replicas=two"], "at '/replicas': got string, want integer"),
        (["--set", "replica=2"], "additional properties 'replica' not allowed"),
        (["--set", "monitoring.rules.unschedulableFor=five"], "/monitoring/rules/unschedulableFor"),
        (["--set", "image.digest.sfu=latest"], "/image/digest/sfu"),
        (["--set", "image.digests.sfu=sha256:0"], "additional properties 'digests' not allowed"),
    ],
    ids=["wrong-type", "unknown-key", "bad-duration", "bad-digest", "unknown-image-key"],
)
@pytest.mark.cluster
def test_helm_install_refuses_values_the_schema_does_not_describe(control_plane, args, message):
    result = helm_install(control_plane, *args)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert message in result.stderr
