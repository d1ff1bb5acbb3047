"""What the manifest builders produce, put to the real API server: every object is admitted
in a namespace that enforces the `restricted` Pod Security profile, and reads back without
drift (so an idle reconcile has nothing to write)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from switchboard_api import labels
from switchboard_api.region import MediaExposure, Region
from switchboard_operator.logic.drift import drifted_paths
from switchboard_operator.logic.manifests import (
    OperatorContext,
    desired_objects,
    sfu_pod,
    turn_deployment,
    turn_uris,
)
from switchboard_turn.coturn import TurnSecrets

pytestmark = pytest.mark.cluster

REPORT_URL = "http://switchboard.switchboard-system.svc:8080/v1/capacity/reports"
SECRETS = TurnSecrets(minted="admission-test-secret-0123456789")


def _json(manifests: list[dict[str, Any]]) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": manifests})


def _as_pod(region: Region, template: dict[str, Any], name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": region.spec.namespace,
            "labels": template["metadata"]["labels"],
        },
        "spec": template["spec"],
    }


@pytest.fixture(scope="module")
def restricted_region(crds_installed) -> Iterator[tuple[Any, Region]]:
    """A real Region (so ownerReferences name a live owner) whose workloads go to a
    namespace enforcing `restricted`, as the API server returns it (defaults applied)."""
    cluster = crds_installed
    suffix = uuid.uuid4().hex[:6]
    namespace = cluster.create_namespace(
        f"media-{suffix}",
        {
            labels.POD_SECURITY_ENFORCE: "restricted",
            "pod-security.kubernetes.io/enforce-version": "latest",
            "pod-security.kubernetes.io/warn": "restricted",
        },
    )
    body = {
        "apiVersion": "switchboard.dev/v1alpha1",
        "kind": "Region",
        "metadata": {"name": f"admission-{suffix}"},
        "spec": {
            "namespace": namespace,
            "location": {"latitude": 53.35, "longitude": -6.26},
            "sfu": {
                "image": "switchboard/sfu:test",
                "resources": {
                    "requests": {"cpu": "250m", "memory": "128Mi"},
                    "limits": {"cpu": "1", "memory": "512Mi"},
                },
                "publicURLTemplate": "wss://{pod}.{region}.media.example.com",
            },
            "turn": {
                "tlsSecretName": "turn-cert",
                "allowedPeerCIDRs": ["10.244.0.0/16"],
                "prometheusExporter": True,
            },
        },
    }
    cluster.kubectl("create", "-f", "-", input=json.dumps(body))
    created = cluster.kubectl("get", "region", body["metadata"]["name"], "-o", "json")
    region = Region.model_validate(json.loads(created.stdout))
    try:
        yield cluster, region
    finally:
        cluster.kubectl("delete", "region", region.metadata.name, "--wait=false", check=False)
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


@pytest.fixture(scope="module")
def ctx() -> OperatorContext:
    return OperatorContext(
        report_url=REPORT_URL,
        control_plane_namespace="switchboard-system",
        default_sfu_image="switchboard/sfu:0.1.0",
        turn_image="switchboard/turn:0.1.0",
        # Admission is what is checked here, exporter included.
        turn_image_prometheus=True,
    )


@pytest.fixture(scope="module")
def applied(restricted_region, ctx) -> tuple[Any, Region, list[dict[str, Any]], str]:
    """Every desired object, applied for real (server-side, as the operator would)."""
    cluster, region = restricted_region
    objects = desired_objects(region, ctx, turn_secrets=SECRETS)
    result = cluster.kubectl(
        "apply", "--server-side", "--field-manager=manifest-admission-test", "-f", "-",
        input=_json(objects),
    )  # fmt: skip
    return cluster, region, objects, result.stderr


def test_every_object_is_admitted_without_pod_security_warnings(applied):
    cluster, region, objects, stderr = applied
    assert "PodSecurity" not in stderr, stderr
    listed = cluster.kubectl(
        "get", "serviceaccounts,secrets,services,deployments,poddisruptionbudgets,"
        "networkpolicies", "-n", region.spec.namespace,
        "-l", f"{labels.REGION}={region.metadata.name}", "-o", "name",
    )  # fmt: skip
    expected = {f"{o['kind'].lower()}/{o['metadata']['name']}" for o in objects}
    # `kubectl get -o name` prints <resource>[.<group>]/<name>.
    found = {
        f"{resource.split('.')[0]}/{name}"
        for resource, name in (line.split("/", 1) for line in listed.stdout.split())
    }
    assert expected <= found


def test_objects_read_back_without_drift(applied):
    """The API server's defaulting and normalising leave every desired field as built."""
    cluster, region, objects, _ = applied
    for desired in objects:
        observed = cluster.kubectl(
            "get", desired["kind"], desired["metadata"]["name"],
            "-n", region.spec.namespace, "-o", "json",
        )  # fmt: skip
        assert drifted_paths(desired, json.loads(observed.stdout)) == [], desired["kind"]


def test_the_owner_is_the_live_region(applied):
    cluster, region, objects, _ = applied
    secret = next(o for o in objects if o["kind"] == "Secret")
    observed = json.loads(
        cluster.kubectl(
            "get", "secret", secret["metadata"]["name"], "-n", region.spec.namespace, "-o", "json"
        ).stdout
    )
    (owner,) = observed["metadata"]["ownerReferences"]
    assert owner["uid"] == region.metadata.uid


def _dry_run_create(cluster: Any, manifest: dict[str, Any]):
    return cluster.kubectl(
        "create", "--dry-run=server", "-o", "name", "-f", "-",
        input=json.dumps(manifest), check=False,
    )  # fmt: skip


def test_restricted_admits_an_sfu_pod(applied, ctx):
    cluster, region, _, _ = applied
    pod = sfu_pod(region, ctx, "a1b2c", turn_uris=turn_uris(region, "turn.example.com"))
    result = _dry_run_create(cluster, pod)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"pod/{pod['metadata']['name']}"


def test_restricted_admits_the_coturn_pod(applied, ctx):
    cluster, region, _, _ = applied
    template = turn_deployment(region, ctx)["spec"]["template"]
    result = _dry_run_create(cluster, _as_pod(region, template, f"{region.metadata.name}-turn-x"))
    assert result.returncode == 0, result.stderr


def test_restricted_admits_coturn_on_port_443(applied, ctx):
    """Binding below 1024 takes the namespaced sysctl, which `restricted` allows."""
    cluster, region, _, _ = applied
    low = region.model_copy(deep=True)
    low.spec.turn.tls_port = 443
    template = turn_deployment(low, ctx)["spec"]["template"]
    assert template["spec"]["securityContext"]["sysctls"]
    result = _dry_run_create(cluster, _as_pod(low, template, f"{region.metadata.name}-turn-443"))
    assert result.returncode == 0, result.stderr


def test_host_network_sfu_pods_need_a_privileged_namespace(applied, ctx):
    cluster, region, _, _ = applied
    host = region.model_copy(deep=True)
    host.spec.sfu.media_exposure = MediaExposure.HOST_NETWORK
    result = _dry_run_create(cluster, sfu_pod(host, ctx, "h0st1"))
    assert result.returncode != 0
    assert "hostNetwork" in result.stderr
