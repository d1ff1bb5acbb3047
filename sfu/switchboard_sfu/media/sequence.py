"""Extends 16-bit RTP sequence numbers to a monotonic count, so "before" and "after" stay
meaningful across wrap-arounds (RFC 3550 appendix A.1)."""

from __future__ import annotations

_HALF = 0x8000
# Jumps larger than this are a restarted sender rather than loss: not counted as lost.
MAX_GAP = 0x1000


class SequenceExtender:
    """Maps each arriving sequence number to its extended (unwrapped) value."""

    def __init__(self) -> None:
        self.highest: int | None = None

    def reset(self) -> None:
        self.highest = None

    def extend(self, sequence_number: int) -> tuple[int, int]:
        """(extended sequence number, packets skipped before it; 0 unless it is newest)."""
        highest = self.highest
        if highest is None:
            self.highest = sequence_number
            return sequence_number, 0
        delta = (sequence_number - highest) & 0xFFFF
        if delta < _HALF:
            # Newer (or a duplicate of the newest): advance.
            self.highest = highest + delta
            skipped = delta - 1 if 0 < delta <= MAX_GAP else 0
            return self.highest, skipped
        # Older: a reordered or retransmitted packet.
        return highest - (0x10000 - delta), 0
