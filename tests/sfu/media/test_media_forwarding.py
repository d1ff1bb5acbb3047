"""Packets a publisher sends reach every subscriber bit for bit: nothing is transcoded."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from media_harness import DEADLINE_S, RoomUnderTest

from fixtures.waiting import eventually
from switchboard_sfu.media import ForwardingSettings


def positions_in(sent: list[list], received: list[list], what: str) -> list[int]:
    """Where each received payload sits in the publisher's output (fails on any unknown one).

    A payload can be sent more than once (H.264 repeats its SPS/PPS before every keyframe):
    each received one is matched to the earliest identical payload not before the previous
    match, so only a payload that really arrived out of order maps backwards. The first match
    is anchored on the first payload sent only once: a subscriber that joined at a later
    keyframe starts at that keyframe's SPS/PPS, not the first one."""
    occurrences: dict[str, list[int]] = {}
    for i, entry in enumerate(sent):
        occurrences.setdefault(entry[2], []).append(i)
    unknown = [entry for entry in received if entry[2] not in occurrences]
    assert not unknown, f"{what}: {len(unknown)} payloads never sent by the publisher"
    positions: list[int] = []
    last = 0
    anchor = next((i for i, e in enumerate(received) if len(occurrences[e[2]]) == 1), None)
    if anchor is not None and received:
        bound = occurrences[received[anchor][2]][0] - anchor
        last = max([i for i in occurrences[received[0][2]] if i <= bound], default=0)
    for entry in received:
        candidates = occurrences[entry[2]]
        last = next((i for i in candidates if i >= last), candidates[-1])
        positions.append(last)
    return positions


@pytest.fixture(params=["native", "python"])
async def forwarding_room(request) -> AsyncIterator[RoomUnderTest]:
    """A room forwarding on the native fast path, or on the pure-Python reference path."""
    room = RoomUnderTest(ForwardingSettings(native_forwarding=request.param == "native"))
    room.path = request.param
    yield room
    await room.close()


@pytest.mark.parametrize("video", ["vp8", "h264"])
async def test_payloads_arrive_bit_identical_at_every_subscriber(forwarding_room, peers, video):
    room = forwarding_room
    publisher = await peers("publisher", "--role", "publisher", "--video", video)
    await room.join("alice", publisher)
    subscribers = []
    for name in ("bob", "carol"):
        peer = await peers(name, "--role", "subscriber")
        await room.join(name, peer)
        subscribers.append(peer)

    reports = []
    for peer in subscribers:
        reports.append(
            await eventually(
                peer.report,
                DEADLINE_S,
                f"{peer.name} to receive media",
                until=lambda r: (
                    len(r["received"]["video"]) >= 90 and len(r["received"]["audio"]) >= 50
                ),
            )
        )
    sent = (await publisher.report())["sent"]

    for peer, report in zip(subscribers, reports, strict=True):
        for kind in ("audio", "video"):
            received = report["received"][kind]
            positions = positions_in(sent[kind], received, f"{peer.name} {kind}")
            assert positions == sorted(positions), f"{peer.name} {kind}: reordered"
            # Sequence numbers and timestamps are rewritten by a constant offset per subscriber.
            seq_offsets = {
                (r[0] - sent[kind][p][0]) & 0xFFFF for r, p in zip(received, positions, strict=True)
            }
            ts_offsets = {
                (r[1] - sent[kind][p][1]) & 0xFFFFFFFF
                for r, p in zip(received, positions, strict=True)
            }
            assert len(seq_offsets) == 1 and len(ts_offsets) == 1, (peer.name, kind)
        assert report["frames"]["video"] > 0 and report["frames"]["audio"] > 0
    native = room.path == "native"
    assert all(p.native == native for p in room.publications["alice"]), room.path
    for name in ("bob", "carol"):
        assert all(s.native == native for s in room.subscriptions[name]), (name, room.path)


@pytest.mark.parametrize("video", ["vp8", "h264"])
async def test_sfu_offers_a_new_publication_pinned_to_the_publishers_codec(room, peers, video):
    subscriber = await peers(
        "bob", "--role", "subscriber", "--video", "none", "--no-audio", "--data", "reliable"
    )
    await room.join("bob", subscriber)
    publisher = await peers("publisher", "--role", "publisher", "--video", video)
    await room.join("alice", publisher)
    for kind in ("video", "audio"):
        await room.offer_subscription("bob", subscriber, room.publication(kind))

    report = await eventually(
        subscriber.report,
        DEADLINE_S,
        "renegotiated media to decode",
        until=lambda r: r["frames"]["video"] >= 10 and r["frames"]["audio"] >= 10,
    )
    sent = (await publisher.report())["sent"]
    for kind in ("video", "audio"):
        positions = positions_in(sent[kind], report["received"][kind], kind)
        assert positions == sorted(positions)
    offered = room.pcs["bob"].localDescription.sdp
    assert f"{video.upper()}/90000" in offered
    assert ("VP8/90000" in offered) == (video == "vp8"), "only the publisher's codec is offered"
