"""End to end: rooms placed on real SFU pods, joined through the join API, kept served
through pod loss, drain and operator restarts."""

from __future__ import annotations

import os
import signal
import time

import aiohttp
import pytest

from fixtures.audit import audit_marker
from fixtures.cluster import api_key_secret, apply, ready_pods, remove
from fixtures.cluster import get_json as get
from fixtures.sfu_client_process import ClientProcess
from fixtures.sfu_clients import SignallingClient, SyntheticVideo
from fixtures.sfu_harness import processes_with
from fixtures.sfu_metrics import SFU_REPORTS_ACKNOWLEDGED, sfu_metric
from fixtures.vanishing import DROP_DEADLINE_SECONDS
from fixtures.waiting import eventually, wait_for
from switchboard_api.contract import SfuEnv
from switchboard_dev.operator_process import OPERATOR_NAMESPACE, OPERATOR_USER

pytestmark = [pytest.mark.cluster, pytest.mark.nodeagent]

REGION = "rooms-eu"
MEDIA_NS = "e2e-rooms-media"
ROOMS_NS = "e2e-join-rooms"
API_KEY = "e2e-key-0123456789abcdef"


def room_status(cluster, name: str) -> dict:
    return get(cluster, "room", name, "-n", ROOMS_NS).get("status") or {}


def running_with(cluster, name: str, participants: int) -> bool:
    status = room_status(cluster, name)
    return status.get("phase") == "Running" and status.get("participants") == participants


def sfu_pods(cluster) -> list[dict]:
    items = get(cluster, "pods", "-n", MEDIA_NS, "-l", "app.kubernetes.io/component=sfu")["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def room(name: str, **spec) -> dict:
    return {
        "apiVersion": "switchboard.dev/v1alpha1",
        "kind": "Room",
        "metadata": {"name": name, "namespace": ROOMS_NS},
        "spec": {"region": REGION, "maxParticipants": 4, **spec},
    }


def sfu_pid(pod_name: str) -> int | None:
    """The local process running the SFU container of `pod_name` (the node agent's child)."""
    return next(iter(processes_with(f"{SfuEnv.POD_NAME.value}={pod_name}")), None)


@pytest.fixture(scope="module")
def region(operator, node_agent, crds_installed):
    cluster = crds_installed
    cluster.create_namespace(MEDIA_NS, {"pod-security.kubernetes.io/enforce": "restricted"})
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
                    "minReplicas": 2,
                    "maxReplicas": 3,
                    "capacityPerPod": 1000,
                    "placementPolicy": "LeastLoaded",
                },
                "turn": {"enabled": False},
            },
        },
    )
    apply(cluster, api_key_secret("e2e-api-key", OPERATOR_NAMESPACE, API_KEY, ROOMS_NS))
    try:
        wait_for(lambda: len(ready_pods(cluster, MEDIA_NS)) == 2, 120, "two ready SFU pods")
        yield cluster
    finally:
        # Rooms first (so nothing migrates), then the Region and its pods: later modules
        # must not place their rooms here.
        for kind, name in (("namespace", ROOMS_NS), ("region", REGION), ("namespace", MEDIA_NS)):
            remove(cluster, kind, name)


async def reports_processed(cluster, pod_name: str) -> None:
    """Wait until the operator has acknowledged several more reports of `pod_name` (more
    than a live-status flush apart) and the audit log shows every write made meanwhile."""
    pod = next(p for p in sfu_pods(cluster) if p["metadata"]["name"] == pod_name)
    acknowledged = sfu_metric(pod, SFU_REPORTS_ACKNOWLEDGED)
    await eventually(
        lambda: sfu_metric(pod, SFU_REPORTS_ACKNOWLEDGED) >= acknowledged + 4,
        30,
        "four more reports acknowledged by the operator",
    )
    await eventually(audit_marker(cluster, ROOMS_NS), 30, "the audit log to catch up")


def join_endpoint(operator, name: str) -> str:
    return f"{operator.http_url}/v1/namespaces/{ROOMS_NS}/rooms/{name}/join"


async def join(operator, name: str, identity: str) -> tuple[int, dict]:
    url = join_endpoint(operator, name)
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            url, json={"identity": identity}, headers={"Authorization": f"Bearer {API_KEY}"}
        ) as response,
    ):
        return response.status, await response.json()


def ws_url(joined: dict) -> str:
    return joined["url"].replace("http://", "ws://", 1).replace("https://", "wss://", 1) + "/ws"


async def media_flows(publisher: SignallingClient, subscriber: SignallingClient) -> None:
    async def decoded() -> bool:
        return bool(subscriber.received) and all(
            c.frames >= 5 for c in subscriber.received.values()
        )

    await eventually(decoded, 60, "the subscriber to decode the publisher's frames")


async def test_join_api_places_the_room_and_the_sfu_accepts_its_token(region, operator):
    cluster = region
    audit = cluster.require_local("reads the audit log").audit_log
    mark = audit.mark()
    status, alice_join = await join(operator, "standup", "alice")
    assert status == 200, alice_join
    assert alice_join["room"] == f"{ROOMS_NS}/standup"
    assert alice_join["pod"] in {p["metadata"]["name"] for p in sfu_pods(cluster)}
    # One status write placed the room, and nothing else wrote it while nobody was in it.
    await reports_processed(cluster, alice_join["pod"])
    placement_writes = [
        w
        for w in audit.writes(since=mark, user=OPERATOR_USER)
        if (w.resource, w.namespace, w.name, w.subresource)
        == ("rooms", ROOMS_NS, "standup", "status")
    ]
    _, bob_join = await join(operator, "standup", "bob")
    assert bob_join["pod"] == alice_join["pod"]

    alice, bob = SignallingClient(ws_url(alice_join)), SignallingClient(ws_url(bob_join))
    try:
        assert (await alice.connect(alice_join["token"]))["type"] == "joined"
        await alice.publish(SyntheticVideo())
        assert (await bob.connect(bob_join["token"]))["type"] == "joined"
        await media_flows(alice, bob)
    finally:
        await alice.close()
        await bob.close()
    # Live counters reach the status later, coalesced: the placement itself is checked
    # before anyone connects (test_status_writes_one_per_placement_and_none_per_report).
    assert [w.verb for w in placement_writes] == ["patch"]


async def test_status_writes_one_per_placement_and_none_per_report(region, operator):
    cluster = region
    audit = cluster.require_local("reads the audit log").audit_log
    mark = audit.mark()
    apply(cluster, room("quiet"))
    await eventually(
        lambda: room_status(cluster, "quiet").get("phase") == "Scheduled", 30, "Scheduled"
    )
    # Several reports about the room are processed (every second, from its pod).
    await reports_processed(cluster, room_status(cluster, "quiet")["pod"])
    writes = [
        w
        for w in audit.writes(since=mark, user=OPERATOR_USER)
        if (w.resource, w.namespace, w.name) == ("rooms", ROOMS_NS, "quiet")
    ]
    assert [(w.verb, w.subresource) for w in writes] == [("patch", "status")]


async def test_lost_pod_rooms_are_replaced_and_clients_rejoin(region, operator):
    cluster = region
    status, first = await join(operator, "failover", "alice")
    assert status == 200, first
    lost_pod = first["pod"]
    alice = SignallingClient(ws_url(first))
    await alice.connect(first["token"])
    await alice.publish(SyntheticVideo())
    pid = sfu_pid(lost_pod)
    assert pid is not None, "no local process for the SFU pod"
    killed = time.monotonic()
    os.kill(pid, signal.SIGKILL)

    await eventually(
        lambda: (
            room_status(cluster, "failover").get("pod") not in (None, lost_pod)
            and room_status(cluster, "failover").get("phase") in ("Scheduled", "Running")
        ),
        60,
        "the room to be re-placed on another pod",
    )
    print(f"SFU process killed -> room re-placed: {time.monotonic() - killed:.1f}s")
    await alice.close()

    # Clients come back through the join API and reach the new pod.
    status, again = await join(operator, "failover", "alice")
    assert status == 200 and again["pod"] != lost_pod
    _, bob_join = await join(operator, "failover", "bob")
    alice, bob = SignallingClient(ws_url(again)), SignallingClient(ws_url(bob_join))
    try:
        assert (await alice.connect(again["token"]))["type"] == "joined"
        await alice.publish(SyntheticVideo())
        assert (await bob.connect(bob_join["token"]))["type"] == "joined"
        await media_flows(alice, bob)
    finally:
        await alice.close()
        await bob.close()
    # The Region replaces the lost pod.
    await eventually(
        lambda: len(ready_pods(cluster, MEDIA_NS)) == 2, 120, "the Region back to two ready pods"
    )


async def test_draining_pod_takes_no_new_rooms_and_keeps_its_busy_ones(region, operator):
    cluster = region
    await eventually(lambda: len(ready_pods(cluster, MEDIA_NS)) == 2, 120, "two ready SFU pods")
    status, joined = await join(operator, "before-drain", "carol")
    assert status == 200, joined
    carol = SignallingClient(ws_url(joined))
    try:
        assert (await carol.connect(joined["token"]))["type"] == "joined"
        await carol.publish(SyntheticVideo())
        draining = joined["pod"]
        cluster.kubectl("annotate", "pod", draining, "-n", MEDIA_NS, "switchboard.dev/drain=true")
        # The pod and Room watches are separate streams: wait until the drain has reached
        # the operator (it tells the SFU, whose readiness drops) before creating rooms.
        await eventually(
            lambda: draining not in {p["metadata"]["name"] for p in ready_pods(cluster, MEDIA_NS)},
            30,
            "the draining pod to turn not-Ready",
        )
        for i in range(4):
            apply(cluster, room(f"after-drain-{i}"))
        for i in range(4):
            await eventually(
                lambda i=i: room_status(cluster, f"after-drain-{i}").get("phase") == "Scheduled",
                30,
                "room scheduled",
            )
            assert room_status(cluster, f"after-drain-{i}")["pod"] != draining
        # The room with a participant stays where it is while it is busy.
        assert room_status(cluster, "before-drain")["pod"] == draining
    finally:
        await carol.close()


async def test_operator_restart_keeps_every_assignment(region, operator):
    """No room changes pod, and a connected participant is never told to leave: until the
    new operator has restored its placements it refuses reports, so no SFU hears an answer
    from an empty picture."""
    cluster = region
    status, joined = await join(operator, "survivor", "grace")
    assert status == 200, joined
    grace = SignallingClient(ws_url(joined))
    try:
        assert (await grace.connect(joined["token"]))["type"] == "joined"
        await _restart_keeps_assignments(cluster, operator, joined["pod"])
        mark = len(grace.messages)
        await grace.send({"type": "ping"})
        await grace.next_of("pong", after=mark)  # everything sent before it has arrived
        assert [m for m in grace.messages if m.get("type") == "migrate"] == []
        assert room_status(cluster, "survivor")["pod"] == joined["pod"]
    finally:
        await grace.close()


async def _restart_keeps_assignments(cluster, operator, survivor_pod: str) -> None:
    draining = {
        p["metadata"]["name"]
        for p in sfu_pods(cluster)
        if (p["metadata"].get("annotations") or {}).get("switchboard.dev/drain") == "true"
    }
    # Rooms on pods that drain may legitimately move meanwhile; every other one must not.
    before = {
        r["metadata"]["name"]: (r["status"].get("pod"), r["status"].get("podUID"))
        for r in get(cluster, "rooms", "-n", ROOMS_NS)["items"]
        if (r.get("status") or {}).get("pod") and r["status"]["pod"] not in draining
    }
    assert "survivor" in before
    operator.stop()
    pod = next(p for p in sfu_pods(cluster) if p["metadata"]["name"] == survivor_pod)
    acknowledged = sfu_metric(pod, SFU_REPORTS_ACKNOWLEDGED)
    operator.start()
    apply(cluster, room("after-restart"))
    await eventually(
        lambda: room_status(cluster, "after-restart").get("phase") == "Scheduled",
        60,
        "placement after the restart",
    )
    # The survivor's SFU has applied answers of the new operator by now.
    await eventually(
        lambda: sfu_metric(pod, SFU_REPORTS_ACKNOWLEDGED) >= acknowledged + 2,
        30,
        "two reports acknowledged by the restarted operator",
    )
    after = {
        r["metadata"]["name"]: (r["status"].get("pod"), r["status"].get("podUID"))
        for r in get(cluster, "rooms", "-n", ROOMS_NS)["items"]
        if r["metadata"]["name"] in before
    }
    assert after == before


async def test_partitioned_sfu_fences_itself_and_its_room_is_served_once(region, operator):
    """The pod stays up but its reports stop (the process is frozen): the control plane
    re-places its room, and when the pod comes back it tells its clients to migrate."""
    cluster = region
    await eventually(lambda: len(ready_pods(cluster, MEDIA_NS)) == 2, 120, "two ready SFU pods")
    status, joined = await join(operator, "partition", "dave")
    assert status == 200, joined
    partitioned = joined["pod"]
    dave = SignallingClient(ws_url(joined))
    try:
        assert (await dave.connect(joined["token"]))["type"] == "joined"
        pid = sfu_pid(partitioned)
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        try:
            await eventually(
                lambda: room_status(cluster, "partition").get("pod") not in (None, partitioned),
                60,
                "the room re-placed away from the silent pod",
            )
        finally:
            os.kill(pid, signal.SIGCONT)
        migrate = await dave.next_of("migrate")
        assert migrate["room"] == f"{ROOMS_NS}/partition"
        assert migrate["reason"] in {"fenced", "room-moved"}
        assert migrate["rejoin"] == join_endpoint(operator, "partition")
        # Rejoining reaches the room's one new home, never the old pod.
        status, again = await join(operator, "partition", "dave")
        assert status == 200 and again["pod"] == room_status(cluster, "partition")["pod"]
        assert again["pod"] != partitioned
    finally:
        await dave.close()


async def test_room_runs_with_participants_then_closes_when_empty_and_is_deleted(region, operator):
    """Pending → Scheduled → Running (participants reported) → Closed after emptyTimeout,
    then deleted after ttlSecondsAfterClosed — all decided by the control plane from reports."""
    cluster = region
    apply(cluster, room("lifecycle", emptyTimeoutSeconds=3, ttlSecondsAfterClosed=5))
    await eventually(
        lambda: room_status(cluster, "lifecycle").get("phase") == "Scheduled", 30, "Scheduled"
    )
    status, joined = await join(operator, "lifecycle", "erin")
    assert status == 200, joined
    erin = SignallingClient(ws_url(joined))
    try:
        assert (await erin.connect(joined["token"]))["type"] == "joined"
        await eventually(
            lambda: running_with(cluster, "lifecycle", 1), 30, "Running with one participant"
        )
    finally:
        await erin.close()
    await eventually(
        lambda: room_status(cluster, "lifecycle").get("phase") == "Closed", 60, "Closed when empty"
    )
    assert room_status(cluster, "lifecycle").get("closedAt")
    await eventually(
        lambda: (
            cluster.kubectl("get", "room", "lifecycle", "-n", ROOMS_NS, check=False).returncode != 0
        ),
        60,
        "the Room deleted ttlSecondsAfterClosed after closing",
    )


async def test_a_room_whose_last_client_vanished_closes_after_its_empty_timeout(region, operator):
    """A WHIP publisher frozen mid-stream (a closed laptop lid: no DELETE, no packets) is
    dropped by its SFU pod, so the room empties and the control plane closes it."""
    cluster = region
    apply(cluster, room("abandoned", emptyTimeoutSeconds=3))
    await eventually(
        lambda: room_status(cluster, "abandoned").get("phase") == "Scheduled", 30, "Scheduled"
    )
    status, joined = await join(operator, "abandoned", "lid")
    assert status == 200, joined
    publisher = await ClientProcess.start(
        "whip", joined["url"], f"{ROOMS_NS}/abandoned", joined["token"]
    )
    try:
        await eventually(
            lambda: running_with(cluster, "abandoned", 1), 30, "Running with the publisher"
        )
        publisher.freeze()
        await eventually(
            lambda: room_status(cluster, "abandoned").get("phase") == "Closed",
            DROP_DEADLINE_SECONDS + 60,
            "Closed after its last client vanished",
        )
    finally:
        await publisher.stop()


async def test_deleting_a_room_disconnects_its_participants(region, operator):
    cluster = region
    status, joined = await join(operator, "doomed", "frank")
    assert status == 200, joined
    frank = SignallingClient(ws_url(joined))
    try:
        assert (await frank.connect(joined["token"]))["type"] == "joined"
        cluster.kubectl("delete", "room", "doomed", "-n", ROOMS_NS)
        migrate = await frank.next_of("migrate")
        assert migrate["room"] == f"{ROOMS_NS}/doomed"
        assert migrate["reason"] == "closing"
    finally:
        await frank.close()
