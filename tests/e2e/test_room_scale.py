"""End to end at scale: 500 Rooms created at once in a Region of 10 real SFU pods are each
placed exactly once, and no pod is given more than its capacity.

The Region packs (`Packed`), so most pods fill up to their admission limit one after the
other: every one of those pods has a last slot that concurrent placements compete for.
"""

from __future__ import annotations

import calendar
import json
import time
from collections import Counter
from collections.abc import Iterator

import kubernetes
import pytest

from fixtures.cluster import Cluster, condition, ready_pods
from fixtures.sfu_metrics import sfu_room_count
from fixtures.waiting import wait_for
from switchboard_api.resources import GROUP, ROOM, VERSION
from switchboard_api.room import RoomSpec
from switchboard_dev.operator_process import OPERATOR_USER
from switchboard_operator.logic.capacity import RESERVATION_HOLD_SECONDS, CapacityModel

pytestmark = [pytest.mark.cluster, pytest.mark.nodeagent, pytest.mark.slow]

REGION = "scale-eu"
MEDIA_NS = "e2e-scale-media"
ROOMS_NS = "e2e-scale-rooms"
PODS = 10
ROOMS = 500
CAPACITY_PER_POD = 95.0
HIGH_WATER_MARK = 0.8
# A 1:1 call: 2 participants, each publishing video and audio (1.3 units). 58 of them fit
# below a pod's admission limit (76 units), so the 500 rooms need 9 of the 10 pods and
# still fit if one pod's reports lag behind for a moment.
ROOM_SPEC = {
    "region": REGION,
    "maxParticipants": 2,
    "mediaProfile": {"videoPublishers": 1, "audioPublishers": 1},
    # Nobody joins these rooms: they must not close while the test looks at them.
    "emptyTimeoutSeconds": 3600,
}
RESERVATION = CapacityModel().reservation(RoomSpec.model_validate(ROOM_SPEC))


def list_rooms(rooms_api: kubernetes.client.CustomObjectsApi) -> list[dict]:
    return rooms_api.list_namespaced_custom_object(GROUP, VERSION, ROOMS_NS, ROOM.plural)["items"]


def room_list(count: int) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": ROOM.kind,
                "metadata": {"name": f"call-{i:03}", "namespace": ROOMS_NS},
                "spec": ROOM_SPEC,
            }
            for i in range(count)
        ],
    }


def placed_at(room: dict) -> float:
    """When a room was placed: its Scheduled condition's transition (whole seconds)."""
    scheduled = condition(room, "Scheduled")
    return calendar.timegm(time.strptime(scheduled["lastTransitionTime"], "%Y-%m-%dT%H:%M:%SZ"))


@pytest.fixture(scope="module")
def region(operator, node_agent, crds_installed) -> Iterator[Cluster]:
    cluster = crds_installed
    cluster.create_namespace(MEDIA_NS, {"pod-security.kubernetes.io/enforce": "restricted"})
    cluster.create_namespace(ROOMS_NS)
    region = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Region",
        "metadata": {"name": REGION},
        "spec": {
            "namespace": MEDIA_NS,
            "topologyRegion": "eu-west",
            "location": {"latitude": 50.1, "longitude": 8.7},
            "sfu": {
                "minReplicas": PODS,
                "maxReplicas": PODS,
                "capacityPerPod": CAPACITY_PER_POD,
                "highWaterMark": HIGH_WATER_MARK,
                "placementPolicy": "Packed",
            },
            "turn": {"enabled": False},
        },
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(region))
    try:
        wait_for(
            lambda: len(ready_pods(cluster, MEDIA_NS)) == PODS,
            300,
            f"{PODS} ready SFU pods",
            interval=1,
        )
        yield cluster
    finally:
        # Ten SFU processes and 500 rooms would slow every later test of the session:
        # rooms go first (so nothing migrates), then the Region and its pods.
        cluster.kubectl("delete", "namespace", ROOMS_NS, "--timeout=180s")
        cluster.kubectl("delete", "region", REGION, "--timeout=180s")
        cluster.kubectl("delete", "namespace", MEDIA_NS, "--timeout=180s")


def test_500_rooms_at_once_are_each_placed_once_and_no_pod_is_over_capacity(region):
    cluster = region
    audit = cluster.require_local("reads the audit log").audit_log
    rooms_api = kubernetes.client.CustomObjectsApi(cluster.api_client())
    pods = {p["metadata"]["name"]: p for p in ready_pods(cluster, MEDIA_NS)}
    mark = audit.mark()

    created_at = time.time()  # the wall clock, as the placement times in statuses are
    started = time.monotonic()
    cluster.kubectl("create", "-f", "-", input=json.dumps(room_list(ROOMS)))
    created = time.monotonic()

    def all_scheduled() -> list[dict] | None:
        rooms = list_rooms(rooms_api)
        phases = Counter((r.get("status") or {}).get("phase") for r in rooms)
        done = len(rooms) == ROOMS and phases["Scheduled"] == ROOMS
        return rooms if done else None

    rooms = wait_for(all_scheduled, 300, f"{ROOMS} rooms Scheduled", interval=0.25)
    scheduled = time.monotonic()
    print(
        f"\n{ROOMS} rooms on {PODS} SFU pods: kubectl create {created - started:.1f}s, "
        f"create -> all Scheduled {scheduled - started:.1f}s"
    )

    # Every room has one pod of the region, and its reservation.
    placed_on: dict[str, list[dict]] = {}
    for room in rooms:
        status = room["status"]
        assert status["region"] == REGION
        assert status["pod"] in pods, f"{room['metadata']['name']} on unknown pod {status['pod']}"
        assert status["podUID"] == pods[status["pod"]]["metadata"]["uid"]
        assert status["reservation"] == pytest.approx(RESERVATION)
        placed_on.setdefault(status["pod"], []).append(room)

    # Admission holds a pod to its high-water mark while the rooms on it are younger than
    # the reservation hold (they count their whole reservation); older ones lend out part
    # of what they do not use, and then only capacity bounds the pod. Which rooms were
    # placed while every room before them was young follows from their own placement
    # times (whole seconds), so the mark is checked on exactly those, however fast
    # placement was, and capacity on all of them.
    admission_limit = CAPACITY_PER_POD * HIGH_WATER_MARK
    young_until = created_at + RESERVATION_HOLD_SECONDS - 1
    reserved = {pod: sum(r["status"]["reservation"] for r in rs) for pod, rs in placed_on.items()}
    reserved_young = {
        pod: sum(r["status"]["reservation"] for r in rs if placed_at(r) < young_until)
        for pod, rs in placed_on.items()
    }
    young = sum(1 for r in rooms if placed_at(r) < young_until)
    print(
        f"{young} of {ROOMS} rooms placed within the reservation hold; reserved units per "
        f"pod: {', '.join(f'{u:.1f}' for u in sorted(reserved.values()))}"
    )
    over_capacity = {pod: u for pod, u in reserved.items() if u > CAPACITY_PER_POD + 1e-6}
    assert not over_capacity, f"pods over their capacity: {over_capacity}"
    over_mark = {pod: u for pod, u in reserved_young.items() if u > admission_limit + 1e-6}
    assert not over_mark, f"pods over {admission_limit:g} units while young: {over_mark}"
    # Packed fills pods one after the other up to their limit: the pods' last slots were
    # contended, so the mark was tested where it matters.
    full = [u for u in reserved_young.values() if u + RESERVATION > admission_limit + 1e-6]
    assert len(full) >= young * RESERVATION // admission_limit - 1, reserved_young

    # The SFU pods serve exactly the rooms placed on them: none is held by two pods.
    def sfus_hold_their_rooms() -> dict[str, int]:
        counts = {name: sfu_room_count(pod) for name, pod in pods.items()}
        expected = {name: len(placed_on.get(name, [])) for name in pods}
        return counts if counts == expected else {}

    counts = wait_for(sfus_hold_their_rooms, 60, "each SFU pod to hold its placed rooms")
    assert sum(counts.values()) == ROOMS

    # One status write placed each room, and the operator wrote nothing else to Rooms.
    room_writes = [
        w
        for w in audit.writes(since=mark, user=OPERATOR_USER)
        if w.resource == ROOM.plural and w.namespace == ROOMS_NS
    ]
    assert {(w.verb, w.subresource) for w in room_writes} == {("patch", "status")}
    per_room = Counter(w.name for w in room_writes)
    twice = {name: n for name, n in per_room.items() if n != 1}
    assert not twice, f"rooms with more than one status write: {twice}"
    assert set(per_room) == {r["metadata"]["name"] for r in rooms}
