"""One published track: the tapped receiver, its retransmission history and its subscribers.

Every RTP packet the publisher sends is handled here once (RTX unwrapped, stored for NACKs,
frame and keyframe boundaries found) and then handed to each subscription to be rewritten and
sent. Keyframe requests and the bitrate bound travel the other way, throttled and merged.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiortc import RTCRtpTransceiver
from aiortc.clock import current_ntp_time
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpReceiveParameters
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_PLI,
    RtcpPsfbPacket,
    RtcpSrPacket,
    RtpPacket,
    pack_remb_fci,
    unwrap_rtx,
)

from . import aiortc_adapter, fastpath
from .codecs import is_rtx, primary_codec
from .counters import MediaCounters
from .keyframes import is_keyframe_start
from .sequence import SequenceExtender
from .settings import ForwardingSettings

if TYPE_CHECKING:
    from .subscription import Subscription

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClockMapping:
    """The publisher's latest sender report: NTP time `ntp` is RTP time `rtp`, seen at `at`
    (event loop clock, seconds)."""

    ntp: int
    rtp: int
    at: float


class Publication:
    """A publisher's track as the forwarding core sees it (created by `RoomMedia.publish`)."""

    def __init__(
        self,
        *,
        participant_id: str,
        transceiver: RTCRtpTransceiver,
        track: MediaStreamTrack,
        settings: ForwardingSettings,
        counters: MediaCounters,
    ) -> None:
        self.id = uuid.uuid4().hex
        self.participant_id = participant_id
        self.kind: str = track.kind
        self.track_id: str = track.id
        self.media_ssrc: int | None = None
        self.clock: ClockMapping | None = None
        self.packets_received = 0
        self.bytes_received = 0
        self._transceiver = transceiver
        self._settings = settings
        self._counters = counters
        self._loop = asyncio.get_running_loop()
        self._subscriptions: list[Subscription] = []
        # Subscriptions are forwarded by `Subscription.forward` until they go native, then by
        # the native fan-out (one call per packet for all of them).
        self._python_subscriptions: list[Subscription] = []
        # The native twin of this publication's receive state (see `fastpath`), once in use.
        self._track: fastpath.Track | None = None
        self._lost_upstream_seen = 0
        # Event loop time of the last packet the native outputs forwarded.
        self.last_native_forward = 0.0
        size = settings.retransmission_history
        if size & (size - 1):
            raise ValueError("retransmission_history must be a power of two")
        # Slot = sequence number modulo size; entries keep their extended sequence number.
        self._history: list[tuple[int, RtpPacket] | None] = [None] * size
        self._history_mask = size - 1
        self._sequence = SequenceExtender()
        self._parameters: RTCRtpReceiveParameters | None = None
        self._codecs: dict[int, RTCRtpCodecParameters] = {}
        self._rtx_apt: dict[int, int] = {}
        self._rtx_ssrcs: dict[int, int] = {}
        self._last_timestamp: int | None = None
        self._mime_type = ""
        self._last_keyframe_request = -1e9
        self._pending_keyframe_request: asyncio.TimerHandle | None = None
        self._uplink_estimate_bps: int | None = None
        self._last_bitrate_bound: int | None = None
        self._feedback_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._closed = False
        self._tap = aiortc_adapter.tap_receiver(transceiver.receiver, self)

    # --- what the room and subscriptions use ---------------------------------------------

    @property
    def codec(self) -> RTCRtpCodecParameters | None:
        """The codec the publisher sends with (known once its offer has been applied)."""
        if self._parameters is not None:
            return primary_codec(self._parameters.codecs)
        return primary_codec(aiortc_adapter.negotiated_codecs(self._transceiver))

    def codec_for(self, payload_type: int) -> RTCRtpCodecParameters | None:
        return self._codecs.get(payload_type)

    @property
    def media_payload_types(self) -> list[int]:
        """The publisher's payload types that carry media (RTX excluded)."""
        return [pt for pt in self._codecs if pt not in self._rtx_apt]

    @property
    def subscriptions(self) -> tuple[Subscription, ...]:
        return tuple(self._subscriptions)

    def add_subscription(self, subscription: Subscription) -> None:
        self._subscriptions.append(subscription)
        self._python_subscriptions.append(subscription)
        self._python_subscriptions_changed()

    def remove_subscription(self, subscription: Subscription) -> None:
        if subscription in self._python_subscriptions:
            self._python_subscriptions.remove(subscription)
            self._python_subscriptions_changed()
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)
            self.subscriber_bitrate_changed()

    @property
    def native(self) -> bool:
        """True while the native fast path receives this publication's packets."""
        return self._track is not None

    def forward_natively(self, subscription: Subscription, output: fastpath.Output) -> bool:
        """From now on `output` (the subscription's native twin) gets every packet; False
        when this publication is not received natively."""
        if self._track is None:
            return False
        self._track.add_output(output)
        if subscription in self._python_subscriptions:
            self._python_subscriptions.remove(subscription)
            self._python_subscriptions_changed()
        return True

    def forward_in_python(self, subscription: Subscription, output: fastpath.Output) -> None:
        """Stop forwarding to `output`; the subscription's own `forward` takes over."""
        if self._track is not None:
            self._track.remove_output(output)
        if subscription in self._subscriptions and subscription not in self._python_subscriptions:
            self._python_subscriptions.append(subscription)
            self._python_subscriptions_changed()

    def history_packet(self, sequence_number: int) -> tuple[int, RtpPacket] | None:
        """(extended sequence number, packet) for a publisher sequence number, if still kept."""
        if self._track is not None:
            kept = self._track.history_packet(sequence_number)
            return None if kept is None else (kept[0], self._tap.parse(kept[1]))
        entry = self._history[sequence_number & self._history_mask]
        if entry is not None and entry[1].sequence_number == sequence_number:
            return entry
        return None

    def request_keyframe(self) -> None:
        """Ask the publisher for a keyframe, at most once per `keyframe_request_interval_s`."""
        if self.kind != "video" or self._closed:
            return
        wait = self._last_keyframe_request + self._settings.keyframe_request_interval_s
        wait -= self._loop.time()
        if wait <= 0:
            self._send_keyframe_request()
        elif self._pending_keyframe_request is None:
            self._pending_keyframe_request = self._loop.call_later(
                wait, self._send_keyframe_request
            )

    def subscriber_bitrate_changed(self) -> None:
        """Re-send the bitrate bound at once when it dropped noticeably (congestion)."""
        bound = self.bitrate_bound()
        if self._last_bitrate_bound is None or bound < 0.9 * self._last_bitrate_bound:
            self._spawn(self._send_bitrate_bound())

    def bitrate_bound(self) -> int:
        """What the publisher may send: min of subscribers' REMB and our own estimate, capped."""
        bound = self._settings.max_publisher_bitrate_bps
        if self._uplink_estimate_bps is not None:
            bound = min(bound, self._uplink_estimate_bps)
        for subscription in self._subscriptions:
            if subscription.remb_bps is not None:
                bound = min(bound, subscription.remb_bps)
        return bound

    async def close(self) -> None:
        """Stop forwarding: subscriptions are closed, timers cancelled."""
        self._closed = True
        for subscription in tuple(self._subscriptions):
            await subscription.close()
        if self._track is not None:
            self._tap.forward_in_python(self._track)
            self._track = None
        if self._pending_keyframe_request is not None:
            self._pending_keyframe_request.cancel()
        for task in (self._feedback_task, *self._background):
            if task is not None:
                task.cancel()
        self._history = [None] * len(self._history)

    # --- ReceiverListener: called by the tapped receiver ---------------------------------

    def receiver_started(self, parameters: RTCRtpReceiveParameters) -> None:
        self._parameters = parameters
        for codec in parameters.codecs:
            self._codecs[codec.payloadType] = codec
            if is_rtx(codec) and isinstance(codec.parameters.get("apt"), int):
                self._rtx_apt[codec.payloadType] = int(codec.parameters["apt"])
        for encoding in parameters.encodings:
            if encoding.rtx is not None:
                self._rtx_ssrcs[encoding.rtx.ssrc] = encoding.ssrc
        primary = self.codec
        self._mime_type = primary.mimeType if primary is not None else ""
        logger.info(
            "publication started participant=%s kind=%s codec=%s",
            self.participant_id,
            self.kind,
            self._mime_type,
        )
        if self.kind == "video" and self._feedback_task is None:
            self._feedback_task = self._loop.create_task(self._bitrate_feedback_loop())

    def rtp_received(self, packet: RtpPacket, arrival_time_ms: int) -> None:
        if self._closed:
            return
        counters = self._counters
        counters.rtp_packets_received += 1
        counters.rtp_payload_bytes_received += len(packet.payload)
        self.packets_received += 1
        self.bytes_received += len(packet.payload)

        apt = self._rtx_apt.get(packet.payload_type)
        if apt is not None:
            media_ssrc = self._rtx_ssrcs.get(packet.ssrc, self.media_ssrc)
            # Payload-less RTX packets are bandwidth probes, not repairs.
            if len(packet.payload) < 2 or media_ssrc != self.media_ssrc or media_ssrc is None:
                return
            packet = unwrap_rtx(packet, payload_type=apt, ssrc=media_ssrc)
        elif packet.payload_type not in self._codecs:
            return
        elif packet.ssrc != self.media_ssrc:
            self._switch_source(packet.ssrc)

        if self._track is None and self._settings.native_forwarding and fastpath.available():
            self._forward_natively()
        if self._track is not None:
            # The native track keeps the stream's state: it handles this packet too.
            data, ids = self._tap.serialize(packet)
            record = self._track.ingest(data, ids)
            if record is not None:
                self._native_forwarded(record, packet)
            return

        seq = packet.sequence_number
        slot = seq & self._history_mask
        stored = self._history[slot]
        if stored is not None and stored[1].sequence_number == seq:
            return  # a duplicate: subscribers already have it
        extended, skipped = self._sequence.extend(seq)
        frame_start = False
        if extended == self._sequence.highest:
            counters.rtp_packets_lost_upstream += skipped
            frame_start = packet.timestamp != self._last_timestamp
            self._last_timestamp = packet.timestamp
        self._history[slot] = (extended, packet)

        subscriptions = self._subscriptions
        if not subscriptions:
            return
        keyframe = (
            frame_start
            and self.kind == "video"
            and is_keyframe_start(self._mime_type, packet.payload)
        )
        now = self._loop.time()
        abs_send_time = (current_ntp_time() >> 14) & 0x00FFFFFF
        started = time.perf_counter()
        for subscription in tuple(self._python_subscriptions):
            subscription.forward(
                packet,
                extended,
                frame_start=frame_start,
                keyframe=keyframe,
                abs_send_time=abs_send_time,
                now=now,
            )
        counters.forwarding_seconds += time.perf_counter() - started

    def sender_report_received(self, packet: RtcpSrPacket) -> None:
        if packet.ssrc == self.media_ssrc:
            info = packet.sender_info
            self.clock = ClockMapping(
                ntp=info.ntp_timestamp, rtp=info.rtp_timestamp, at=self._loop.time()
            )

    def bitrate_estimated(self, bitrate_bps: int) -> None:
        self._uplink_estimate_bps = bitrate_bps
        self.subscriber_bitrate_changed()

    def native_packet(self, record: aiortc_adapter.NativeRecord, packet: RtpPacket | None) -> None:
        """A packet the native fast path received and forwarded to the native outputs."""
        if self._closed:
            return
        size = record[3]
        counters = self._counters
        counters.rtp_packets_received += 1
        counters.rtp_payload_bytes_received += size
        self.packets_received += 1
        self.bytes_received += size
        self._native_forwarded(record, packet)

    def native_forwarding_time(self, seconds: float) -> None:
        self._counters.forwarding_seconds += seconds

    # --- internals ------------------------------------------------------------------------

    def _forward_natively(self) -> None:
        """Hand this publication's receive state to the native module (media SSRC known)."""
        if self.media_ssrc is None:
            return
        track = fastpath.new_track(
            owner=self._tap,
            media_ssrc=self.media_ssrc,
            media_payload_types=self.media_payload_types,
            codec=self._mime_type if self.kind == "video" else "",
            history_size=self._settings.retransmission_history,
            estimate_bitrate=aiortc_adapter.estimates_bitrate(self._transceiver.receiver),
        )
        if self._tap.forward_natively(fastpath.new_ingress, track):
            self._track = track
            self._python_subscriptions_changed()
            logger.info(
                "publication forwarded natively participant=%s kind=%s",
                self.participant_id,
                self.kind,
            )

    def _python_subscriptions_changed(self) -> None:
        if self._track is not None:
            # The native track hands every packet's bytes over only while Python forwards too.
            self._track.python_forwarding = bool(self._python_subscriptions)

    def _native_forwarded(
        self, record: aiortc_adapter.NativeRecord, packet: RtpPacket | None
    ) -> None:
        """Counters, and the subscriptions still forwarded in Python, for a native packet."""
        counters = self._counters
        track = self._track
        assert track is not None
        lost = track.lost_upstream
        if lost != self._lost_upstream_seen:
            counters.rtp_packets_lost_upstream += lost - self._lost_upstream_seen
            self._lost_upstream_seen = lost
        if record[9]:
            return  # a duplicate: subscribers already have it
        now = self._loop.time()
        if record[10]:
            counters.rtp_packets_sent += record[10]
            counters.rtp_payload_bytes_sent += record[11]
            self.last_native_forward = now
        raw = record[12]
        if raw is None or not self._python_subscriptions:
            return
        if packet is None:
            packet = self._tap.parse(raw)
        abs_send_time = (current_ntp_time() >> 14) & 0x00FFFFFF
        for subscription in tuple(self._python_subscriptions):
            subscription.forward(
                packet,
                record[6],
                frame_start=record[7],
                keyframe=record[8],
                abs_send_time=abs_send_time,
                now=now,
            )

    def _switch_source(self, ssrc: int) -> None:
        if self.media_ssrc is not None:
            logger.info(
                "publication source changed participant=%s kind=%s", self.participant_id, self.kind
            )
        self.media_ssrc = ssrc
        self.clock = None
        if self._track is not None:
            self._tap.forward_in_python(self._track)
            self._track.reset(ssrc)
            self._tap.forward_natively(fastpath.new_ingress, self._track)
        self._sequence.reset()
        self._last_timestamp = None
        self._history = [None] * len(self._history)
        for subscription in self._subscriptions:
            subscription.source_changed()

    def _send_keyframe_request(self) -> None:
        self._pending_keyframe_request = None
        if self.media_ssrc is None or self._closed:
            return
        self._last_keyframe_request = self._loop.time()
        self._counters.keyframe_requests_sent += 1
        pli = RtcpPsfbPacket(
            fmt=RTCP_PSFB_PLI,
            ssrc=aiortc_adapter.rtcp_ssrc(self._transceiver),
            media_ssrc=self.media_ssrc,
        )
        self._spawn(self._tap.send_rtcp(pli))

    async def _send_bitrate_bound(self) -> None:
        if self.media_ssrc is None or self.kind != "video":
            return
        bound = self.bitrate_bound()
        self._last_bitrate_bound = bound
        remb = RtcpPsfbPacket(
            fmt=RTCP_PSFB_APP,
            ssrc=aiortc_adapter.rtcp_ssrc(self._transceiver),
            media_ssrc=0,
            fci=pack_remb_fci(bound, [self.media_ssrc]),
        )
        await self._tap.send_rtcp(remb)

    async def _bitrate_feedback_loop(self) -> None:
        while not self._closed:
            await asyncio.sleep(self._settings.bitrate_feedback_interval_s)
            await self._send_bitrate_bound()

    def _spawn(self, coroutine: object) -> None:
        task = self._loop.create_task(coroutine)  # type: ignore[arg-type]
        self._background.add(task)
        task.add_done_callback(self._background.discard)
