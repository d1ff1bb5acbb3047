"""RTCP between subscribers and the publisher: keyframes for late joiners, retransmissions,
sender reports for lip-sync and the bitrate bound."""

from __future__ import annotations

import time

from media_harness import DEADLINE_S, RoomUnderTest
from test_media_forwarding import positions_in

from fixtures.waiting import eventually
from switchboard_sfu.media import ForwardingSettings

SENDER_CLOCK_SLACK_S = 1.0
"""Far below the error of a broken clock mapping; above the lateness of a loaded sender."""


async def test_late_joiner_gets_a_keyframe_requested_and_decodes_from_it(room, peers):
    publisher = await peers("publisher", "--role", "publisher", "--no-audio")
    await room.join("alice", publisher)
    early = await peers("early", "--role", "subscriber", "--no-audio")
    await room.join("early", early)
    # Let the stream run past its first keyframe: the late joiner must need a new one.
    await eventually(
        early.report, DEADLINE_S, "early frames", until=lambda r: r["frames"]["video"] >= 60
    )
    requests_before = len((await publisher.report())["keyframe_requests"])

    late = await peers("late", "--role", "subscriber", "--no-audio")
    await room.join("late", late)
    report = await eventually(
        late.report, DEADLINE_S, "late frames", until=lambda r: r["frames"]["video"] >= 10
    )
    requests = (await publisher.report())["keyframe_requests"]

    assert len(requests) > requests_before, "the publisher was not asked for a keyframe"
    assert report["first_payload_keyframe"], "the late joiner's stream did not start at a keyframe"
    first = report["first_frame"]["video"]
    request_at = min(t for t in requests[requests_before:] if t >= report["joined_at"])
    print(
        f"\nlate joiner: keyframe requested {1000 * (request_at - report['joined_at']):.0f} ms "
        f"after its answer; first frame decoded "
        f"{1000 * (first['at'] - report['joined_at']):.0f} ms after its answer, "
        f"{1000 * (first['at'] - request_at):.0f} ms after the request"
    )


async def test_a_nacked_packet_is_retransmitted_unchanged(room, peers):
    publisher = await peers("publisher", "--role", "publisher", "--no-audio")
    await room.join("alice", publisher)
    # The subscriber discards its 40th video packet as if the network had lost it.
    lossy = await peers("lossy", "--role", "subscriber", "--no-audio", "--drop-video-packet", "40")
    await room.join("lossy", lossy)

    report = await eventually(
        lossy.report,
        DEADLINE_S,
        "the dropped packet to be retransmitted",
        until=lambda r: (
            r["dropped"] and any(x["seq"] == r["dropped"]["seq"] for x in r["repaired"])
        ),
    )
    dropped = report["dropped"]
    repairs = [x for x in report["repaired"] if x["seq"] == dropped["seq"]]
    assert all(x["digest"] == dropped["digest"] for x in repairs)
    assert room.counters.nacks_received >= 1
    assert room.counters.retransmissions_sent >= 1


async def test_sender_reports_carry_the_publishers_clock(room, peers):
    publisher = await peers("publisher", "--role", "publisher")
    await room.join("alice", publisher)
    subscriber = await peers("subscriber", "--role", "subscriber")
    await room.join("bob", subscriber)

    def has_reports(report: dict) -> bool:
        kinds = [r["kind"] for r in report["received_reports"]]
        return kinds.count("video") >= 2 and kinds.count("audio") >= 2

    received = await eventually(subscriber.report, DEADLINE_S, "sender reports", until=has_reports)
    sent = await publisher.report()
    clock_rates = {"audio": 48000, "video": 90000}
    for kind, clock_rate in clock_rates.items():
        # The subscriber's RTP clock is the publisher's shifted by the forwarding offset.
        position = positions_in(sent["sent"][kind], received["received"][kind][:1], kind)[0]
        offset = received["received"][kind][0][1] - sent["sent"][kind][position][1]
        reference = [r for r in sent["sent_reports"] if r["kind"] == kind][-1]
        for report in (r for r in received["received_reports"] if r["kind"] == kind):
            assert report["ntp"] != 0 and report["packets"] > 0
            rtp_at_publisher = (report["rtp"] - offset) & 0xFFFFFFFF
            rtp_delta = ((rtp_at_publisher - reference["rtp"] + 2**31) % 2**32) - 2**31
            ntp_delta = (report["ntp"] - reference["ntp"]) / 2**32
            # The NTP/RTP pairs agree with the publisher's. A wrong offset or the SFU's own
            # clock would be off by far more than this (a random 32-bit RTP start is hours
            # off); aiortc itself pairs the last sent packet's RTP time with the wall clock
            # when it writes the report, so on a loaded machine its own pairs drift by its
            # event loop's lateness (0.33 s seen at load 27).
            assert abs(rtp_delta / clock_rate - ntp_delta) < SENDER_CLOCK_SLACK_S, (
                kind,
                report,
                reference,
            )


async def test_publisher_bitrate_is_bound_by_the_slowest_subscriber(peers):
    room = RoomUnderTest(ForwardingSettings(max_publisher_bitrate_bps=2_000_000))
    try:
        publisher = await peers("publisher", "--role", "publisher", "--no-audio")
        await room.join("alice", publisher)
        fast = await peers("fast", "--role", "subscriber", "--no-audio")
        await room.join("fast", fast)
        slow = await peers("slow", "--role", "subscriber", "--no-audio", "--remb-limit", "150000")
        await room.join("slow", slow)
        joined = time.monotonic()
        report = await eventually(
            publisher.report,
            DEADLINE_S,
            "the slow subscriber's bound to reach the publisher",
            until=lambda r: any(b <= 150_000 for b in r["rembs"]),
        )
        assert max(report["rembs"]) <= 2_000_000, "the configured cap was exceeded"
        print(f"\nREMB bound reached the publisher within {time.monotonic() - joined:.1f} s")
    finally:
        await room.close()


async def test_end_to_end_encrypted_payloads_pass_through(room, peers):
    key = "90"
    publisher = await peers("publisher", "--role", "publisher", "--no-audio", "--xor-key", key)
    await room.join("alice", publisher)
    subscriber = await peers("subscriber", "--role", "subscriber", "--no-audio", "--xor-key", key)
    await room.join("bob", subscriber)

    # Only a subscriber holding the key can decode: frames prove the payload was untouched.
    report = await eventually(
        subscriber.report,
        DEADLINE_S,
        "decrypted frames",
        until=lambda r: r["frames"]["video"] >= 30,
    )
    sent = (await publisher.report())["sent"]["video"]
    positions = positions_in(sent, report["received"]["video"], "encrypted video")
    assert positions == sorted(positions)
