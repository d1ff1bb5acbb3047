"""Measured load of the pod: CPU and bitrates from counter deltas between reports, and
each room's load in capacity units from the streams it is actually forwarding.

Capacity unit (switchboard_api.contract): one forwarded video stream is 1.0, one
forwarded audio stream 0.1. Only subscriptions that are forwarding packets count, so a
room's load is measured, not reserved.
"""

import time
from dataclasses import dataclass

from switchboard_api.contract import AUDIO_STREAM_UNITS, VIDEO_STREAM_UNITS
from switchboard_sfu.media import MediaCounters
from switchboard_sfu.rooms import Room


@dataclass(frozen=True)
class LoadSample:
    """Rates over the interval since the previous sample."""

    cpu_cores: float
    bitrate_in_bps: float
    bitrate_out_bps: float


class LoadMeter:
    """Turns cumulative counters into rates; one sample per capacity report."""

    def __init__(self, counters: MediaCounters) -> None:
        self._counters = counters
        self._last_wall = time.monotonic()
        self._last_cpu = time.process_time()
        self._last_in = counters.rtp_payload_bytes_received
        self._last_out = counters.rtp_payload_bytes_sent

    def sample(self) -> LoadSample:
        wall, cpu = time.monotonic(), time.process_time()
        received = self._counters.rtp_payload_bytes_received
        sent = self._counters.rtp_payload_bytes_sent
        elapsed = max(wall - self._last_wall, 1e-6)
        sample = LoadSample(
            cpu_cores=max(0.0, cpu - self._last_cpu) / elapsed,
            bitrate_in_bps=max(0, received - self._last_in) * 8 / elapsed,
            bitrate_out_bps=max(0, sent - self._last_out) * 8 / elapsed,
        )
        self._last_wall, self._last_cpu = wall, cpu
        self._last_in, self._last_out = received, sent
        return sample

    @staticmethod
    def room_usage(room: Room) -> tuple[int, int, float]:
        """(published tracks, forwarded tracks, load in capacity units) of `room`."""
        if room.media is None:
            return 0, 0, 0.0
        usage = room.media.usage()
        load = (
            usage.forwarded_video_tracks * VIDEO_STREAM_UNITS
            + usage.forwarded_audio_tracks * AUDIO_STREAM_UNITS
        )
        return usage.published_tracks, usage.forwarded_tracks, load
