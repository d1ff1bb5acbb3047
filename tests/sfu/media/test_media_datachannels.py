"""Data-channel messages reach the rest of the room; a stalled receiver is dropped, not buffered."""

from __future__ import annotations

import os
import signal

from media_harness import DEADLINE_S, RoomUnderTest, rss_bytes

from fixtures.waiting import eventually
from switchboard_sfu.media import DropReason, ForwardingSettings

DATA_ONLY = ("--role", "subscriber", "--video", "none", "--no-audio")


async def test_messages_reach_every_other_participant_reliably_and_unreliably(room, peers):
    members = {}
    for name in ("alice", "bob", "carol"):
        members[name] = await peers(name, *DATA_ONLY, "--data", "reliable", "unreliable")
        await room.join(name, members[name])
    await eventually(
        lambda: _channel_count(room, members),
        DEADLINE_S,
        "every participant's two channels to open at the SFU",
        until=lambda count: count == 6,
    )

    await members["alice"].send({"cmd": "send_data", "label": "reliable", "count": 200})
    await members["alice"].send({"cmd": "send_data", "label": "unreliable", "count": 200})

    for name in ("bob", "carol"):
        report = await eventually(
            members[name].report,
            DEADLINE_S,
            f"{name} to receive alice's messages",
            until=lambda r: (
                len(r["message_indexes"]["reliable"]) == 200 and r["message_indexes"]["unreliable"]
            ),
        )
        assert report["message_indexes"]["reliable"] == list(range(200)), "reliable: in order"
        unreliable = report["message_indexes"]["unreliable"]
        assert set(unreliable) <= set(range(200))
    own = await members["alice"].report()
    assert own["message_indexes"] == {"reliable": [], "unreliable": []}, "echoed to the sender"


async def test_a_stalled_data_channel_gets_its_participant_dropped_with_bounded_memory(peers):
    bound = 256 * 1024
    room = RoomUnderTest(ForwardingSettings(max_data_channel_buffered_bytes=bound))
    try:
        members = {}
        for name in ("alice", "bob", "carol"):
            members[name] = await peers(name, *DATA_ONLY, "--data", "reliable")
            await room.join(name, members[name])
        await eventually(
            lambda: _channel_count(room, members),
            DEADLINE_S,
            "channels",
            until=lambda count: count == 3,
        )
        channel_to_bob = room.media.data_channels("bob")["reliable"]
        rss_before = rss_bytes()

        # bob's process freezes: it stops acknowledging, the SFU's channel to it backs up.
        # alice sends bursts well under the bound, paced by carol, a healthy receiver.
        burst, size, bursts = 8, 16 * 1024, 12
        os.kill(members["bob"].pid, signal.SIGSTOP)
        try:
            peak = 0
            for sent in range(1, bursts + 1):
                await members["alice"].send(
                    {"cmd": "send_data", "label": "reliable", "count": burst, "size": size}
                )
                await members["alice"].expect("sent_data")
                peak = max(peak, channel_to_bob.bufferedAmount)
                report = await eventually(
                    members["carol"].report,
                    DEADLINE_S,
                    "carol to receive the burst",
                    until=lambda r, sent=sent: (
                        len(r["message_indexes"]["reliable"]) == sent * burst
                    ),
                )
        finally:
            os.kill(members["bob"].pid, signal.SIGCONT)

        assert room.drops == [("bob", DropReason.DATA_CHANNEL_STALLED)]
        assert report["message_indexes"]["reliable"] == list(range(burst)) * bursts
        # The backlog never grew past the bound plus the one message that crossed it.
        assert peak <= bound + size
        growth = rss_bytes() - rss_before
        print(
            f"\nstalled channel: backlog peaked at {peak // 1024} KiB (bound {bound // 1024} KiB);"
            f" SFU RSS grew {growth / 2**20:.1f} MiB while {bursts * burst * size // 1024} KiB"
            " were fanned out"
        )
    finally:
        await room.close()


async def _channel_count(room: RoomUnderTest, members: dict) -> int:
    return sum(len(room.media.data_channels(name)) for name in members)
