"""Fencing (reports unacknowledged beyond the failover timeout) and draining (SIGTERM or
the control plane's command): joins stop, clients are told to migrate (and where to rejoin),
readiness drops, and a draining process exits once its rooms are empty or the grace period
is over."""

from __future__ import annotations

import signal

import aiohttp

from fixtures.sfu_clients import SignallingClient, post_offer, sendonly_offer
from fixtures.sfu_harness import JOIN_API_URL, SFU_WAIT_SECONDS
from fixtures.waiting import eventually
from switchboard_api.contract import RoomAssignment, SfuEnv

ROOM = "default/standup"
REJOIN = f"{JOIN_API_URL}/v1/namespaces/default/rooms/standup/join"


async def readiness(sfu) -> int:
    status, _ = await sfu.get("/readyz")
    return status


async def test_unacknowledged_reports_fence_the_pod(start_sfu, receiver, token) -> None:
    receiver.failover_timeout_seconds = 2.0
    receiver.assignments = [RoomAssignment(room=ROOM, max_participants=5)]
    sfu = await start_sfu(report_url=receiver.url)
    await eventually(lambda: len(receiver.reports) >= 2, SFU_WAIT_SECONDS, "acknowledged reports")
    client, refused_client, later = (SignallingClient(sfu.ws_url) for _ in range(3))
    try:
        assert (await client.connect(token(room=ROOM, identity="a")))["type"] == "joined"

        receiver.acknowledge = False
        migrate = await client.next_of("migrate")
        await eventually(client.closed.is_set, SFU_WAIT_SECONDS, "the fenced SFU to disconnect")
        refused = await refused_client.connect(token(room=ROOM, identity="b"))
        await eventually(
            lambda: receiver.latest()["fenced"], SFU_WAIT_SECONDS, "a report saying fenced"
        )
        assert await readiness(sfu) == 503

        receiver.acknowledge = True
        await eventually(
            lambda: not receiver.latest()["fenced"], SFU_WAIT_SECONDS, "fencing to lift"
        )
        admitted = await later.connect(token(room=ROOM, identity="c"))
    finally:
        for c in (client, refused_client, later):
            await c.close()

    assert migrate == {"type": "migrate", "room": ROOM, "reason": "fenced", "rejoin": REJOIN}
    assert refused["error"] == "fenced"
    assert refused_client.close_code == 4503
    assert admitted["type"] == "joined"


async def test_unreachable_control_plane_fences_too(start_sfu, receiver, token) -> None:
    receiver.failover_timeout_seconds = 1.5
    sfu = await start_sfu(report_url=receiver.url)
    await eventually(lambda: receiver.reports, SFU_WAIT_SECONDS, "a first report")
    receiver.status = 503

    async def fenced() -> bool:
        return (await sfu.metrics())["switchboard_sfu_fenced"] == 1

    await eventually(fenced, SFU_WAIT_SECONDS, "the SFU to fence itself")
    client = SignallingClient(sfu.ws_url)
    try:
        refused = await client.connect(token(room=ROOM))
    finally:
        await client.close()
    assert refused["error"] == "fenced"


async def test_sigterm_drains_then_exits_when_the_room_empties(start_sfu, token) -> None:
    sfu = await start_sfu()  # stand-alone: it knows no join API to send clients back to
    client, newcomer = SignallingClient(sfu.ws_url), SignallingClient(sfu.ws_url)
    try:
        await client.connect(token(room=ROOM, identity="a"))
        sfu.signal(signal.SIGTERM)

        migrate = await client.next_of("migrate")
        assert await readiness(sfu) == 503
        refused = await newcomer.connect(token(room=ROOM, identity="b"))
        assert sfu.exited() is None  # still serving its room

        await client.send({"type": "leave"})
        await eventually(
            lambda: sfu.exited() is not None, SFU_WAIT_SECONDS, "the drained SFU to exit"
        )
    finally:
        await client.close()
        await newcomer.close()

    assert migrate == {"type": "migrate", "room": ROOM, "reason": "draining"}
    assert refused["error"] == "draining"
    assert sfu.exited() == 0


async def test_sockets_without_a_join_are_told_draining_at_once(start_sfu, token) -> None:
    """A socket still to send its join when the drain starts, and one opened while draining,
    are refused with `draining` (go back to the join API) without waiting for a join: not
    with `bad-request` when the join timeout passes, which a client takes as final, while
    the socket holds up the drained process's exit."""
    sfu = await start_sfu()
    member = SignallingClient(sfu.ws_url)
    async with aiohttp.ClientSession() as session:
        try:
            await member.connect(token(room=ROOM, identity="a"))
            waiting = await session.ws_connect(sfu.ws_url)
            sfu.signal(signal.SIGTERM)
            await member.next_of("migrate")
            told_waiting = await waiting.receive_json(timeout=SFU_WAIT_SECONDS)
            opened_later = await session.ws_connect(sfu.ws_url)
            told_later = await opened_later.receive_json(timeout=SFU_WAIT_SECONDS)
            await member.send({"type": "leave"})
            await eventually(
                lambda: sfu.exited() is not None, SFU_WAIT_SECONDS, "the drained SFU to exit"
            )
        finally:
            await member.close()

    assert told_waiting["error"] == told_later["error"] == "draining"
    assert sfu.exited() == 0


async def test_drain_grace_period_ends_remaining_sessions(start_sfu, token) -> None:
    sfu = await start_sfu(extra_env={SfuEnv.DRAIN_GRACE_SECONDS: "1"})
    client = SignallingClient(sfu.ws_url)
    try:
        await client.connect(token(room=ROOM))
        sfu.signal(signal.SIGTERM)
        await client.next_of("migrate")
        notice = await client.next_of("disconnected")
        await eventually(
            lambda: sfu.exited() is not None, SFU_WAIT_SECONDS, "exit after the grace period"
        )
    finally:
        await client.close()

    assert notice["reason"] == "draining"
    assert sfu.exited() == 0


async def test_drain_command_from_the_control_plane(start_sfu, receiver, token) -> None:
    receiver.assignments = [RoomAssignment(room=ROOM, max_participants=5)]
    sfu = await start_sfu(report_url=receiver.url)
    await eventually(lambda: len(receiver.reports) >= 2, SFU_WAIT_SECONDS, "assignments applied")
    client = SignallingClient(sfu.ws_url)
    try:
        await client.connect(token(room=ROOM))
        receiver.drain = True
        migrate = await client.next_of("migrate")
        await eventually(
            lambda: receiver.latest()["draining"], SFU_WAIT_SECONDS, "reports saying draining"
        )
        assert await readiness(sfu) == 503
        assert sfu.exited() is None
    finally:
        await client.close()

    assert migrate == {"type": "migrate", "room": ROOM, "reason": "draining", "rejoin": REJOIN}
    await eventually(
        lambda: sfu.exited() is not None, SFU_WAIT_SECONDS, "exit once the room is empty"
    )


async def test_migrate_counted_only_for_sessions_that_can_be_told(start_sfu, token) -> None:
    """A WHIP publisher has no message channel: draining tells the WebSocket participant
    and counts one migrate message, not two."""
    sfu = await start_sfu()
    client = SignallingClient(sfu.ws_url)
    pc, offer = await sendonly_offer("video")
    try:
        await client.connect(token(room=ROOM, identity="ws"))
        status, _, body = await post_offer(
            f"{sfu.base_url}/whip/{ROOM}", offer, token(room=ROOM, identity="whip")
        )
        assert status == 201, body
        sfu.signal(signal.SIGTERM)
        await client.next_of("migrate")
        metrics = await sfu.metrics()
    finally:
        await client.close()
        await pc.close()
    assert metrics["switchboard_sfu_migrate_messages_sent_total{reason=draining}"] == 1
