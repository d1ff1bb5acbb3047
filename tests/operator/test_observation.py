"""The operator acknowledges every Region and Room it sees, and is silent when nothing changes."""

from __future__ import annotations

import json

import pytest

from fixtures.waiting import wait_for
from switchboard_dev.operator_process import OPERATOR_USER

pytestmark = pytest.mark.cluster


def _get(cluster, kind: str, name: str, namespace: str | None = None) -> dict:
    args = ["get", kind, name, "-o", "json"]
    if namespace:
        args += ["-n", namespace]
    return json.loads(cluster.kubectl(*args).stdout)


def _observed(obj: dict) -> bool:
    status = obj.get("status") or {}
    return status.get("observedGeneration") == obj["metadata"]["generation"]


def _condition(obj: dict, type_: str) -> dict:
    return next(c for c in obj["status"]["conditions"] if c["type"] == type_)


def _apply(cluster, obj: dict) -> None:
    cluster.kubectl("apply", "-f", "-", input=json.dumps(obj))


def _region(name: str, latitude: float) -> dict:
    return {
        "apiVersion": "switchboard.dev/v1alpha1",
        "kind": "Region",
        "metadata": {"name": name},
        "spec": {"location": {"latitude": latitude, "longitude": 4.9}},
    }


def _room(name: str, namespace: str, max_participants: int = 10) -> dict:
    return {
        "apiVersion": "switchboard.dev/v1alpha1",
        "kind": "Room",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"maxParticipants": max_participants},
    }


def test_region_gets_observed_generation_and_conditions(operator, crds_installed, cleanup):
    cluster = crds_installed
    cleanup("region", "observed-eu")
    _apply(cluster, _region("observed-eu", 52.4))
    wait_for(lambda: _observed(_get(cluster, "region", "observed-eu")), 30, "region observed")
    region = _get(cluster, "region", "observed-eu")
    for type_ in ("Ready", "Progressing", "Degraded"):
        assert _condition(region, type_)["observedGeneration"] == region["metadata"]["generation"]

    # A spec change is a new generation, and the operator catches up with it.
    _apply(cluster, _region("observed-eu", 50.1))
    wait_for(
        lambda: (
            (r := _get(cluster, "region", "observed-eu"))["metadata"]["generation"] == 2
            and _observed(r)
        ),
        30,
        "region generation 2 observed",
    )


def test_room_pinned_to_a_missing_region_is_unschedulable_with_a_reason(
    operator, crds_installed, cleanup
):
    cluster = crds_installed
    cluster.create_namespace("observe-rooms")
    cleanup("namespace", "observe-rooms")
    standup = _room("standup", "observe-rooms")
    standup["spec"]["region"] = "nowhere"
    _apply(cluster, standup)
    wait_for(
        lambda: _observed(_get(cluster, "room", "standup", "observe-rooms")), 30, "room observed"
    )
    room = _get(cluster, "room", "standup", "observe-rooms")
    assert room["status"]["phase"] == "Unschedulable"
    scheduled = _condition(room, "Scheduled")
    assert scheduled["status"] == "False"
    assert scheduled["reason"] == "RegionNotFound"
    assert room["status"]["message"]


def test_operator_writes_nothing_while_nothing_changes(operator, crds_installed, cleanup):
    cluster = crds_installed
    audit = cluster.require_local("reads the audit log").audit_log
    cluster.create_namespace("observe-idle")
    cleanup("region", "idle-eu")
    cleanup("namespace", "observe-idle")
    _apply(cluster, _region("idle-eu", 48.8))
    _apply(cluster, _room("idle", "observe-idle"))
    wait_for(lambda: _observed(_get(cluster, "region", "idle-eu")), 30, "region observed")
    wait_for(lambda: _observed(_get(cluster, "room", "idle", "observe-idle")), 30, "room observed")

    mark = audit.mark()
    # Events that change nothing the operator owns: metadata-only edits.
    cluster.kubectl("label", "region", "idle-eu", "touched=yes")
    cluster.kubectl("annotate", "room", "idle", "-n", "observe-idle", "touched=yes")
    # A sentinel created afterwards: once it is observed, the touches were seen too.
    _apply(cluster, _room("sentinel", "observe-idle"))
    wait_for(
        lambda: _observed(_get(cluster, "room", "sentinel", "observe-idle")),
        30,
        "sentinel observed",
    )

    # Only this test's objects count: other tests' Regions may be busy in the same cluster.
    mine = ("idle-eu", "idle", "sentinel")
    writes = [
        w
        for w in audit.writes(since=mark, user=OPERATOR_USER)
        if w.name in mine or w.name.split(".")[0] in mine
    ]
    about_sentinel = [w for w in writes if w.name == "sentinel" or w.name.startswith("sentinel.")]
    assert [w for w in writes if w not in about_sentinel] == [], (
        "the operator wrote to objects that had not changed"
    )
    # The sentinel itself cost one status write (and an Event saying why it waits).
    assert [(w.resource, w.subresource) for w in about_sentinel if w.resource == "rooms"] == [
        ("rooms", "status")
    ]
