"""End to end: a Region grows before rooms wait and shrinks without cutting a live room.

Real control plane, real SFU pods through the node agent, real aiortc clients. Each pod
offers 5 units; a 1:1 video call reserves 1.3, so at the 60 % target three rooms need a
second pod, and the fourth (over a pod's 80 % admission limit) waits for it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter

import aiohttp
import pytest

from fixtures.audit import audit_marker
from fixtures.cluster import api_key_secret, apply, condition, ready_pods, remove
from fixtures.cluster import get_json as get
from fixtures.sfu_client_process import ClientProcess
from fixtures.sfu_clients import SignallingClient
from fixtures.sfu_harness import processes_with
from fixtures.sfu_metrics import SFU_REPORTS_ACKNOWLEDGED, sfu_metric
from fixtures.vanishing import DROP_DEADLINE_SECONDS
from fixtures.waiting import eventually, wait_for
from switchboard_api.contract import SfuEnv
from switchboard_dev.operator_process import OPERATOR_NAMESPACE, OPERATOR_USER

pytestmark = [pytest.mark.cluster, pytest.mark.nodeagent, pytest.mark.slow]

REGION = "scaling-eu"
MEDIA_NS = "e2e-scaling-media"
ROOMS_NS = "e2e-scaling-rooms"
API_KEY = "e2e-scaling-key-0123456789"
WINDOW = 15
CALL = {"maxParticipants": 2, "mediaProfile": {"videoPublishers": 1, "audioPublishers": 1}}


def region_spec(**autoscaling) -> dict:
    return {
        "apiVersion": "switchboard.dev/v1alpha1",
        "kind": "Region",
        "metadata": {"name": REGION},
        "spec": {
            "namespace": MEDIA_NS,
            "topologyRegion": "eu-west",
            "location": {"latitude": 48.1, "longitude": 11.6},
            "sfu": {
                "minReplicas": 1,
                "maxReplicas": 3,
                "capacityPerPod": 5,
                "placementPolicy": "LeastLoaded",
                "autoscaling": {"scaleDownStabilizationSeconds": WINDOW, **autoscaling},
            },
            "turn": {"enabled": False},
        },
    }


def room(name: str, **spec) -> dict:
    return {
        "apiVersion": "switchboard.dev/v1alpha1",
        "kind": "Room",
        "metadata": {"name": name, "namespace": ROOMS_NS},
        "spec": {"region": REGION, **CALL, "emptyTimeoutSeconds": 3600, **spec},
    }


def delete_room(cluster, name: str) -> None:
    cluster.kubectl("delete", "room", name, "-n", ROOMS_NS, "--wait=false", "--ignore-not-found")


def room_status(cluster, name: str) -> dict:
    return get(cluster, "room", name, "-n", ROOMS_NS).get("status") or {}


def sfu_pods(cluster) -> dict[str, dict]:
    items = get(cluster, "pods", "-n", MEDIA_NS, "-l", "app.kubernetes.io/component=sfu")["items"]
    return {p["metadata"]["name"]: p for p in items if not p["metadata"].get("deletionTimestamp")}


def region_events(cluster, reason: str) -> list[dict]:
    items = get(
        cluster,
        "events",
        "-n",
        "default",
        "--field-selector",
        f"involvedObject.name={REGION},reason={reason}",
    )["items"]
    return items


def region_status(cluster) -> dict:
    return get(cluster, "region", REGION).get("status") or {}


def pod_writes(cluster, mark: int) -> Counter:
    audit = cluster.require_local("reads the audit log").audit_log
    return Counter(
        (w.verb, w.name)
        for w in audit.writes(since=mark, user=OPERATOR_USER)
        if w.resource == "pods" and w.namespace == MEDIA_NS and not w.subresource
    )


async def join(operator, name: str, identity: str) -> dict:
    url = f"{operator.http_url}/v1/namespaces/{ROOMS_NS}/rooms/{name}/join"
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            url, json={"identity": identity}, headers={"Authorization": f"Bearer {API_KEY}"}
        ) as response,
    ):
        body = await response.json()
        assert response.status == 200, body
        return body


@pytest.fixture(scope="module")
def region(operator, node_agent, crds_installed):
    cluster = crds_installed
    cluster.create_namespace(MEDIA_NS, {"pod-security.kubernetes.io/enforce": "restricted"})
    cluster.create_namespace(ROOMS_NS)
    apply(cluster, region_spec())
    apply(cluster, api_key_secret("e2e-scaling-key", OPERATOR_NAMESPACE, API_KEY, ROOMS_NS))
    try:
        wait_for(lambda: len(ready_pods(cluster, MEDIA_NS)) == 1, 120, "one ready SFU pod")
        yield cluster
    finally:
        for kind, name in (("namespace", ROOMS_NS), ("region", REGION), ("namespace", MEDIA_NS)):
            remove(cluster, kind, name)


async def test_grows_before_rooms_wait_and_shrinks_to_exactly_the_empty_pods(region, operator):
    """Ramp: the third call takes demand over the target and a second pod is created; the
    fourth, which no longer fits the first pod, lands on it once it reports. Fall: the
    pods removed are exactly the ones left empty; the pod whose call still has live media
    is cordoned, keeps its media flowing (through an operator restart), and is deleted
    once, after its participants left: one politely, one vanishing without a goodbye."""
    cluster = region
    audit = cluster.require_local("reads the audit log").audit_log
    mark = audit.mark()
    (first,) = sfu_pods(cluster)
    for name in ("c1", "c2", "c3"):
        apply(cluster, room(name))
        await eventually(
            lambda name=name: room_status(cluster, name).get("pod") == first, 60, f"{name} placed"
        )
    # Demand 3.9 units needs 2 pods at 60 % of 5: one is added at once, before any room waits.
    await eventually(lambda: len(sfu_pods(cluster)) == 2, 30, "a second SFU pod created")
    (second,) = set(sfu_pods(cluster)) - {first}
    assert region_events(cluster, "ScaledUp")
    # Its participants come and go: once empty, it closes after 20 s.
    apply(cluster, room("call", emptyTimeoutSeconds=20))
    await eventually(
        lambda: room_status(cluster, "call").get("pod") == second,
        150,
        "the fourth room placed on the new pod once it reports",
    )
    assert {room_status(cluster, n).get("phase") for n in ("c1", "c2", "c3", "call")} == {
        "Scheduled"
    }
    status = region_status(cluster)
    assert status["sfu"]["desiredReplicas"] == 2
    assert status["sfu"]["currentReplicas"] == 2
    assert "lastScaleTime" in status["sfu"]
    assert "ScaledUp" not in str(status)  # the reason is words, not the Event

    # Live media on the new pod: a WHIP publisher (a separate process) and a subscriber.
    alice_join = await join(operator, "call", "alice")
    bob_join = await join(operator, "call", "bob")
    alice = SignallingClient(alice_join["url"].replace("http://", "ws://", 1) + "/ws")
    bob = await ClientProcess.start("whip", bob_join["url"], f"{ROOMS_NS}/call", bob_join["token"])
    try:
        assert (await alice.connect(alice_join["token"]))["type"] == "joined"

        def frames() -> int:
            return sum(c.frames for c in alice.received.values())

        await eventually(lambda: frames() >= 10, 60, "alice decoding bob's media")

        # Fall: two calls on the first pod end. Demand 2.6 fits one pod; after the window
        # the newest pod, whose call is live, is cordoned: nobody is moved.
        for name in ("c1", "c2"):
            delete_room(cluster, name)
        await eventually(
            lambda: bool(
                (sfu_pods(cluster)[second]["metadata"].get("annotations") or {}).get(
                    "switchboard.dev/cordoned"
                )
            ),
            WINDOW + 60,
            "the pod of the live call cordoned after the window",
        )
        assert region_events(cluster, "ScaledDown")
        assert region_events(cluster, "Cordoned")
        assert region_status(cluster)["sfu"]["drainingReplicas"] == 1

        # The operator is killed while the pod is cordoned (all it knew in memory is gone,
        # and it releases nothing), and comes back: it waits out the dead process's Lease
        # and restores the placements within the SFUs' leases, so nothing moves.
        operator.kill(restart=False)
        operator.start()
        before = frames()
        await eventually(lambda: frames() >= before + 30, 60, "media still flowing")
        assert second in sfu_pods(cluster)
        assert room_status(cluster, "call").get("pod") == second

        # The participants go: bob vanishes (killed, no WHIP DELETE), alice leaves.
        bob.kill()
        await alice.close()
        await eventually(
            lambda: second not in sfu_pods(cluster),
            DROP_DEADLINE_SECONDS + 90,
            "the cordoned pod deleted once its call ended",
        )
        assert not [m for m in alice.messages if m.get("type") == "migrate"]
    finally:
        await alice.close()
        await bob.stop()
    await eventually(audit_marker(cluster, MEDIA_NS), 30, "the audit log to catch up")
    writes = pod_writes(cluster, mark)
    # Exactly one pod was created and exactly it was deleted, once; the first pod, which
    # kept a room, was never touched but by its hosts-rooms label.
    assert {name for verb, name in writes if verb == "create"} == {second}
    assert writes[("delete", second)] == 1
    assert ("delete", first) not in writes
    assert set(sfu_pods(cluster)) == {first}
    delete_room(cluster, "c3")


async def test_disabled_keeps_min_under_load_and_at_max_is_set_and_cleared(region, operator):
    cluster = region
    await eventually(lambda: len(sfu_pods(cluster)) == 1, 120, "the Region back at one pod")
    apply(cluster, region_spec(enabled=False))
    for i in range(6):
        apply(cluster, room(f"load-{i}"))
    await eventually(
        lambda: room_status(cluster, "load-5").get("phase") in ("Pending", "Unschedulable"),
        30,
        "rooms beyond one pod not placed",
    )
    assert len(sfu_pods(cluster)) == 1
    assert region_status(cluster)["sfu"]["desiredReplicas"] == 1
    # Enabled with too few pods allowed: demand 7.8 units needs 3 pods, max is 2.
    region = region_spec()
    region["spec"]["sfu"]["maxReplicas"] = 2
    apply(cluster, region)
    await eventually(
        lambda: condition(get(cluster, "region", REGION), "AtMaxReplicas").get("status") == "True",
        30,
        "AtMaxReplicas set",
    )
    await eventually(lambda: len(sfu_pods(cluster)) == 2, 30, "grown to maxReplicas")
    for i in range(3, 6):
        delete_room(cluster, f"load-{i}")
    await eventually(
        lambda: condition(get(cluster, "region", REGION), "AtMaxReplicas").get("status") == "False",
        30,
        "AtMaxReplicas cleared",
    )
    assert region_status(cluster)["sfu"]["lastScaleReason"]


async def test_flapping_load_inside_the_window_causes_no_churn(region, operator):
    """A room that comes and goes across the one-pod target, every few seconds: one pod is
    added the first time, none is removed or added again while the load flaps, and the
    Region shrinks once, a window after the load stayed low."""
    cluster = region
    apply(cluster, region_spec())
    for i in range(6):
        delete_room(cluster, f"load-{i}")
    await eventually(
        lambda: not any(n.startswith("load-") for n in room_names(cluster)), 60, "load gone"
    )
    await eventually(lambda: len(sfu_pods(cluster)) == 1, WINDOW + 120, "back at one pod")
    for name in ("f0", "f1"):
        apply(cluster, room(name))
        await eventually(lambda name=name: room_status(cluster, name).get("pod"), 60, "placed")
    # Two rooms fit one pod at the target: settled there.
    await eventually(
        lambda: region_status(cluster)["sfu"]["desiredReplicas"] == 1, 30, "one pod wanted"
    )
    audit = cluster.require_local("reads the audit log").audit_log
    mark = audit.mark()
    ups, downs = len(region_events(cluster, "ScaledUp")), len(region_events(cluster, "ScaledDown"))
    for cycle in range(4):
        apply(cluster, room("flap"))
        await eventually(
            lambda: room_status(cluster, "flap").get("pod"), 90, f"flap {cycle} placed"
        )
        delete_room(cluster, "flap")
        await eventually(lambda: "flap" not in room_names(cluster), 30, f"flap {cycle} gone")
    await eventually(audit_marker(cluster, MEDIA_NS), 30, "the audit log to catch up")
    writes = pod_writes(cluster, mark)
    assert sum(1 for verb, _ in writes if verb == "create") == 1, writes
    assert not [name for verb, name in writes if verb == "delete"], writes
    assert len(region_events(cluster, "ScaledUp")) == ups + 1
    assert len(region_events(cluster, "ScaledDown")) == downs
    # Low for a whole window: one scale-down, the empty pod removed.
    await eventually(lambda: len(sfu_pods(cluster)) == 1, WINDOW + 90, "back at one pod")
    assert len(region_events(cluster, "ScaledDown")) == downs + 1


async def test_scale_down_waits_while_a_pod_is_silent(region, operator):
    """Demand falls while one SFU pod's reports have stopped (its process is paused: it
    answers nothing, so it is not Ready either): no pod is cordoned or deleted while it is
    silent, however long past the window, and the Region says why (condition ScaleDownHeld
    naming the pod, one Event); once it reports again the Region shrinks and the condition
    clears."""
    cluster = region
    window = 2
    apply(cluster, region_spec(scaleDownStabilizationSeconds=window))
    for name in room_names(cluster):  # the earlier tests' rooms
        delete_room(cluster, name)
    await eventually(lambda: not room_names(cluster), 60, "no rooms left")
    await eventually(lambda: len(sfu_pods(cluster)) == 1, WINDOW + 120, "back at one pod")
    (first,) = sfu_pods(cluster)
    for name in ("s1", "s2", "s3"):  # all on the first pod; the third needs a second pod
        apply(cluster, room(name))
        await eventually(lambda name=name: room_status(cluster, name).get("pod"), 150, "placed")
    await eventually(lambda: len(ready_pods(cluster, MEDIA_NS)) == 2, 150, "a second pod ready")
    (silent,) = set(sfu_pods(cluster)) - {first}
    # It has served: the operator knows it from its reports, not only from its Ready.
    await eventually(
        lambda: sfu_metric(sfu_pods(cluster)[silent], SFU_REPORTS_ACKNOWLEDGED) >= 1,
        30,
        "the new pod's reports acknowledged",
    )
    audit = cluster.require_local("reads the audit log").audit_log
    mark = audit.mark()
    holds = len(region_events(cluster, "ScaleDownHeld"))
    pids = processes_with(f"{SfuEnv.POD_NAME.value}={silent}")
    assert pids
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        await eventually(
            lambda: silent not in {p["metadata"]["name"] for p in ready_pods(cluster, MEDIA_NS)},
            30,
            "the silent pod not Ready",
        )
        # Demand now fits one pod: the window passes several times over while it is silent
        # (kept well inside the liveness probe's 20-30 s, after which it would be ended).
        for name in ("s2", "s3"):
            delete_room(cluster, name)
        await eventually(lambda: not {"s2", "s3"} & room_names(cluster), 30, "rooms gone")
        await eventually(lambda: held(cluster).get("status") == "True", 15, "ScaleDownHeld set")
        assert held(cluster)["reason"] == "ReportsMissing"
        assert silent in held(cluster)["message"]
        held_until = time.monotonic() + 3 * window
        while time.monotonic() < held_until:
            pods = sfu_pods(cluster)
            assert set(pods) == {first, silent}
            assert not any(cordoned(p) for p in pods.values()), "cordoned while silent"
            await asyncio.sleep(0.5)
        assert region_status(cluster)["sfu"]["desiredReplicas"] == 2
        assert held(cluster)["status"] == "True"
        # Told once when the hold started, not on every decision while it lasts.
        assert len(region_events(cluster, "ScaleDownHeld")) == holds + 1
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    await eventually(lambda: silent not in sfu_pods(cluster), 60, "the Region shrunk")
    assert set(sfu_pods(cluster)) == {first}
    assert room_status(cluster, "s1").get("pod") == first
    await eventually(lambda: held(cluster).get("status") == "False", 30, "ScaleDownHeld cleared")
    assert len(region_events(cluster, "ScaleDownHeld")) == holds + 1
    await eventually(audit_marker(cluster, MEDIA_NS), 30, "the audit log to catch up")
    writes = pod_writes(cluster, mark)
    assert writes[("delete", silent)] == 1 and ("delete", first) not in writes
    delete_room(cluster, "s1")


def held(cluster) -> dict:
    return condition(get(cluster, "region", REGION), "ScaleDownHeld")


def cordoned(pod: dict) -> bool:
    return bool((pod["metadata"].get("annotations") or {}).get("switchboard.dev/cordoned"))


def room_names(cluster) -> set[str]:
    return {r["metadata"]["name"] for r in get(cluster, "rooms", "-n", ROOMS_NS)["items"]}
