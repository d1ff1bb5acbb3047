"""One RTP stream of a publication: the whole track, or one simulcast layer of it.

A layer keeps what the forwarding core knows about its stream: its SSRCs, the retransmission
history, where frames start, the publisher's clock mapping, its bitrate and frame size, and
the subscriptions that receive it (or are switching to it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiortc.rtp import RtpPacket

from .sequence import SequenceExtender

if TYPE_CHECKING:
    from .subscription import Subscription


@dataclass(frozen=True)
class ClockMapping:
    """The publisher's latest sender report: NTP time `ntp` is RTP time `rtp`, seen at `at`
    (event loop clock, seconds)."""

    ntp: int
    rtp: int
    at: float


class BitrateMeter:
    """Bits per second of a stream, measured over windows of about a second.

    The last figure is kept while the stream is stopped (a paused layer keeps the bitrate it
    will need again), and a window never spans a pause.
    """

    WINDOW_S = 1.0
    GAP_S = 0.5

    def __init__(self) -> None:
        self.bps: int | None = None
        self._bytes = 0
        self._start: float | None = None
        self._last = 0.0

    def add(self, size: int, now: float) -> None:
        if self._start is None or now - self._last > self.GAP_S:
            self._start = now
            self._bytes = 0
        self._last = now
        self._bytes += size
        elapsed = now - self._start
        if elapsed >= self.WINDOW_S:
            measured = int(8 * self._bytes / elapsed)
            # Halfway to the new figure: a keyframe in one window does not look like a jump.
            self.bps = measured if self.bps is None else (self.bps + measured) // 2
            self._start = now
            self._bytes = 0


class PublishedLayer:
    """A received stream and the subscriptions fed from it."""

    # A layer that sent nothing for this long is stopped (the publisher's encoder dropped it).
    ACTIVE_S = 1.0

    def __init__(self, rid: str | None, index: int, history_size: int) -> None:
        if history_size & (history_size - 1):
            raise ValueError("retransmission_history must be a power of two")
        self.rid = rid
        self.index = index
        """Position in the publisher's offer (the order before frame sizes are known)."""
        self.ssrc: int | None = None
        self.rtx_ssrc: int | None = None
        self.clock: ClockMapping | None = None
        self.size: tuple[int, int] | None = None
        """(width, height) of its latest keyframe."""
        self.meter = BitrateMeter()
        self.last_packet_at = float("-inf")
        self.consumers: list[Subscription] = []
        """Subscriptions forwarding this layer now or switching to it."""
        self.last_keyframe_request = float("-inf")
        self.frame_ticks = 0
        """RTP clock ticks between its latest two frames (0: not known yet)."""
        # Slot = sequence number modulo size; entries keep their extended sequence number.
        self._history: list[tuple[int, RtpPacket] | None] = [None] * history_size
        self._mask = history_size - 1
        self._sequence = SequenceExtender()
        self._last_timestamp: int | None = None

    @property
    def name(self) -> str:
        return self.rid or ""

    def active(self, now: float) -> bool:
        return now - self.last_packet_at < self.ACTIVE_S

    def receive(self, packet: RtpPacket, now: float) -> tuple[int, bool, int] | None:
        """Store a media packet: (extended sequence number, first packet of a new frame,
        packets skipped before it), or None for a duplicate."""
        seq = packet.sequence_number
        slot = seq & self._mask
        stored = self._history[slot]
        if stored is not None and stored[1].sequence_number == seq:
            return None
        extended, skipped = self._sequence.extend(seq)
        frame_start = False
        if extended == self._sequence.highest:
            last = self._last_timestamp
            frame_start = packet.timestamp != last
            if frame_start and last is not None:
                step = (packet.timestamp - last) & 0xFFFFFFFF
                if step < 0x80000000:
                    self.frame_ticks = step
            self._last_timestamp = packet.timestamp
        self._history[slot] = (extended, packet)
        self.last_packet_at = now
        self.meter.add(len(packet.payload) + packet.padding_size + 12, now)
        return extended, frame_start, skipped

    def history_packet(self, sequence_number: int) -> tuple[int, RtpPacket] | None:
        """(extended sequence number, packet) for a publisher sequence number, if still kept."""
        entry = self._history[sequence_number & self._mask]
        if entry is not None and entry[1].sequence_number == sequence_number:
            return entry
        return None

    def history_since(self, extended: int) -> list[tuple[int, RtpPacket]]:
        """Kept packets from extended sequence number `extended` to the newest, in order."""
        highest = self._sequence.highest
        if highest is None:
            return []
        out = []
        for number in range(max(extended, highest - self._mask), highest + 1):
            entry = self._history[number & self._mask]
            if entry is not None and entry[0] == number:
                out.append(entry)
        return out

    def restart(self, ssrc: int) -> None:
        """The publisher restarted this stream with a new SSRC: forget the old one."""
        self.ssrc = ssrc
        self.clock = None
        self._sequence.reset()
        self._last_timestamp = None
        self._history = [None] * len(self._history)

    def clear(self) -> None:
        self._history = [None] * len(self._history)
        self.consumers.clear()
