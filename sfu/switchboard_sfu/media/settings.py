"""Tunable bounds of the forwarding core: every queue, history and rate limit has its size here."""

from __future__ import annotations

from dataclasses import dataclass, field

from .layer_pausing import PausingSettings
from .layer_selection import ProbeSettings


@dataclass(frozen=True)
class ForwardingSettings:
    """Bounds and rates of one process's forwarding core (defaults suit a 1 Mbit/s video room)."""

    # Packets kept per published track to answer subscribers' NACKs (about 1.5 s of 3 Mbit/s
    # video); a power of two so sequence numbers index the ring directly.
    retransmission_history: int = 1024
    # Minimum spacing of keyframe requests sent to one publisher: subscribers' PLI/FIR bursts
    # (a decoder error in every subscriber at once) collapse into one upstream request.
    keyframe_request_interval_s: float = 0.5
    # A new video subscriber waits for a keyframe; when none is recognisable (end-to-end
    # encrypted payloads hide the codec header) forwarding starts at the next frame after this.
    keyframe_wait_s: float = 2.0
    # Upper bound of the bitrate a publisher is told it may send (REMB), bits per second.
    max_publisher_bitrate_bps: int = 4_000_000
    # How often the bound above (min of subscribers' REMB, capped) is re-sent upstream.
    bitrate_feedback_interval_s: float = 1.0
    # A data channel whose unsent backlog exceeds this is stalled: its participant is dropped.
    max_data_channel_buffered_bytes: int = 1_048_576
    # Forward started streams with the native module (`switchboard_sfu._fastpath`) when it is
    # installed; False keeps every packet on the pure-Python reference path.
    native_forwarding: bool = True
    # Simulcast layers no subscriber needs are paused: their publisher is told, and may stop
    # encoding them (only WebSocket publishers can be told).
    pausing: PausingSettings = field(default_factory=PausingSettings)
    # After a subscriber moves up a layer or changes its request, its REMB estimate lags
    # behind the new bitrate: for this long it only counts once it falls (congestion).
    estimate_grace_s: float = 20.0
    # Padding that lets a subscriber's bandwidth estimate grow towards a higher layer.
    probe: ProbeSettings = field(default_factory=ProbeSettings)
