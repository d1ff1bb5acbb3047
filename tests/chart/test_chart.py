"""The Helm chart lints, renders, and what it renders is accepted by a real API server."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from switchboard_dev.helm import helm_binary
from switchboard_dev.paths import CHART_DIR, OPERATOR_CLUSTER_ROLE

NAMESPACE = "chart-install-check"


@pytest.fixture(scope="module")
def helm():
    return str(helm_binary(build=True))


@pytest.fixture(scope="module")
def rendered(helm):
    out = subprocess.run(
        [helm, "template", "sb", str(CHART_DIR), "--namespace", NAMESPACE, "--include-crds"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def test_chart_lints(helm):
    result = subprocess.run(
        [helm, "lint", "--strict", str(CHART_DIR)], check=False, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_chart_renders_crds_rbac_and_operator(rendered):
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in rendered)
    assert ("CustomResourceDefinition", "regions.switchboard.dev") in kinds
    assert ("CustomResourceDefinition", "rooms.switchboard.dev") in kinds
    assert ("Deployment", "switchboard-operator") in kinds
    role = next(d for d in rendered if d["kind"] == "ClusterRole")
    # The test suite runs the operator under this very role.
    assert role == yaml.safe_load(OPERATOR_CLUSTER_ROLE.read_text())


@pytest.mark.cluster
def test_rendered_chart_is_admitted_under_restricted_pod_security(rendered, control_plane):
    control_plane.create_namespace(NAMESPACE, {"pod-security.kubernetes.io/enforce": "restricted"})
    crds = [d for d in rendered if d["kind"] == "CustomResourceDefinition"]
    rest = [d for d in rendered if d["kind"] != "CustomResourceDefinition"]
    for docs in (crds, rest):
        result = control_plane.kubectl(
            "apply",
            "--dry-run=server",
            "-f",
            "-",
            input=yaml.safe_dump_all(docs),
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert "would violate PodSecurity" not in result.stderr, result.stderr
