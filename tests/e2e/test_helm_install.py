"""Switchboard as a platform team installs it: `helm install` of the chart, every pod from its
image through podman + runc, on a cluster of its own (the chart's operator watches the
whole cluster, so it must not meet the suite's operator process).

One module, in order: install and media through the containerised SFU; a leader failover
the Service follows; `helm upgrade` to a new tag; `helm uninstall`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from aiortc import RTCSessionDescription

from fixtures.images import retagged_store
from fixtures.nodeagent import TEST_AGENT_SETTINGS
from fixtures.sfu_clients import FrameCounter, post_offer, recvonly_offer, sendonly_offer
from fixtures.sfu_metrics import SFU_REPORTS_ACKNOWLEDGED, sfu_metric
from fixtures.waiting import eventually, wait_for
from switchboard_dev import chart_install
from switchboard_dev.images import BuiltImages, project_version, require_built
from switchboard_dev.node_agent_process import NodeAgentProcess
from switchboard_dev.operator_process import OPERATOR_NAMESPACE
from switchboard_localcluster.controlplane import ControlPlane
from switchboard_localcluster.nodeagent.presets import (
    NODE_AGENT_GROUPS,
    NODE_AGENT_USER,
    agent_config,
)

pytestmark = [pytest.mark.cluster, pytest.mark.nodeagent, pytest.mark.slow]

REGION, MEDIA_NS, ROOMS_NS = "helm-eu", "helm-media", "helm-rooms"
API_KEY = "helm-key-0123456789abcdef"
UPGRADE_TAG = f"{project_version()}-upgrade"
IMAGES = ("operator", "sfu", "turn")
TIMEOUT = 240


class Installed:
    def __init__(self, plane: ControlPlane, agent: NodeAgentProcess, images: BuiltImages) -> None:
        self.plane = plane
        self.agent = agent
        self.images = images
        self.upgraded_ids: dict[str, str] = {}

    def get(self, *args: str) -> dict[str, Any]:
        return dict(json.loads(self.plane.kubectl("get", *args, "-o", "json").stdout))

    def apply(self, obj: dict[str, Any]) -> None:
        self.plane.kubectl("apply", "-f", "-", input=json.dumps(obj))

    def pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        items = self.get("pods", "-n", namespace, "-l", selector)["items"]
        return [p for p in items if not p["metadata"].get("deletionTimestamp")]

    def operator_url(self) -> str | None:
        return chart_install.operator_url(self.plane)

    def leader(self) -> str:
        lease = self.get("lease", "switchboard-operator", "-n", OPERATOR_NAMESPACE)
        return str(lease["spec"].get("holderIdentity") or "")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    images = require_built()
    work = tmp_path_factory.mktemp("helm")
    # The same images under a new tag and a new ID: a release to upgrade to.
    upgrade_store = work / "upgrade-store"
    upgrade_ids = retagged_store(images, upgrade_store, UPGRADE_TAG, IMAGES)
    plane = ControlPlane(workdir=work / "cluster")
    plane.start()
    agent = None
    try:
        config = agent_config(
            work / "agent" / "state",
            {"eu-west": ["eu-west-a", "eu-west-b"]},
            "127.60.0.0/16",
            image_stores=[*images.stores, upgrade_store],
            **TEST_AGENT_SETTINGS,
        )
        kubeconfig = plane.issue_kubeconfig(NODE_AGENT_USER, NODE_AGENT_GROUPS)
        agent = NodeAgentProcess(plane, work / "agent", config, kubeconfig).start()
        chart_install.install(plane.kubeconfig)
        setup = Installed(plane, agent, images)
        setup.upgraded_ids = upgrade_ids
        yield setup
    finally:
        if agent is not None:
            agent.stop()
        plane.stop()


def region() -> dict[str, Any]:
    return {
        "apiVersion": "switchboard.dev/v1alpha1",
        "kind": "Region",
        "metadata": {"name": REGION},
        "spec": {
            "namespace": MEDIA_NS,
            "topologyRegion": "eu-west",
            "location": {"latitude": 52.0, "longitude": 5.0},
            # A short drain: the upgrade rolls the SFU pod once its rooms moved or ended.
            "sfu": {
                "minReplicas": 1,
                "maxReplicas": 2,
                "capacityPerPod": 1000,
                "autoscaling": {"drainGraceSeconds": 20},
            },
            "turn": {"enabled": True, "replicas": 1, "allowedPeerCIDRs": ["127.0.0.0/8"]},
        },
    }


def room(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "switchboard.dev/v1alpha1",
        "kind": "Room",
        "metadata": {"name": name, "namespace": ROOMS_NS},
        "spec": {"region": REGION, "maxParticipants": 4},
    }


def api_key_secret() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "helm-api-key",
            "namespace": OPERATOR_NAMESPACE,
            "labels": {"switchboard.dev/api-key": "true"},
        },
        "stringData": {"key": API_KEY, "namespaces": ROOMS_NS, "create": "true"},
    }


def image_ids(pod: dict[str, Any]) -> set[str]:
    statuses = [
        *(pod["status"].get("initContainerStatuses") or []),
        *(pod["status"].get("containerStatuses") or []),
    ]
    return {s["imageID"] for s in statuses}


def condition(setup: Installed, kind: str, name: str, type_: str) -> str | None:
    conditions = (setup.get(kind, name).get("status") or {}).get("conditions") or []
    return next((c["status"] for c in conditions if c["type"] == type_), None)


def placements(setup: Installed) -> dict[str, tuple[str, str]]:
    return {
        r["metadata"]["name"]: (r["status"].get("pod"), r["status"].get("podUID"))
        for r in setup.get("rooms", "-n", ROOMS_NS)["items"]
        if (r.get("status") or {}).get("pod")
    }


async def join(url: str, name: str, identity: str) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{url}/v1/namespaces/{ROOMS_NS}/rooms/{name}/join",
            json={"identity": identity},
            headers={"Authorization": f"Bearer {API_KEY}"},
        ) as response,
    ):
        body = await response.json()
        assert response.status == 200, body
        return dict(body)


async def test_helm_install_runs_every_pod_from_its_image_and_media_flows(installed):
    setup = installed
    built = {name: setup.images.manifest["images"][name]["id"] for name in IMAGES}
    operators = setup.pods(OPERATOR_NAMESPACE, "app.kubernetes.io/component=operator")
    assert len(operators) == 2
    assert all(image_ids(p) == {built["operator"]} for p in operators)
    url = await eventually(setup.operator_url, TIMEOUT, "the operator Service to select the leader")
    assert url.startswith("http://127.60.")

    setup.plane.kubectl("create", "namespace", MEDIA_NS)
    setup.plane.kubectl(
        "label", "namespace", MEDIA_NS, "pod-security.kubernetes.io/enforce=restricted"
    )
    setup.plane.kubectl("create", "namespace", ROOMS_NS)
    setup.apply(api_key_secret())
    setup.apply(region())
    await eventually(
        lambda: condition(setup, "region", REGION, "Ready") == "True", TIMEOUT, "Region Ready"
    )
    [sfu] = setup.pods(MEDIA_NS, "app.kubernetes.io/component=sfu")
    assert image_ids(sfu) == {built["sfu"]}
    [turn] = setup.pods(MEDIA_NS, "app.kubernetes.io/component=turn")
    assert image_ids(turn) == {built["turn"]}  # coturn and its secret-sync sidecar

    publisher_join = await join(url, "stage", "camera")
    viewer_join = await join(url, "stage", "viewer")
    sfu_url = publisher_join["url"]
    publisher, offer = await sendonly_offer("video")
    viewer, view_offer = await recvonly_offer("video")
    counters: list[FrameCounter] = []
    viewer.on("track", lambda track: counters.append(FrameCounter(track)))
    try:
        status, _, answer = await post_offer(
            f"{sfu_url}/whip/{ROOMS_NS}/stage", offer, publisher_join["token"]
        )
        assert status == 201, answer
        await publisher.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        status, _, answer = await post_offer(
            f"{sfu_url}/whep/{ROOMS_NS}/stage", view_offer, viewer_join["token"]
        )
        assert status == 201, answer
        await viewer.setRemoteDescription(RTCSessionDescription(answer, "answer"))

        async def decoded() -> bool:
            return bool(counters) and counters[0].frames >= 5

        await eventually(decoded, 90, "the WHEP viewer to decode the WHIP publisher's video")
    finally:
        for counter in counters:
            counter.stop()
        await publisher.close()
        await viewer.close()


def test_the_operator_service_follows_a_new_leader(installed):
    setup = installed
    before = placements(setup)
    assert "stage" in before
    old_leader = setup.leader()
    old_url = setup.operator_url()
    [sfu] = setup.pods(MEDIA_NS, "app.kubernetes.io/component=sfu")
    acknowledged = sfu_metric(sfu, SFU_REPORTS_ACKNOWLEDGED)

    setup.plane.kubectl("delete", "pod", old_leader, "-n", OPERATOR_NAMESPACE, "--wait=false")
    wait_for(lambda: setup.leader() not in ("", old_leader), TIMEOUT, "a new leader")
    new_url = wait_for(
        lambda: (u := setup.operator_url()) not in (None, old_url) and u,
        TIMEOUT,
        "the Service to select the new leader",
    )
    assert new_url != old_url
    # The SFU reports to switchboard-operator.<ns>.svc: its name now leads to the new
    # leader, which acknowledges it; no room moved.
    wait_for(
        lambda: sfu_metric(sfu, SFU_REPORTS_ACKNOWLEDGED) >= acknowledged + 3,
        TIMEOUT,
        "reports acknowledged by the new leader",
    )
    assert placements(setup) == before
    setup.apply(room("after-failover"))
    wait_for(
        lambda: "after-failover" in placements(setup), TIMEOUT, "a placement by the new leader"
    )


def test_helm_upgrade_to_a_new_tag_rolls_every_pod_and_keeps_rooms(installed):
    setup = installed
    before = placements(setup)
    chart_install.install(setup.plane.kubeconfig, {"image.tag": UPGRADE_TAG})
    rollout = setup.plane.kubectl(
        "rollout",
        "status",
        "deployment/switchboard-operator",
        "-n",
        OPERATOR_NAMESPACE,
        "--timeout=300s",
    )
    assert "successfully rolled out" in rollout.stdout

    def leader_image() -> set[str]:
        pods = setup.pods(OPERATOR_NAMESPACE, "app.kubernetes.io/component=operator")
        by_name = {p["metadata"]["name"]: p for p in pods}
        leader = by_name.get(setup.leader())
        return image_ids(leader) if leader else set()

    # The old replicas go last; the lease passes to a new one when the old leader stops.
    wait_for(
        lambda: leader_image() == {setup.upgraded_ids["operator"]},
        TIMEOUT,
        "a leader on the new image",
    )
    wait_for(setup.operator_url, TIMEOUT, "the Service to select the upgraded leader")

    def rolled(name: str) -> bool:
        pods = setup.pods(MEDIA_NS, f"app.kubernetes.io/component={name}")
        return bool(pods) and all(
            image_ids(p) == {setup.upgraded_ids[name]} and p["status"].get("phase") == "Running"
            for p in pods
        )

    # The operator rolls SFU pods one at a time, rooms drained off first; TURN rolls
    # through its Deployment. The registry/tag change reaches them: Regions name no image.
    wait_for(lambda: rolled("sfu"), 600, "SFU pods on the new image")
    wait_for(lambda: rolled("turn"), TIMEOUT, "TURN pods on the new image")
    after = placements(setup)
    assert set(after) >= set(before), "every room is still placed"


def test_helm_uninstall_leaves_no_namespaced_objects(installed):
    setup = installed
    setup.plane.kubectl("delete", "region", REGION, "--wait=true", "--timeout=120s")
    # The API key is the user's own Secret, not the release's.
    setup.plane.kubectl("delete", "secret", "helm-api-key", "-n", OPERATOR_NAMESPACE)
    chart_install.uninstall(setup.plane.kubeconfig)
    kinds = (
        "deployments,replicasets,pods,services,serviceaccounts,roles,rolebindings,"
        "configmaps,secrets,leases"
    )

    def leftovers() -> list[str]:
        return [
            f"{item['kind']}/{item['metadata']['name']}"
            for item in setup.get(kinds, "-n", OPERATOR_NAMESPACE)["items"]
            if item["metadata"]["name"] not in ("default", "kube-root-ca.crt")
        ]

    wait_for(lambda: not leftovers(), TIMEOUT, f"nothing left: {leftovers()}")
    cluster_scoped = setup.get("clusterroles,clusterrolebindings")["items"]
    assert not [c for c in cluster_scoped if c["metadata"]["name"].startswith("switchboard-")]
