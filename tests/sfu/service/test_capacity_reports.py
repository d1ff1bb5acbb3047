"""Capacity reports reach the control plane on the configured interval with a fresh bearer
token, describe the pod and its rooms, and carry the control plane's commands back."""

from __future__ import annotations

import itertools
import statistics

from fixtures.sfu_clients import SignallingClient
from fixtures.sfu_harness import JOIN_API_URL, SFU_WAIT_SECONDS, JoinKeys, processes_with
from fixtures.waiting import eventually
from switchboard_api.contract import CapacityReport, RoomAssignment, SfuEnv

INTERVAL = 0.5  # SWITCHBOARD_REPORT_INTERVAL_SECONDS in the harness


async def test_reports_arrive_on_the_interval_and_stop_when_killed(
    start_sfu, receiver, pod
) -> None:
    sfu = await start_sfu(report_url=receiver.url)
    await eventually(lambda: len(receiver.reports) >= 6, SFU_WAIT_SECONDS, "six reports")

    arrivals = [arrived for arrived, _, _ in receiver.reports]
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    assert max(gaps) <= 2.0  # the contract's ceiling
    assert statistics.median(gaps) >= INTERVAL * 0.8  # on the schedule, not in a loop

    reports = [CapacityReport.model_validate(body) for _, body, _ in receiver.reports]
    assert [r.sequence for r in reports] == list(range(len(reports)))
    first = reports[0]
    assert (first.pod_name, first.pod_uid, first.namespace, first.region) == (
        pod.name,
        pod.uid,
        pod.namespace,
        pod.region,
    )
    assert first.capacity == 20
    assert not first.draining
    assert not first.fenced
    assert {auth for _, _, auth in receiver.reports} == {"Bearer report-token-1"}

    sfu.stop()
    # Nothing that carries the pod's identity is left to report: no helper outlives the SFU.
    assert processes_with(f"{SfuEnv.POD_UID.value}={pod.uid}") == []


async def test_token_file_is_read_fresh_for_every_report(start_sfu, receiver) -> None:
    sfu = await start_sfu(report_url=receiver.url)
    await eventually(lambda: receiver.reports, SFU_WAIT_SECONDS, "a first report")

    (sfu.workdir / "report-token").write_text("rotated-token-2\n")

    await eventually(
        lambda: receiver.reports[-1][2] == "Bearer rotated-token-2",
        SFU_WAIT_SECONDS,
        "a report with the rotated token",
    )


async def test_reports_name_the_join_keys_the_pod_holds_now(start_sfu, receiver, join_keys) -> None:
    """The control plane signs a pod's tokens only with keys its reports list, so the list
    follows the mounted directory: a key added is listed, a key removed is not."""
    await start_sfu(report_url=receiver.url)

    def held() -> list[str] | None:
        return CapacityReport.model_validate(receiver.reports[-1][1]).join_key_ids

    await eventually(
        lambda: receiver.reports and held() == [join_keys.kid], SFU_WAIT_SECONDS, "the key held"
    )
    added = JoinKeys(join_keys.directory, kid="test-key-2")
    await eventually(
        lambda: held() == [join_keys.kid, added.kid], SFU_WAIT_SECONDS, "the added key listed"
    )
    (join_keys.directory / f"{join_keys.kid}.pub").unlink()
    await eventually(lambda: held() == [added.kid], SFU_WAIT_SECONDS, "the removed key unlisted")


async def test_reports_describe_rooms_and_emptiness(start_sfu, receiver, token) -> None:
    receiver.assignments = [
        RoomAssignment(room="default/standup", max_participants=5),
        RoomAssignment(room="default/planned", max_participants=5),
    ]
    sfu = await start_sfu(report_url=receiver.url)

    def rooms() -> dict[str, dict]:
        latest = receiver.latest() or {}
        return {room["room"]: room for room in latest.get("rooms", [])}

    # Assigned rooms exist before anyone joins, and are reported empty.
    await eventually(
        lambda: set(rooms()) == {"default/standup", "default/planned"}, SFU_WAIT_SECONDS, "rooms"
    )
    assert rooms()["default/planned"]["emptySinceSeconds"] >= 0

    client = SignallingClient(sfu.ws_url)
    try:
        await client.connect(token(room="default/standup"))
        await eventually(
            lambda: (
                rooms()["default/standup"]["participants"] == 1
                and "emptySinceSeconds" not in rooms()["default/standup"]
            ),
            SFU_WAIT_SECONDS,
            "a report with the participant",
        )
        assert receiver.latest()["participants"] == 1
    finally:
        await client.close()

    await eventually(
        lambda: (
            rooms()["default/standup"]["participants"] == 0
            and rooms()["default/standup"].get("emptySinceSeconds") is not None
        ),
        SFU_WAIT_SECONDS,
        "the room reported empty again",
    )


async def test_close_command_disconnects_with_migrate_closing(start_sfu, receiver, token) -> None:
    receiver.assignments = [RoomAssignment(room="default/standup", max_participants=5)]
    sfu = await start_sfu(report_url=receiver.url)
    await eventually(lambda: len(receiver.reports) >= 2, SFU_WAIT_SECONDS, "assignments applied")
    client = SignallingClient(sfu.ws_url)
    try:
        await client.connect(token(room="default/standup"))
        receiver.assignments = []
        receiver.close = ["default/standup"]
        migrate = await client.next_of("migrate")
        notice = await client.next_of("disconnected")
        await eventually(client.closed.is_set, SFU_WAIT_SECONDS, "the socket to close")
    finally:
        await client.close()

    # The room is over: there is nothing to rejoin.
    assert migrate == {"type": "migrate", "room": "default/standup", "reason": "closing"}
    assert notice["reason"] == "closing"
    await eventually(
        lambda: "default/standup" not in {r["room"] for r in receiver.latest()["rooms"]},
        SFU_WAIT_SECONDS,
        "the closed room to leave the reports",
    )


async def test_unassigned_room_is_moved_away(start_sfu, receiver, token) -> None:
    receiver.assignments = [RoomAssignment(room="default/standup", max_participants=5)]
    sfu = await start_sfu(report_url=receiver.url)
    await eventually(lambda: len(receiver.reports) >= 2, SFU_WAIT_SECONDS, "assignments applied")
    client = SignallingClient(sfu.ws_url)
    late = SignallingClient(sfu.ws_url)
    try:
        issued_before_move = token(room="default/standup", identity="late")
        await client.connect(token(room="default/standup"))
        receiver.assignments = []
        migrate = await client.next_of("migrate")
        # A token issued before the room moved cannot bring it back here.
        refused = await late.connect(issued_before_move)
    finally:
        await client.close()
        await late.close()

    assert migrate["reason"] == "room-moved"
    assert migrate["rejoin"] == f"{JOIN_API_URL}/v1/namespaces/default/rooms/standup/join"
    assert refused["error"] == "room-not-assigned"
