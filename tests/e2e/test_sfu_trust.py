"""End to end: a pod is an SFU pod of a Region only if the operator created it.

Rogue pods copy a real SFU pod's labels, ownerReferences, ServiceAccount and whole spec,
one in the Region's own namespace and one in another; both run the real SFU, are Ready and
report with a valid projected token of the capacity audience bound to themselves. The
operator refuses their reports, places no room on them, does not count them, and records
it: a Warning Event on each pod (and on the Region) and a refusal metric.
"""

from __future__ import annotations

import copy
import json
import urllib.request

import pytest

from fixtures.cluster import apply, is_ready, ready_pods, remove
from fixtures.cluster import get_json as get
from fixtures.waiting import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.nodeagent]

REGION = "trust-eu"
MEDIA_NS = "e2e-trust-media"
OTHER_NS = "e2e-trust-elsewhere"
ROOMS_NS = "e2e-trust-rooms"
ROOMS = 6
RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted"}


@pytest.fixture(scope="module")
def real_pod(operator, node_agent, crds_installed) -> dict:
    cluster = crds_installed
    cluster.create_namespace(MEDIA_NS, RESTRICTED)
    cluster.create_namespace(OTHER_NS, RESTRICTED)
    cluster.create_namespace(ROOMS_NS)
    apply(
        cluster,
        {
            "apiVersion": "switchboard.dev/v1alpha1",
            "kind": "Region",
            "metadata": {"name": REGION},
            "spec": {
                "namespace": MEDIA_NS,
                "topologyRegion": "eu-west",
                "location": {"latitude": 52.0, "longitude": 5.0},
                "sfu": {
                    "minReplicas": 1,
                    "maxReplicas": 1,
                    "capacityPerPod": 1000,
                    "placementPolicy": "LeastLoaded",
                },
                "turn": {"enabled": False},
            },
        },
    )
    try:
        wait_for(lambda: len(ready_pods(cluster, MEDIA_NS)) == 1, 120, "the Region's SFU pod")
        yield ready_pods(cluster, MEDIA_NS)[0]
    finally:
        for kind, name in (
            ("namespace", ROOMS_NS),
            ("region", REGION),
            ("namespace", MEDIA_NS),
            ("namespace", OTHER_NS),
        ):
            remove(cluster, kind, name)


def rogue_copy(real: dict, name: str, namespace: str) -> dict:
    """What anyone allowed to create pods can make of a real SFU pod: the same labels,
    ownerReferences, ServiceAccount and containers. Without a readiness probe it is Ready
    as soon as it runs."""
    spec = copy.deepcopy(real["spec"])
    spec["hostname"] = name
    for container in spec["containers"]:
        container.pop("readinessProbe", None)
    meta = real["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": dict(meta["labels"]),
            "ownerReferences": copy.deepcopy(meta["ownerReferences"]),
        },
        "spec": spec,
    }


def pod(cluster, namespace: str, name: str) -> dict:
    return get(cluster, "pod", name, "-n", namespace)


def pod_events(cluster, namespace: str, uid: str, reason: str) -> list[dict]:
    items = get(cluster, "events", "-n", namespace)["items"]
    return [e for e in items if e["involvedObject"].get("uid") == uid and e.get("reason") == reason]


def region_events_naming(cluster, uid: str, reason: str) -> list[dict]:
    """Events on the (cluster-scoped) Region, which live in `default`, naming `uid`."""
    items = get(cluster, "events", "-n", "default")["items"]
    return [
        e
        for e in items
        if e["involvedObject"].get("name") == REGION
        and e.get("reason") == reason
        and uid in e.get("message", "")
    ]


def refused_untrusted(operator) -> float:
    with urllib.request.urlopen(f"{operator.http_url}/metrics", timeout=10) as response:
        text = response.read().decode()
    sample = 'switchboard_capacity_reports_refused_total{reason="untrusted_pod"}'
    line = next(line for line in text.splitlines() if line.startswith(sample))
    return float(line.split()[-1])


def test_pods_the_operator_did_not_create_get_no_rooms_and_are_recorded(
    crds_installed, operator, real_pod
):
    cluster = crds_installed
    real_name = real_pod["metadata"]["name"]
    account = real_pod["spec"]["serviceAccountName"]
    # Elsewhere, the same ServiceAccount name and the join keys the pod mounts.
    cluster.kubectl("create", "serviceaccount", account, "-n", OTHER_NS)
    keys = get(cluster, "configmap", "-n", MEDIA_NS, "-o", "json")["items"]
    for volume in real_pod["spec"]["volumes"]:
        source = volume.get("configMap")
        if source:
            data = next(c for c in keys if c["metadata"]["name"] == source["name"])["data"]
            apply(
                cluster,
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": source["name"], "namespace": OTHER_NS},
                    "data": data,
                },
            )
    rogues = [(MEDIA_NS, f"{REGION}-sfu-rogue1"), (OTHER_NS, f"{REGION}-sfu-rogue2")]
    for namespace, name in rogues:
        apply(cluster, rogue_copy(real_pod, name, namespace))
    for namespace, name in rogues:
        wait_for(lambda: is_ready(pod(cluster, namespace, name)), 120, f"rogue {name} Ready")  # noqa: B023
    uids = {name: pod(cluster, namespace, name)["metadata"]["uid"] for namespace, name in rogues}

    # Each rogue's reports are refused and recorded: a Warning Event on the pod, another
    # on the Region (whose owner learns of pods that pretend to be its own), and a metric.
    for namespace, name in rogues:
        uid = uids[name]
        wait_for(
            lambda: pod_events(cluster, namespace, uid, "CapacityReportRefused"),  # noqa: B023
            60,
            f"a CapacityReportRefused Event on {namespace}/{name}",
        )
        wait_for(
            lambda: region_events_naming(cluster, uid, "UntrustedSfuPod"),  # noqa: B023
            60,
            f"an UntrustedSfuPod Event on the Region naming {name}",
        )
    wait_for(lambda: refused_untrusted(operator) >= 2, 30, "refusals counted by the operator")

    # Rooms go to the pod the operator created only, although the rogues are Ready, empty,
    # and advertise the same capacity (LeastLoaded would prefer them).
    for i in range(ROOMS):
        apply(
            cluster,
            {
                "apiVersion": "switchboard.dev/v1alpha1",
                "kind": "Room",
                "metadata": {"name": f"room-{i}", "namespace": ROOMS_NS},
                "spec": {"region": REGION, "maxParticipants": 4},
            },
        )

    def placed() -> dict[str, str]:
        items = get(cluster, "rooms", "-n", ROOMS_NS)["items"]
        found = {r["metadata"]["name"]: (r.get("status") or {}).get("pod") for r in items}
        return found if all(found.values()) and len(found) == ROOMS else {}

    placements = wait_for(placed, 60, "every room placed")
    assert set(placements.values()) == {real_name}, json.dumps(placements)

    # The Region counts and records only its own pod.
    status = get(cluster, "region", REGION)["status"]
    assert status["sfu"]["readyReplicas"] == 1
    assert status["sfu"]["pods"] == [{"name": real_name, "uid": real_pod["metadata"]["uid"]}]
    # And keeps refusing: the refusals go on while the rogues keep reporting.
    counted = refused_untrusted(operator)
    wait_for(lambda: refused_untrusted(operator) > counted, 30, "further refusals counted")
