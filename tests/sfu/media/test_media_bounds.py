"""Nothing in the forwarding path queues without bound: unread tracks and frozen subscribers
leave the SFU's memory flat."""

from __future__ import annotations

import os
import signal

from media_harness import DEADLINE_S, rss_bytes

from fixtures.waiting import eventually


async def test_unread_and_frozen_subscribers_leave_sfu_memory_bounded(room, peers):
    # 640x480 video: had any decoded frame been queued on the SFU's unread remote track, the
    # SFU would grow by ~460 KB per frame (tens of MB over this test).
    publisher = await peers(
        "publisher", "--role", "publisher", "--width", "640", "--height", "480", "--fps", "15"
    )
    await room.join("alice", publisher)
    idle = await peers("idle", "--role", "subscriber", "--never-read")
    await room.join("idle", idle)
    frozen = await peers("frozen", "--role", "subscriber")
    await room.join("frozen", frozen)
    await eventually(
        frozen.report, DEADLINE_S, "media to flow", until=lambda r: r["frames"]["video"] > 0
    )
    os.kill(frozen.pid, signal.SIGSTOP)
    try:
        counters = room.counters

        async def packets_received() -> int:
            return counters.rtp_packets_received

        warm = counters.rtp_packets_received
        await eventually(
            packets_received, DEADLINE_S, "warm-up traffic", until=lambda n: n > warm + 300
        )
        before, start = rss_bytes(), counters.rtp_packets_received
        frames_before = (await publisher.report())["sent"]["video"]
        await eventually(
            packets_received, DEADLINE_S, "sustained traffic", until=lambda n: n > start + 3000
        )
        frames = len((await publisher.report())["sent"]["video"]) - len(frames_before)
        growth = rss_bytes() - before
    finally:
        os.kill(frozen.pid, signal.SIGCONT)

    print(
        f"\nSFU RSS grew {growth / 2**20:.1f} MiB over {counters.rtp_packets_received - start}"
        f" packets ({frames} video packets sent) with one idle and one frozen subscriber"
    )
    assert growth < 16 * 2**20
