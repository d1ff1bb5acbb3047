"""Simulcast: a publisher sends three layers, each subscriber receives one of them, chosen by
its request or its bandwidth estimate, and sees one continuous stream across switches."""

from __future__ import annotations

import itertools
from collections import defaultdict

import pytest
from media_harness import DEADLINE_S

from fixtures.waiting import eventually

PUBLISHER = ("--role", "publisher", "--simulcast", "--no-audio")
PUBLISHER += ("--width", "640", "--height", "360", "--fps", "15")
SUBSCRIBER = ("--role", "subscriber", "--no-audio")
# Sends no REMB: only its request limits its layer (a bandwidth estimate never lowers it).
UNCONSTRAINED = (*SUBSCRIBER, "--no-remb")


def shifted_copy(sent: list[list], received: list[list]) -> bool:
    """True when every received packet is a sent one, payload untouched, with sequence numbers
    and timestamps shifted by one constant each (H.264 repeats payloads, so the shift is
    found from the first packet's candidates rather than by payload alone)."""
    sent_packets = {tuple(entry[:3]) for entry in sent}
    where: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for seq, ts, payload, *_ in sent:
        where[payload].append((seq, ts))
    first = received[0]
    for seq, ts in where[first[2]]:
        shift = ((first[0] - seq) & 0xFFFF, (first[1] - ts) & 0xFFFFFFFF)
        if all(
            ((r[0] - shift[0]) & 0xFFFF, (r[1] - shift[1]) & 0xFFFFFFFF, r[2]) in sent_packets
            for r in received
        ):
            return True
    return False


def increasing(received: list[list]) -> bool:
    return all(0 < (b[0] - a[0]) & 0xFFFF < 0x8000 for a, b in itertools.pairwise(received))


def layer_of(sent_layers: dict[str, list], received: list[list]) -> list[str]:
    """The layer each received packet's frame data was sent on ("?" if none)."""
    owner = {entry[3]: rid for rid, sent in sent_layers.items() for entry in sent}
    return [owner.get(entry[3], "?") for entry in received]


@pytest.mark.parametrize("video", ["vp8", "h264"])
async def test_each_layer_arrives_bit_identical(room, peers, video):
    publisher = await peers("publisher", *PUBLISHER, "--video", video)
    await room.join("alice", publisher)
    subscribers = {}
    for rid in ("q", "h", "f"):
        peer = await peers(f"wants-{rid}", *UNCONSTRAINED)
        await room.join(peer.name, peer)
        [subscription] = room.subscriptions[peer.name]
        subscription.request_layer(rid=rid)
        subscribers[rid] = peer

    reports = {
        rid: await eventually(
            peer.report,
            DEADLINE_S,
            f"{peer.name} to receive and decode its layer",
            until=lambda r: len(r["received"]["video"]) >= 60 and r["frames"]["video"] >= 10,
        )
        for rid, peer in subscribers.items()
    }
    sent_layers = (await publisher.report())["sent_layers"]
    # Simulcast is forwarded on the Python path even where the native one is built.
    assert not room.publication("video").native

    for rid, report in reports.items():
        received = report["received"]["video"]
        assert shifted_copy(sent_layers[rid], received), f"layer {rid} was not forwarded as sent"
        assert increasing(received), f"layer {rid}: reordered"
    assert room.counters.layer_switches == 0


@pytest.mark.parametrize("video", ["vp8", "h264"])
async def test_a_subscriber_with_little_bandwidth_gets_a_lower_layer_until_it_lifts(
    room, peers, video
):
    publisher = await peers("publisher", *PUBLISHER, "--video", video)
    await room.join("alice", publisher)
    roomy = await peers("roomy", *UNCONSTRAINED)
    await room.join("roomy", roomy)
    # Its REMB says 250 kbit/s: the 400 kbit/s and 1 Mbit/s layers do not fit.
    narrow = await peers("narrow", *SUBSCRIBER, "--remb-limit", "250000")
    await room.join("narrow", narrow)
    [roomy_subscription] = room.subscriptions["roomy"]
    [narrow_subscription] = room.subscriptions["narrow"]

    async def layers() -> tuple[str | None, str | None]:
        return tuple(
            s.layer.rid if s.layer is not None else None
            for s in (roomy_subscription, narrow_subscription)
        )

    await eventually(layers, DEADLINE_S, "roomy on f, narrow on q", until=lambda x: x == ("f", "q"))
    # Held back by its estimate alone, narrow is probed: padding lets an estimate grow.
    before = await eventually(
        narrow.report,
        DEADLINE_S,
        "narrow to decode frames and be probed",
        until=lambda r: r["frames"]["video"] >= 20 and r["padding_bytes"] > 0,
    )
    assert narrow_subscription.layer.rid == "q" and room.counters.padding_packets_sent > 0

    await narrow.send({"cmd": "remb_limit", "bps": 0})
    await narrow.expect("remb_limit")
    await eventually(layers, 90, "narrow to switch up", until=lambda x: x[1] != "q")
    after = await eventually(
        narrow.report,
        DEADLINE_S,
        "narrow to decode the higher layer",
        until=lambda r: r["frames"]["video"] >= before["frames"]["video"] + 30,
    )
    sent_layers = (await publisher.report())["sent_layers"]

    received = after["received"]["video"]
    owners = layer_of(sent_layers, received)
    assert "?" not in owners
    # One stream: the layers follow each other, sequence numbers run on across each switch.
    assert "q" in owners and owners[-1] != "q"
    assert increasing(received)
    switches = [i for i in range(1, len(owners)) if owners[i] != owners[i - 1]]
    for i in switches:
        before, first = received[i - 1], received[i]
        assert (first[0] - before[0]) & 0xFFFF == 1, "sequence numbers jump at a switch"
        assert 0 < (first[1] - before[1]) & 0xFFFFFFFF < 90000, "time runs back at a switch"
        if video == "vp8":
            assert first[4] == (before[4] + 1) & 0x7FFF, "VP8 picture ids jump at a switch"
    assert (await publisher.report())["keyframe_requests"], "no keyframe asked for the switch"
    print(
        f"\nnarrow subscriber: up from q to {narrow_subscription.layer.rid} "
        f"{1000 * narrow_subscription.last_switch_s:.0f} ms after the layer was chosen"
    )


async def test_layers_nobody_receives_are_not_forwarded_and_are_paused(room, peers):
    publisher = await peers("publisher", *PUBLISHER)
    await room.join("alice", publisher)
    needed: list[tuple[str, ...]] = []
    room.publication("video").layers_needed = lambda publication, rids: needed.append(rids)
    viewers = []
    for name in ("small-1", "small-2"):
        peer = await peers(name, *SUBSCRIBER)
        await room.join(name, peer)
        room.subscriptions[name][0].request_layer(max_height=100)
        viewers.append(peer)
    for peer in viewers:
        await eventually(
            peer.report, DEADLINE_S, "frames", until=lambda r: r["frames"]["video"] >= 20
        )

    # The publisher would be told it may stop the layers nobody needs.
    async def latest_needed() -> tuple[str, ...] | None:
        return needed[-1] if needed else None

    await eventually(
        latest_needed, DEADLINE_S, "only q to be needed", until=lambda rids: rids == ("q",)
    )

    await publisher.send({"cmd": "stop_media"})
    sent_layers = (await publisher.expect("stopped"))["sent_layers"]

    async def delivered() -> int:
        reports = [await peer.report() for peer in viewers]
        return sum(len(report["received"]["video"]) for report in reports)

    await eventually(
        delivered,
        DEADLINE_S,
        "every forwarded packet to arrive",
        until=lambda total: total == room.counters.rtp_packets_sent,
    )
    for peer in viewers:
        owners = layer_of(sent_layers, (await peer.report())["received"]["video"])
        assert set(owners) == {"q"}, f"{peer.name} got packets of other layers"
    assert room.counters.rtp_packets_sent <= 2 * len(sent_layers["q"])
