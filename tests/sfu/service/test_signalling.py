"""WebSocket signalling end to end: participants join a room, publish, receive each
other's media and data, see each other come and go."""

from __future__ import annotations

import asyncio
import re

from fixtures.sfu_clients import (
    SignallingClient,
    SyntheticAudio,
    SyntheticVideo,
    loopback_peer,
    sendonly_offer,
)
from fixtures.sfu_harness import SFU_WAIT_SECONDS
from fixtures.waiting import eventually
from switchboard_api.contract import JoinGrants, RoomAssignment


async def test_published_media_reaches_a_subscriber(sfu, token) -> None:
    alice, bob = SignallingClient(sfu.ws_url), SignallingClient(sfu.ws_url)
    try:
        await alice.connect(token(identity="alice"))
        answer = await alice.publish(SyntheticVideo(), SyntheticAudio())
        bob_joined = await bob.connect(token(identity="bob"))

        published = {track["trackId"]: track for track in answer["tracks"]}
        assert {track["kind"] for track in published.values()} == {"audio", "video"}
        assert {t["trackId"] for t in bob_joined["tracks"]} == set(published)
        assert [p["identity"] for p in bob_joined["participants"]] == ["alice"]

        await eventually(
            lambda: (
                set(bob.received) == set(published)
                and all(counter.frames >= 5 for counter in bob.received.values())
            ),
            SFU_WAIT_SECONDS,
            "bob to decode frames of both of alice's tracks",
        )
        metrics = await sfu.metrics()
        assert metrics["switchboard_sfu_published_tracks"] == 2
        assert metrics["switchboard_sfu_forwarded_tracks"] == 2
        assert metrics["switchboard_sfu_rtp_sent_packets_total"] > 0
        assert metrics["switchboard_sfu_load_units"] == 1.1  # one video + one audio stream

        joined_event = await alice.next_of("participantJoined")
        assert joined_event["participant"]["identity"] == "bob"
    finally:
        await alice.close()
    try:
        left = await bob.next_of("participantLeft")
        unpublished = bob.of_type("trackUnpublished")
    finally:
        await bob.close()

    assert left["identity"] == "alice"
    assert {m["trackId"] for m in unpublished} == set(published)


async def test_late_publication_is_offered_to_auto_subscribers(sfu, token) -> None:
    alice, bob = SignallingClient(sfu.ws_url), SignallingClient(sfu.ws_url)
    try:
        await bob.connect(token(identity="bob"))
        await alice.connect(token(identity="alice"))
        await alice.publish(SyntheticVideo())

        event = await bob.next_of("trackPublished")
        assert event["track"]["identity"] == "alice"
        await eventually(
            lambda: (
                event["track"]["trackId"] in bob.received
                and bob.received[event["track"]["trackId"]].frames > 0
            ),
            SFU_WAIT_SECONDS,
            "bob to receive alice's video",
        )
    finally:
        await alice.close()
        await bob.close()


async def test_explicit_subscribe_and_unsubscribe(sfu, token) -> None:
    alice, bob = SignallingClient(sfu.ws_url), SignallingClient(sfu.ws_url)
    try:
        await alice.connect(token(identity="alice"))
        answer = await alice.publish(SyntheticVideo())
        track_id = answer["tracks"][0]["trackId"]
        await bob.connect(token(identity="bob"), autoSubscribe=False)

        await bob.send({"type": "subscribe", "trackIds": [track_id]})
        await eventually(
            lambda: track_id in bob.received and bob.received[track_id].frames > 0,
            SFU_WAIT_SECONDS,
            "bob's explicit subscription to deliver frames",
        )
        await bob.send({"type": "unsubscribe", "trackIds": [track_id]})
        await eventually(
            lambda: _forwarded_tracks(sfu, 0.0),
            SFU_WAIT_SECONDS,
            "the SFU to stop forwarding to bob",
        )

        await bob.send({"type": "subscribe", "trackIds": ["no-such-track"]})
        error = await bob.next_of("error")
        assert error["error"] == "track-not-found"
    finally:
        await alice.close()
        await bob.close()


async def test_video_layer_requests_are_checked(sfu, token) -> None:
    alice, bob = SignallingClient(sfu.ws_url), SignallingClient(sfu.ws_url)
    try:
        await alice.connect(token(identity="alice"))
        track_id = (await alice.publish(SyntheticVideo()))["tracks"][0]["trackId"]
        await bob.connect(token(identity="bob"))
        await eventually(lambda: track_id in bob.received, SFU_WAIT_SECONDS, "bob's subscription")

        bad = [
            ({"trackId": "no-such-track"}, "track-not-found"),
            ({"trackId": track_id, "rid": "f"}, "bad-request"),  # not a simulcast track
            ({"trackId": track_id, "maxHeight": 0}, "bad-request"),
            ({"trackId": track_id, "maxHeight": "720"}, "bad-request"),
        ]
        for fields, code in bad:
            seen = len(bob.messages)
            await bob.send({"type": "setVideoLayer", **fields})
            error = await bob.next_of("error", after=seen)
            assert error["error"] == code, fields
        # A ceiling on a track with one layer is accepted (and changes nothing).
        seen = len(bob.messages)
        await bob.send({"type": "setVideoLayer", "trackId": track_id, "maxHeight": 360})
        await bob.send({"type": "ping"})
        await bob.next_of("pong", after=seen)
        assert not [m for m in bob.messages[seen:] if m["type"] == "error"]
    finally:
        await alice.close()
        await bob.close()


async def _forwarded_tracks(sfu, expected: float) -> bool:
    return (await sfu.metrics())["switchboard_sfu_forwarded_tracks"] == expected


async def test_data_messages_reach_the_room(sfu, token) -> None:
    alice, bob = SignallingClient(sfu.ws_url), SignallingClient(sfu.ws_url)
    received: list[str] = []
    try:
        await alice.connect(token(identity="alice"))
        await bob.connect(token(identity="bob"))
        alice_pc, bob_pc = loopback_peer(), loopback_peer()
        alice.publisher_pc, bob.publisher_pc = alice_pc, bob_pc
        alice_channel = alice_pc.createDataChannel("chat")
        bob_channel = bob_pc.createDataChannel("chat")
        bob_channel.on("message", received.append)
        for client in (alice, bob):
            reply = await client.publish()
            assert reply["type"] == "answer"
        await eventually(
            lambda: alice_channel.readyState == "open" and bob_channel.readyState == "open",
            SFU_WAIT_SECONDS,
            "both data channels to open",
        )

        alice_channel.send("hello room")
        await eventually(lambda: received, SFU_WAIT_SECONDS, "bob to receive alice's message")
        assert received == ["hello room"]
    finally:
        await alice.close()
        await bob.close()


async def test_data_channel_needs_the_data_grant(sfu, token) -> None:
    client = SignallingClient(sfu.ws_url)
    try:
        await client.connect(token(grants=JoinGrants(publish=True, subscribe=True, data=False)))
        client.publisher_pc = loopback_peer()
        client.publisher_pc.createDataChannel("chat")
        reply = await client.publish()
    finally:
        await client.close()

    assert reply["type"] == "error"
    assert reply["error"] == "missing-grant"


async def test_metadata_updates_are_broadcast(sfu, token) -> None:
    alice, bob = SignallingClient(sfu.ws_url), SignallingClient(sfu.ws_url)
    try:
        await alice.connect(token(identity="alice"), metadata="camera-left")
        bob_joined = await bob.connect(token(identity="bob"))
        await alice.send({"type": "setMetadata", "metadata": "presenting"})
        update = await bob.next_of("participantUpdated")
    finally:
        await alice.close()
        await bob.close()

    assert bob_joined["participants"][0]["metadata"] == "camera-left"
    assert update["participant"]["identity"] == "alice"
    assert update["participant"]["metadata"] == "presenting"


async def test_same_identity_replaces_the_older_session(sfu, token) -> None:
    first, second = SignallingClient(sfu.ws_url), SignallingClient(sfu.ws_url)
    try:
        await first.connect(token(identity="alice"))
        await second.connect(token(identity="alice"))
        notice = await first.next_of("disconnected")
        await asyncio.wait_for(first.closed.wait(), 10)
        metrics = await sfu.metrics()
    finally:
        await first.close()
        await second.close()

    assert notice["reason"] == "duplicate-identity"
    assert metrics["switchboard_sfu_participants"] == 1


async def test_room_participant_limit(start_sfu, token, receiver) -> None:
    receiver.assignments = [RoomAssignment(room="default/small", max_participants=1)]
    sfu = await start_sfu(report_url=receiver.url)
    # The second report leaves after the first response (with the assignment) was applied.
    await eventually(
        lambda: len(receiver.reports) >= 2, SFU_WAIT_SECONDS, "the assignment to be applied"
    )
    first, second = SignallingClient(sfu.ws_url), SignallingClient(sfu.ws_url)
    try:
        assert (await first.connect(token(room="default/small", identity="a")))["type"] == "joined"
        refused = await second.connect(token(room="default/small", identity="b"))
    finally:
        await first.close()
        await second.close()

    assert refused["error"] == "room-full"


async def test_a_rejected_offer_leaves_the_session_usable(sfu, token) -> None:
    client = SignallingClient(sfu.ws_url)
    try:
        await client.connect(token(identity="alice"))
        _, offer = await sendonly_offer("video")
        # An offer whose only codec the SFU does not forward.
        unsupported = re.sub(r"VP8/90000", "VP9/90000", offer)
        unsupported = re.sub(r"H264/90000", "H265/90000", unsupported)
        await client.send({"type": "publish", "sdp": unsupported, "requestId": "bad"})
        error = await client.next_of("error")

        answer = await client.publish(SyntheticVideo())
    finally:
        await client.close()

    assert error["requestId"] == "bad"
    assert error["error"] in ("codec-mismatch", "bad-request")
    assert answer["type"] == "answer"
    assert [t["kind"] for t in answer["tracks"]] == ["video"]


async def test_trickled_candidates_are_accepted(sfu, token) -> None:
    client = SignallingClient(sfu.ws_url)
    candidate = {
        "candidate": "candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host",
        "sdpMid": "0",
        "sdpMLineIndex": 0,
    }
    try:
        await client.connect(token(identity="alice"))
        await client.publish(SyntheticVideo())
        await client.send({"type": "candidate", "target": "publisher", "candidate": candidate})
        await client.send({"type": "candidate", "target": "publisher", "candidate": None})
        await client.send(
            {"type": "candidate", "target": "subscriber", "candidate": candidate, "requestId": 7}
        )
        await client.send({"type": "ping", "requestId": "done"})
        await client.next_of("pong")
    finally:
        await client.close()

    # Only the candidate for a connection that does not exist yet was an error.
    assert [(e["error"], e.get("requestId")) for e in client.of_type("error")] == [
        ("bad-request", 7)
    ]
