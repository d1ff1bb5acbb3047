"""Cumulative forwarding counters of one process, as plain data for the metrics layer to export."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class MediaCounters:
    """Monotonic totals since process start; the metrics layer turns them into `_total` counters.

    One instance is shared by every room of a process; the forwarding core only ever adds.
    """

    rtp_packets_received: int = 0
    rtp_payload_bytes_received: int = 0
    rtp_packets_sent: int = 0
    rtp_payload_bytes_sent: int = 0
    # Packets the publisher never delivered (sequence gaps seen upstream, before any repair).
    rtp_packets_lost_upstream: int = 0
    # Losses subscribers report in their receiver reports (cumulative, summed over subscribers).
    rtp_packets_lost_downstream: int = 0
    nacks_received: int = 0
    retransmissions_sent: int = 0
    # NACKed packets that had already left the retransmission history.
    retransmissions_missed: int = 0
    plis_received: int = 0
    firs_received: int = 0
    keyframe_requests_sent: int = 0
    # Simulcast layer changes completed for subscribers (first layers not counted).
    layer_switches: int = 0
    # Payload-less RTX packets sent to probe a subscriber's bandwidth for a higher layer.
    padding_packets_sent: int = 0
    data_messages_received: int = 0
    data_messages_sent: int = 0
    data_bytes_sent: int = 0
    participants_dropped: int = 0
    # Seconds the event loop spent fanning packets out (wall time of a non-suspending section).
    forwarding_seconds: float = 0.0

    def snapshot(self) -> dict[str, float]:
        """Return a copy of every counter, keyed by field name."""
        return asdict(self)
