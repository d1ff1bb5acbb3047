"""A Region becomes its workloads, reports what stops it, and is kept in shape (no node agent)."""

from __future__ import annotations

import json
import time

import pytest

from fixtures.cluster import get_json
from switchboard_dev.operator_process import OPERATOR_USER
from switchboard_localcluster.processes import wait_until

pytestmark = pytest.mark.cluster

REGION = "reconcile-eu"
NAMESPACE = "reconcile-media"
SELECTOR = f"switchboard.dev/region={REGION}"


def region_manifest(**sfu) -> dict:
    return {
        "apiVersion": "switchboard.dev/v1alpha1",
        "kind": "Region",
        "metadata": {"name": REGION},
        "spec": {
            "namespace": NAMESPACE,
            "location": {"latitude": 52.37, "longitude": 4.9},
            "sfu": {"minReplicas": 2, "maxReplicas": 4, **sfu},
            "turn": {"enabled": True, "replicas": 1, "allowedPeerCIDRs": ["127.0.0.0/8"]},
        },
    }


def condition(cluster, type_: str) -> dict:
    region = get_json(cluster, "region", REGION)
    conditions = (region.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == type_), {})


def names(cluster, kind: str) -> set[str]:
    items = get_json(cluster, kind, "-n", NAMESPACE, "-l", SELECTOR)["items"]
    return {i["metadata"]["name"] for i in items if not i["metadata"].get("deletionTimestamp")}


@pytest.fixture(scope="module")
def region(operator, crds_installed):
    cluster = crds_installed
    cluster.kubectl("apply", "-f", "-", input=json.dumps(region_manifest()))
    yield cluster
    cluster.kubectl("delete", "region", REGION, "--ignore-not-found", "--wait=false")


def test_missing_namespace_degrades_then_recovers_without_restart(region):
    cluster = region
    wait_until(
        lambda: condition(cluster, "Degraded").get("reason") == "NamespaceMissing",
        30,
        "Degraded=NamespaceMissing",
    )
    assert condition(cluster, "Degraded")["status"] == "True"
    assert NAMESPACE in condition(cluster, "Degraded")["message"]
    assert condition(cluster, "Ready")["status"] == "False"
    events = cluster.kubectl(
        "get",
        "events",
        "-A",
        "--field-selector",
        f"involvedObject.name={REGION},reason=NamespaceMissing",
    ).stdout
    assert "NamespaceMissing" in events

    cluster.create_namespace(NAMESPACE, {"pod-security.kubernetes.io/enforce": "restricted"})
    wait_until(lambda: condition(cluster, "Degraded").get("status") == "False", 60, "recovery")


def test_region_produces_its_workloads(region):
    cluster = region
    wait_until(
        lambda: (
            len(
                names(cluster, "pods").intersection(
                    n for n in names(cluster, "pods") if "-sfu-" in n
                )
            )
            == 2
        ),
        60,
        "two SFU pods",
    )
    assert {f"{REGION}-sfu", f"{REGION}-turn"} <= names(cluster, "services")
    assert f"{REGION}-turn" in names(cluster, "deployments")
    assert names(cluster, "poddisruptionbudgets")
    assert names(cluster, "networkpolicies")
    assert names(cluster, "serviceaccounts")
    configmap = get_json(cluster, "configmap", "switchboard-join-public-keys", "-n", NAMESPACE)
    assert all(key.endswith(".pub") for key in configmap["data"])
    owner = get_json(cluster, "service", f"{REGION}-sfu", "-n", NAMESPACE)["metadata"][
        "ownerReferences"
    ][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("Region", REGION, True)
    # No node runs the pods here: the Region says so and keeps progressing.
    status = get_json(cluster, "region", REGION)["status"]
    assert status["sfu"]["desiredReplicas"] == 2
    assert condition(cluster, "Ready")["status"] == "False"
    assert condition(cluster, "Progressing")["status"] == "True"


def test_drift_is_repaired_from_watch_events(region):
    cluster = region
    audit = cluster.require_local("reads the audit log").audit_log
    wait_until(lambda: f"{REGION}-sfu" in names(cluster, "services"), 60, "SFU service")
    mark = audit.mark()
    started = time.monotonic()
    cluster.kubectl("delete", "service", f"{REGION}-sfu", "-n", NAMESPACE)
    wait_until(lambda: f"{REGION}-sfu" in names(cluster, "services"), 30, "service restored")
    print(f"deleted Service restored after {time.monotonic() - started:.2f}s (incl. kubectl)")

    deployment = get_json(cluster, "deployment", f"{REGION}-turn", "-n", NAMESPACE)
    containers = deployment["spec"]["template"]["spec"]["containers"]
    index = next(i for i, c in enumerate(containers) if c["name"] == "coturn")
    original = containers[index]["args"]
    started = time.monotonic()
    cluster.kubectl(
        "patch",
        "deployment",
        f"{REGION}-turn",
        "-n",
        NAMESPACE,
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
    wait_until(
        lambda: (
            get_json(cluster, "deployment", f"{REGION}-turn", "-n", NAMESPACE)["spec"]["template"][
                "spec"
            ]["containers"][index]["args"]
            == original
        ),
        30,
        "coturn args restored",
    )
    print(f"edited coturn args restored after {time.monotonic() - started:.2f}s (incl. kubectl)")

    victim = sorted(n for n in names(cluster, "pods") if "-sfu-" in n)[0]
    cluster.kubectl("delete", "pod", victim, "-n", NAMESPACE, "--wait=false")
    wait_until(
        lambda: (
            victim not in names(cluster, "pods")
            and len([n for n in names(cluster, "pods") if "-sfu-" in n]) == 2
        ),
        30,
        "SFU pod replaced",
    )
    writes = audit.writes(since=mark, user=OPERATOR_USER)
    touched = {(w.resource, w.name) for w in writes if w.resource not in ("events", "leases")}
    assert ("services", f"{REGION}-sfu") in touched
    assert ("deployments", f"{REGION}-turn") in touched
    assert any(r == "pods" for r, _ in touched)
    # Nothing that was not disturbed was written (status aside).
    assert {r for r, _ in touched} <= {"services", "deployments", "pods", "regions"}


def test_scaling_the_spec_adds_pods_without_touching_existing_ones(region):
    cluster = region
    wait_until(lambda: len([n for n in names(cluster, "pods") if "-sfu-" in n]) == 2, 60, "2 pods")
    before = {n for n in names(cluster, "pods") if "-sfu-" in n}
    cluster.kubectl("apply", "-f", "-", input=json.dumps(region_manifest(minReplicas=3)))
    wait_until(lambda: len([n for n in names(cluster, "pods") if "-sfu-" in n]) == 3, 30, "3 pods")
    assert before <= names(cluster, "pods")


def test_deleting_the_region_garbage_collects_everything(region):
    cluster = region
    cluster.kubectl("delete", "region", REGION, "--timeout=60s")
    wait_until(
        lambda: (
            not (
                names(cluster, "pods") | names(cluster, "services") | names(cluster, "deployments")
            )
        ),
        90,
        "garbage collection of the Region's objects",
    )
