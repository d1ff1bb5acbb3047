"""What a restarted agent adopts: the containers its predecessor named after their pods, the
running ones only, each handed to its pod once; and the status it carries on from."""

from __future__ import annotations

import json

from switchboard_localcluster.nodeagent.adoption import (
    PID_HOLDER,
    Survivors,
    adoptable,
    container_name,
    holder_name,
    parse_name,
    survivors_from_listing,
)
from switchboard_localcluster.nodeagent.containerstate import Running, Terminated, snapshot_from_api

UID = "0b8e1c2a-1111-4222-8333-444455556666"
OTHER = "9f0e1d2c-aaaa-4bbb-8ccc-ddddeeeeffff"


def test_names_the_runtime_gives_parse_back_to_pod_and_container() -> None:
    assert parse_name(container_name("sfu", UID, "ab12cd34")) == (UID, "sfu")
    assert parse_name(holder_name(UID)) == (UID, PID_HOLDER)
    for foreign in ("nginx", "k8s_sfu", "k8s_a_b_c_d", "other_sfu_x_y"):
        assert parse_name(foreign) is None


def test_only_running_containers_are_handed_out_each_once() -> None:
    listing = json.dumps(
        [
            {"Names": [container_name("sfu", UID, "1")], "Id": "c1", "State": "running"},
            {"Names": [holder_name(UID)], "Id": "h1", "State": "running"},
            {"Names": [container_name("sfu", OTHER, "2")], "Id": "c2", "State": "exited"},
            {"Names": [container_name("app", OTHER, "3")], "Id": "c3", "State": "running"},
            {"Names": ["someone-elses"], "Id": "c4", "State": "running"},
        ]
    )
    found = survivors_from_listing(listing)
    assert {s.container_id for s in found} == {"c1", "h1", "c2", "c3"}
    survivors = Survivors(found)
    assert len(survivors) == 3
    claimed = survivors.claim(UID)
    assert {name: s.container_id for name, s in claimed.items()} == {"sfu": "c1", PID_HOLDER: "h1"}
    assert survivors.claim(UID) == {}
    assert [s.container_id for s in survivors.unclaimed()] == ["c3"]
    assert survivors.unclaimed() == []


def test_only_a_running_pod_is_adopted() -> None:
    assert adoptable({"status": {"phase": "Running"}})
    for phase in ("Pending", "Succeeded", "Failed", None):
        assert not adoptable({"status": {"phase": phase}})


def test_a_stored_container_status_carries_restarts_readiness_and_start_time() -> None:
    snapshot = snapshot_from_api(
        {
            "name": "sfu",
            "image": "switchboard/sfu:1",
            "imageID": "sha256:abc",
            "containerID": "podman://c1",
            "restartCount": 2,
            "ready": True,
            "started": True,
            "state": {"running": {"startedAt": "2026-01-02T03:04:05Z"}},
            "lastState": {
                "terminated": {
                    "exitCode": 137,
                    "reason": "Error",
                    "startedAt": "2026-01-02T03:00:00Z",
                    "finishedAt": "2026-01-02T03:04:00Z",
                }
            },
        }
    )
    assert snapshot.restart_count == 2 and snapshot.ready and snapshot.started
    assert isinstance(snapshot.state, Running)
    assert snapshot.state.started_at.isoformat() == "2026-01-02T03:04:05+00:00"
    assert isinstance(snapshot.last_state, Terminated) and snapshot.last_state.exit_code == 137
    # Round trip: the agent reports what it read.
    assert snapshot.to_api()["state"] == {"running": {"startedAt": "2026-01-02T03:04:05Z"}}
    assert snapshot.to_api()["containerID"] == "podman://c1"
