"""A Region becomes its workloads, reports what stops it, and is kept in shape (no node agent).

Each test has a Region and a namespace of its own, removed when it ends, pass or fail."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from fixtures.cluster import Cluster, get_json
from fixtures.cluster import condition as condition_of
from fixtures.waiting import wait_for
from switchboard_dev.operator_process import OPERATOR_USER

pytestmark = pytest.mark.cluster


@dataclass(frozen=True)
class RegionUnderTest:
    cluster: Cluster
    name: str
    namespace: str

    @property
    def selector(self) -> str:
        return f"switchboard.dev/region={self.name}"

    def manifest(self, **sfu) -> dict:
        return {
            "apiVersion": "switchboard.dev/v1alpha1",
            "kind": "Region",
            "metadata": {"name": self.name},
            "spec": {
                "namespace": self.namespace,
                "location": {"latitude": 52.37, "longitude": 4.9},
                "sfu": {"minReplicas": 2, "maxReplicas": 4, **sfu},
                "turn": {"enabled": True, "replicas": 1, "allowedPeerCIDRs": ["127.0.0.0/8"]},
            },
        }

    def apply(self, **sfu) -> None:
        self.cluster.kubectl("apply", "-f", "-", input=json.dumps(self.manifest(**sfu)))

    def create_namespace(self) -> None:
        self.cluster.create_namespace(
            self.namespace, {"pod-security.kubernetes.io/enforce": "restricted"}
        )

    def condition(self, type_: str) -> dict:
        return condition_of(get_json(self.cluster, "region", self.name), type_)

    def names(self, kind: str) -> set[str]:
        items = get_json(self.cluster, kind, "-n", self.namespace, "-l", self.selector)["items"]
        return {i["metadata"]["name"] for i in items if not i["metadata"].get("deletionTimestamp")}

    def sfu_pods(self) -> set[str]:
        return {n for n in self.names("pods") if "-sfu-" in n}


@pytest.fixture
def region(operator, crds_installed) -> Iterator[RegionUnderTest]:
    """A Region of this test's own (not applied yet), and its namespace's name."""
    suffix = uuid.uuid4().hex[:6]
    under_test = RegionUnderTest(crds_installed, f"reconcile-{suffix}", f"reconcile-{suffix}")
    try:
        yield under_test
    finally:
        crds_installed.kubectl(
            "delete", "region", under_test.name, "--ignore-not-found", "--wait=false"
        )
        crds_installed.kubectl(
            "delete", "namespace", under_test.namespace, "--ignore-not-found", "--wait=false"
        )


@pytest.fixture
def region_with_namespace(region: RegionUnderTest) -> RegionUnderTest:
    region.create_namespace()
    region.apply()
    return region


def test_missing_namespace_degrades_then_recovers_without_restart(region):
    cluster = region.cluster
    region.apply()
    wait_for(
        lambda: region.condition("Degraded").get("reason") == "NamespaceMissing",
        30,
        "Degraded=NamespaceMissing",
    )
    assert region.condition("Degraded")["status"] == "True"
    assert region.namespace in region.condition("Degraded")["message"]
    assert region.condition("Ready")["status"] == "False"
    events = cluster.kubectl(
        "get",
        "events",
        "-A",
        "--field-selector",
        f"involvedObject.name={region.name},reason=NamespaceMissing",
    ).stdout
    assert "NamespaceMissing" in events

    region.create_namespace()
    wait_for(lambda: region.condition("Degraded").get("status") == "False", 60, "recovery")


def test_region_produces_its_workloads(region_with_namespace):
    region = region_with_namespace
    cluster = region.cluster
    wait_for(lambda: len(region.sfu_pods()) == 2, 60, "two SFU pods")
    assert {f"{region.name}-sfu", f"{region.name}-turn"} <= region.names("services")
    assert f"{region.name}-turn" in region.names("deployments")
    assert region.names("poddisruptionbudgets")
    assert region.names("networkpolicies")
    assert region.names("serviceaccounts")
    configmap = get_json(
        cluster, "configmap", "switchboard-join-public-keys", "-n", region.namespace
    )
    assert all(key.endswith(".pub") for key in configmap["data"])
    service = get_json(cluster, "service", f"{region.name}-sfu", "-n", region.namespace)
    owner = service["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("Region", region.name, True)
    # No node runs the pods here: the Region says so and keeps progressing.
    status = get_json(cluster, "region", region.name)["status"]
    assert status["sfu"]["desiredReplicas"] == 2
    assert region.condition("Ready")["status"] == "False"
    assert region.condition("Progressing")["status"] == "True"


def test_drift_is_repaired_from_watch_events(region_with_namespace):
    region = region_with_namespace
    cluster, namespace, turn = region.cluster, region.namespace, f"{region.name}-turn"
    audit = cluster.require_local("reads the audit log").audit_log
    wait_for(lambda: f"{region.name}-sfu" in region.names("services"), 60, "SFU service")
    wait_for(lambda: len(region.sfu_pods()) == 2, 60, "two SFU pods")
    mark = audit.mark()
    started = time.monotonic()
    cluster.kubectl("delete", "service", f"{region.name}-sfu", "-n", namespace)
    wait_for(lambda: f"{region.name}-sfu" in region.names("services"), 30, "service restored")
    print(f"deleted Service restored after {time.monotonic() - started:.2f}s (incl. kubectl)")

    deployment = get_json(cluster, "deployment", turn, "-n", namespace)
    containers = deployment["spec"]["template"]["spec"]["containers"]
    index = next(i for i, c in enumerate(containers) if c["name"] == "coturn")
    original = containers[index]["args"]
    started = time.monotonic()
    cluster.kubectl(
        "patch",
        "deployment",
        turn,
        "-n",
        namespace,
        "--type=json",
        "-p",
        json.dumps(
            [
                {
                    "op": "replace",
                    "path": f"/spec/template/spec/containers/{index}/args",
                    "value": ["--open-relay"],
                }
            ]
        ),
    )

    def coturn_args() -> list[str]:
        deployment = get_json(cluster, "deployment", turn, "-n", namespace)
        return deployment["spec"]["template"]["spec"]["containers"][index]["args"]

    wait_for(lambda: coturn_args() == original, 30, "coturn args restored")
    print(f"edited coturn args restored after {time.monotonic() - started:.2f}s (incl. kubectl)")

    victim = sorted(region.sfu_pods())[0]
    cluster.kubectl("delete", "pod", victim, "-n", namespace, "--wait=false")
    wait_for(
        lambda: victim not in region.names("pods") and len(region.sfu_pods()) == 2,
        30,
        "SFU pod replaced",
    )
    writes = audit.writes(since=mark, user=OPERATOR_USER)
    touched = {(w.resource, w.name) for w in writes if w.resource not in ("events", "leases")}
    assert ("services", f"{region.name}-sfu") in touched
    assert ("deployments", turn) in touched
    assert any(r == "pods" for r, _ in touched)
    # Nothing that was not disturbed was written (status aside).
    assert {r for r, _ in touched} <= {"services", "deployments", "pods", "regions"}


def test_scaling_the_spec_adds_pods_without_touching_existing_ones(region_with_namespace):
    region = region_with_namespace
    wait_for(lambda: len(region.sfu_pods()) == 2, 60, "2 pods")
    before = region.sfu_pods()
    region.apply(minReplicas=3)
    wait_for(lambda: len(region.sfu_pods()) == 3, 30, "3 pods")
    assert before <= region.sfu_pods()


def test_deleting_the_region_garbage_collects_everything(region_with_namespace):
    region = region_with_namespace
    wait_for(lambda: len(region.sfu_pods()) == 2, 60, "two SFU pods")
    wait_for(lambda: region.names("deployments"), 60, "the TURN deployment")
    region.cluster.kubectl("delete", "region", region.name, "--timeout=60s")
    wait_for(
        lambda: not (region.names("pods") | region.names("services") | region.names("deployments")),
        90,
        "garbage collection of the Region's objects",
    )
