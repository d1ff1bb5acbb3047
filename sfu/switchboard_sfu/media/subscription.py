"""One forwarded stream: a publication's packets sent to one subscriber's sender.

Each subscription rewrites SSRC, payload type, sequence number and timestamp (offsets fixed
when forwarding starts, at a keyframe for video), answers the subscriber's NACKs from the
publication's history, passes PLI/FIR and REMB upstream, and writes sender reports that carry
the publisher's clock mapping so browsers can synchronise audio and video.

For a simulcast publication it also picks the layer (by the subscriber's REMB and explicit
request) and switches between layers at a keyframe of the target layer, continuing sequence
numbers, timestamps and VP8 picture ids so the subscriber sees one stream. Each stretch of
output from one layer is a segment; NACKs are answered through the segment they fall in.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiortc import RTCDtlsTransport, RTCRtpTransceiver
from aiortc.clock import current_ntp_time
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpSendParameters
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    AnyRtcpPacket,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSenderInfo,
    RtcpSrPacket,
    RtpPacket,
    unpack_remb_fci,
)

from . import aiortc_adapter, fastpath
from .codecs import compatible, is_rtx, primary_codec
from .counters import MediaCounters
from .layer import PublishedLayer
from .layer_selection import BandwidthProbe, LaggingEstimate, LayerRequest, choose_layer
from .rtp_writer import RtpWriter
from .settings import ForwardingSettings
from .tracks import ForwardedTrack
from .vp8 import rewrite_vp8_picture_ids, vp8_picture_ids

if TYPE_CHECKING:
    from .publication import Publication

logger = logging.getLogger(__name__)

_NTP_UNITS_PER_SECOND = 1 << 32
# A current layer silent this long no longer holds up a switch (its frame will not complete).
_STALLED_S = 0.2
# Padding packets: the largest RTP padding (its count is one byte), sent in 20 ms bursts.
_PADDING_SIZE = 255
_PADDING_INTERVAL_S = 0.02
_SEGMENTS_KEPT = 16

LayerChanged = Callable[["Subscription"], None]


@dataclass
class _Segment:
    """A stretch of the outgoing stream forwarded from one layer with fixed offsets."""

    layer: PublishedLayer
    out_start: int
    """Outgoing sequence number of its first packet."""
    start: int
    """The layer's extended sequence number of its first packet."""
    seq_offset: int
    ts_offset: int
    picture_id_delta: int = 0
    tl0picidx_delta: int = 0
    length: int | None = None
    """Outgoing sequence numbers it spans, once the next segment began."""


class Subscription:
    """A publication forwarded to one subscriber (created by `RoomMedia.subscribe`)."""

    def __init__(
        self,
        *,
        subscriber_id: str,
        publication: Publication,
        transceiver: RTCRtpTransceiver,
        track: ForwardedTrack,
        settings: ForwardingSettings,
        counters: MediaCounters,
    ) -> None:
        self.id = uuid.uuid4().hex
        self.subscriber_id = subscriber_id
        self.publication = publication
        self.transceiver = transceiver
        self.track = track
        self.kind = publication.kind
        # Sent on the Python path (and by native outputs already retired).
        self._packets_sent = self._bytes_sent = 0
        # The native twin of this subscription's rewrite state, once forwarding went native.
        self._output: fastpath.Output | None = None
        self.remb_bps: int | None = None
        self.round_trip_time_s: float | None = None
        self.active = False
        self.layer_changed: LayerChanged | None = None
        """Called after the forwarded layer changed (simulcast only)."""
        self.last_switch_s: float | None = None
        """How long the latest layer switch took, from choosing the layer to its first
        packet sent."""
        self._settings = settings
        self._counters = counters
        self._loop = asyncio.get_running_loop()
        self._writer: RtpWriter | None = None
        self._payload_types: dict[int, int | None] = {}
        self._send_codecs: list[RTCRtpCodecParameters] = []
        self._rtx_payload_type: int | None = None
        self._clock_rate = 90000
        self._rtx_sequence_number = random.randrange(1 << 15)
        # Where the outgoing stream continues: random at first, after the last packet when the
        # publisher's source changes (so the subscriber sees one continuous stream).
        self._next_sequence_number = random.randrange(1 << 15)
        self._next_timestamp = random.randrange(1 << 32)
        # The layer forwarded now, the one wanted, and the segment being sent.
        self._layer: PublishedLayer | None = None
        self._target: PublishedLayer | None = None
        self._request = LayerRequest()
        self._segments: deque[_Segment] = deque(maxlen=_SEGMENTS_KEPT)
        # The current segment's offsets, copied out for the per-packet path.
        self._seq_offset: int | None = None
        self._ts_offset = 0
        self._picture_id_delta = 0
        self._tl0picidx_delta = 0
        self._start = 0
        # A switch waiting for the current layer's frame to end: the target keyframe's
        # extended sequence number.
        self._pending_switch: int | None = None
        self._target_chosen_at = 0.0
        self._waiting_since = 0.0
        self._last_packet: RtpPacket | None = None
        self._last_out_seq = 0
        self._last_out_ts = 0
        self._last_out_time = 0.0
        self._last_sr_lsr: int | None = None
        self._last_sr_time = 0.0
        self._reported_lost = 0
        self._estimate = LaggingEstimate(settings.estimate_grace_s)
        self._probe: BandwidthProbe | None = None
        self._padding = _Padding(self._loop, self._send_padding)
        self._closed = False
        self._hook = aiortc_adapter.hook_sender(transceiver.sender, self)

    @property
    def forwarding(self) -> bool:
        """True once packets flow (after the first keyframe, for video)."""
        return self._seq_offset is not None

    @property
    def native(self) -> bool:
        """True while the native fast path forwards this subscription's packets."""
        return self._output is not None

    @property
    def packets_sent(self) -> int:
        output = self._output
        return self._packets_sent + (output.packets_sent if output is not None else 0)

    @property
    def bytes_sent(self) -> int:
        output = self._output
        return self._bytes_sent + (output.bytes_sent if output is not None else 0)

    @property
    def layer(self) -> PublishedLayer | None:
        """The layer forwarded now (None before the first packet)."""
        return self._layer

    @property
    def target_layer(self) -> PublishedLayer | None:
        return self._target

    @property
    def layers_in_use(self) -> tuple[PublishedLayer, ...]:
        """The layer forwarded and the one being switched to."""
        return tuple(x for x in {self._layer: 0, self._target: 0} if x is not None)

    def request_layer(self, rid: str | None = None, max_height: int | None = None) -> None:
        """The subscriber's ceiling (both None: automatic, by bandwidth only)."""
        request = LayerRequest(rid=rid, max_height=max_height)
        if request == self._request:
            return
        self._request = request
        now = self._loop.time()
        self._estimate.changed(now)
        if self.active:
            self.select_layer(now)

    async def close(self) -> None:
        """Stop forwarding to this subscriber; the transceiver stays until renegotiated."""
        if self._closed:
            return
        self._closed = True
        self.active = False
        self._padding.set_rate(0)
        self._forward_in_python()
        self.publication.remove_subscription(self)
        self.track.stop()

    # --- SenderListener: called by the hooked sender -------------------------------------

    def sender_started(self, parameters: RTCRtpSendParameters, transport: RTCDtlsTransport) -> None:
        codec = primary_codec(parameters.codecs)
        if codec is None or self._closed:
            return
        self._send_codecs = list(parameters.codecs)
        self._clock_rate = codec.clockRate
        self._rtx_payload_type = next(
            (
                c.payloadType
                for c in parameters.codecs
                if is_rtx(c) and c.parameters.get("apt") == codec.payloadType
            ),
            None,
        )
        self._writer = RtpWriter(parameters.headerExtensions, parameters.muxId)
        now = self._loop.time()
        self._waiting_since = now
        self.active = True
        logger.info(
            "subscription started subscriber=%s publisher=%s kind=%s codec=%s",
            self.subscriber_id,
            self.publication.participant_id,
            self.kind,
            codec.mimeType,
        )
        if self.publication.simulcast:
            self._probe = BandwidthProbe(self._settings.probe, now)
            self.select_layer(now, initial=True)
        else:
            self._set_target(self.publication.layers[0], now)

    def sender_stopped(self) -> None:
        self.active = False
        self._padding.set_rate(0)
        self._forward_in_python()

    async def rtcp_received(self, packet: AnyRtcpPacket) -> bool:
        counters = self._counters
        if isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
            counters.nacks_received += 1
            for sequence_number in packet.lost:
                self._retransmit(sequence_number)
            return True
        if isinstance(packet, RtcpPsfbPacket):
            return self._payload_feedback(packet)
        if isinstance(packet, (RtcpRrPacket, RtcpSrPacket)):
            self._receiver_reports(packet)
        return False

    def _payload_feedback(self, packet: RtcpPsfbPacket) -> bool:
        """PLI and FIR become keyframe requests upstream; REMB is the subscriber's estimate."""
        if packet.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR):
            if packet.fmt == RTCP_PSFB_PLI:
                self._counters.plis_received += 1
            else:
                self._counters.firs_received += 1
            for layer in self.layers_in_use:
                self.publication.request_keyframe(layer)
            return True
        if packet.fmt == RTCP_PSFB_APP:
            try:
                bitrate, ssrcs = unpack_remb_fci(packet.fci)
            except ValueError:
                return True
            if self._hook.ssrc in ssrcs:
                self.remb_bps = bitrate
                if self.publication.simulcast:
                    now = self._loop.time()
                    self._estimate.report(bitrate, now)
                    self.select_layer(now)
                else:
                    self.publication.subscriber_bitrate_changed(bitrate)
            return True
        return False

    def sender_report_due(self, packet: RtcpSrPacket) -> bool:
        if not self.forwarding:
            return False
        self._sync_native_state()
        now = self._loop.time()
        clock = self._layer.clock if self._layer is not None else None
        if clock is not None:
            elapsed = now - clock.at
            ntp = clock.ntp + int(elapsed * _NTP_UNITS_PER_SECOND)
            rtp = clock.rtp + self._ts_offset + int(elapsed * self._clock_rate)
        else:
            # No report from the publisher yet: extrapolate from the last packet, as a
            # sender without a capture clock would.
            ntp = current_ntp_time()
            rtp = self._last_out_ts + int((now - self._last_out_time) * self._clock_rate)
        packet.sender_info = RtcpSenderInfo(
            ntp_timestamp=ntp & 0xFFFFFFFFFFFFFFFF,
            rtp_timestamp=rtp & 0xFFFFFFFF,
            packet_count=self.packets_sent & 0xFFFFFFFF,
            octet_count=self.bytes_sent & 0xFFFFFFFF,
        )
        self._last_sr_lsr = (ntp >> 16) & 0xFFFFFFFF
        self._last_sr_time = now
        return True

    # --- called by the publication --------------------------------------------------------

    def select_layer(self, now: float, *, initial: bool = False) -> None:
        """Choose the layer to receive (simulcast): the request and REMB decide, see
        `layer_selection.choose_layer`; pad the stream when probing for a higher one."""
        if not self.active or not self.publication.simulcast:
            return
        # At first, only what is being sent now: a paused better layer is resumed afterwards.
        states = self.publication.layer_states(now, include_paused=not initial)
        current = self._target.name if self._target is not None else None
        estimate = self._estimate.usable(now)
        choice = choose_layer(states, self._request, estimate, current)
        if choice.rid is not None:
            target = self.publication.layer(choice.rid)
            if target is not None and target is not self._target:
                self._set_target(target, now)
        if self._probe is not None:
            layer = self._layer if self._layer is not None else self._target
            sending = layer.meter.bps if layer is not None else None
            self._padding.set_rate(
                self._probe.padding_bps(
                    now,
                    sending_bps=sending,
                    probe_bps=choice.probe_bps if self._target is self._layer else None,
                    estimate_bps=estimate,
                )
            )

    def source_changed(self, layer: PublishedLayer) -> None:
        """The publisher's stream restarted (new SSRC): continue after the last packet sent."""
        if layer is not self._layer or self._seq_offset is None:
            return
        self._forward_in_python()
        self._close_segment()
        self._seq_offset = None
        self._waiting_since = self._loop.time()

    def forward(
        self,
        layer: PublishedLayer,
        packet: RtpPacket,
        extended_seq: int,
        *,
        frame_start: bool,
        keyframe: bool,
        abs_send_time: int,
        now: float,
    ) -> None:
        """Send one publisher packet of `layer` to this subscriber, rewritten."""
        if not self.active:
            return
        if layer is self._layer and self._seq_offset is not None:
            if extended_seq >= self._start:  # not older than where this segment began
                self._send(packet, abs_send_time, now)
                if self._pending_switch is not None and packet.marker:
                    self._complete_switch(now)
        elif layer is self._target and self._begins_here(
            layer, extended_seq, frame_start, keyframe, now
        ):
            self._begin(layer, packet, extended_seq, now)
            if not self._forward_natively(packet, extended_seq, abs_send_time, now):
                self._send(packet, abs_send_time, now)

    def _begins_here(
        self,
        layer: PublishedLayer,
        extended_seq: int,
        frame_start: bool,
        keyframe: bool,
        now: float,
    ) -> bool:
        """Whether a packet of the layer to switch to (or of the current one restarting)
        begins a segment: at a keyframe, once the current layer's frame is complete."""
        if self._pending_switch is not None:
            if now - self._last_out_time > _STALLED_S:
                self._complete_switch(now)
            return False
        if not self._can_start(layer, frame_start, keyframe, now):
            return False
        if (
            self._seq_offset is not None
            and self._last_packet is not None
            and not self._last_packet.marker
            and now - self._last_out_time <= _STALLED_S
        ):
            # The current layer is mid-frame: finish that frame, then switch (replaying the
            # target's packets from this keyframe on).
            self._pending_switch = extended_seq
            return False
        return True

    # --- internals ------------------------------------------------------------------------

    def _set_target(self, layer: PublishedLayer, now: float) -> None:
        previous = self._target
        self._target = layer
        self._pending_switch = None
        self._target_chosen_at = now
        self._waiting_since = now
        if layer is not self._layer:
            # The switch happens in Python (the native path follows one stream).
            self._forward_in_python()
        self.publication.watch_layer(self, layer)
        if previous is not None and previous is not self._layer:
            self.publication.unwatch_layer(self, previous)
        if layer is not self._layer:
            if self._layer is not None:
                logger.info(
                    "layer switch requested subscriber=%s publisher=%s from=%s to=%s",
                    self.subscriber_id,
                    self.publication.participant_id,
                    self._layer.name,
                    layer.name,
                )
            self.publication.request_keyframe(layer)
        self.publication.update_needed_layers()

    def _can_start(
        self, layer: PublishedLayer, frame_start: bool, keyframe: bool, now: float
    ) -> bool:
        if self.kind != "video":
            return True
        if not frame_start:
            return False
        if keyframe:
            return True
        # No recognisable keyframe (lost request, or an end-to-end encrypted payload that
        # hides the codec header): after a while start at a frame boundary and let the
        # subscriber's decoder ask for a keyframe itself.
        if now - self._waiting_since >= self._settings.keyframe_wait_s:
            return True
        self.publication.request_keyframe(layer)
        return False

    def _complete_switch(self, now: float) -> None:
        start, self._pending_switch = self._pending_switch, None
        target = self._target
        if start is None or target is None:
            return
        replay = target.history_since(start)
        if not replay:
            self.publication.request_keyframe(target)
            return
        abs_send_time = (current_ntp_time() >> 14) & 0x00FFFFFF
        first_extended, first = replay[0]
        self._begin(target, first, first_extended, now)
        for _, packet in replay:
            self._send(packet, abs_send_time, now)

    def _begin(
        self, layer: PublishedLayer, packet: RtpPacket, extended_seq: int, now: float
    ) -> None:
        """Start a segment at `packet` of `layer`, continuing the outgoing stream."""
        previous = self._close_segment()
        out_seq = self._next_sequence_number
        out_ts = self._continue_timestamp(previous, layer, packet, now)
        picture_id_delta = tl0picidx_delta = 0
        codec = self.publication.codec
        vp8 = codec is not None and codec.mimeType.lower() == "video/vp8"
        if vp8 and previous is not None and previous.layer is not layer and self._last_packet:
            # The subscriber's decoder tracks picture ids: continue them across layers.
            last_picture_id, last_tl0picidx = vp8_picture_ids(self._last_packet.payload)
            picture_id, tl0picidx = vp8_picture_ids(packet.payload)
            if last_picture_id is not None and picture_id is not None:
                last = (last_picture_id + previous.picture_id_delta) & 0x7FFF
                picture_id_delta = (last + 1 - picture_id) & 0x7FFF
            if last_tl0picidx is not None and tl0picidx is not None:
                last = (last_tl0picidx + previous.tl0picidx_delta) & 0xFF
                tl0picidx_delta = (last + 1 - tl0picidx) & 0xFF
        segment = _Segment(
            layer=layer,
            out_start=out_seq,
            start=extended_seq,
            seq_offset=(out_seq - packet.sequence_number) & 0xFFFF,
            ts_offset=(out_ts - packet.timestamp) & 0xFFFFFFFF,
            picture_id_delta=picture_id_delta,
            tl0picidx_delta=tl0picidx_delta,
        )
        self._segments.append(segment)
        self._seq_offset = segment.seq_offset
        self._ts_offset = segment.ts_offset
        self._picture_id_delta = picture_id_delta
        self._tl0picidx_delta = tl0picidx_delta
        self._start = extended_seq
        self._last_out_seq = (out_seq - 1) & 0xFFFF
        old = self._layer
        self._layer = layer
        if old is not None and old is not self._target:
            self.publication.unwatch_layer(self, old)
        if layer is not old and self.publication.simulcast:
            self._layer_switched(old, layer, now)

    def _close_segment(self) -> _Segment | None:
        """End the current segment; the stream continues after its last packet."""
        if not self._segments or self._seq_offset is None:
            return self._segments[-1] if self._segments else None
        segment = self._segments[-1]
        self._next_sequence_number = (self._last_out_seq + 1) & 0xFFFF
        segment.length = (self._next_sequence_number - segment.out_start) & 0xFFFF
        self._seq_offset = None
        return segment

    def _continue_timestamp(
        self, previous: _Segment | None, layer: PublishedLayer, packet: RtpPacket, now: float
    ) -> int:
        if previous is None:
            return self._next_timestamp
        rate = self._clock_rate
        step = previous.layer.frame_ticks or rate // 30
        delta = None
        old, new = previous.layer.clock, layer.clock
        if previous.layer is not layer and old is not None and new is not None:
            # The same capture instant on both layers' clocks (their sender reports map each
            # to NTP): the new layer's frames keep their true spacing from the old ones.
            since_new = _signed32(packet.timestamp - new.rtp) / rate
            seconds = (new.ntp - old.ntp) / _NTP_UNITS_PER_SECOND + since_new
            out_ts = (old.rtp + round(seconds * rate) + previous.ts_offset) & 0xFFFFFFFF
            mapped = (out_ts - self._last_out_ts) & 0xFFFFFFFF
            delta = mapped if mapped < 10 * rate else None
        if delta is None:
            delta = round((now - self._last_out_time) * rate)
        if delta < step // 2:
            # Usually a keyframe of the very frame just forwarded from the old layer (every
            # layer encodes each captured frame): on that frame's time a receiver would drop
            # one of the two, so it takes the next frame's place.
            delta = step
        return (self._last_out_ts + delta) & 0xFFFFFFFF

    def _layer_switched(self, old: PublishedLayer | None, new: PublishedLayer, now: float) -> None:
        if old is not None:
            self.last_switch_s = now - self._target_chosen_at
            self._counters.layer_switches += 1
            logger.info(
                "layer switched subscriber=%s publisher=%s from=%s to=%s after_ms=%.0f",
                self.subscriber_id,
                self.publication.participant_id,
                old.name,
                new.name,
                1000 * self.last_switch_s,
            )
        if self._probe is not None:
            self._probe.layer_changed(now)
            self._padding.set_rate(0)
        ordered = self.publication.ordered_layers()
        if old is not None and ordered.index(new) > ordered.index(old):
            self._estimate.changed(now)
        self.publication.update_needed_layers()
        if self.layer_changed is not None:
            self.layer_changed(self)

    def _send(self, packet: RtpPacket, abs_send_time: int, now: float) -> None:
        payload_type = self._payload_type_for(packet.payload_type)
        if payload_type is None:
            return
        out_seq = (packet.sequence_number + self._seq_offset) & 0xFFFF  # type: ignore[operator]
        out_ts = (packet.timestamp + self._ts_offset) & 0xFFFFFFFF
        payload = packet.payload
        if self._picture_id_delta or self._tl0picidx_delta:
            payload = rewrite_vp8_picture_ids(
                payload, self._picture_id_delta, self._tl0picidx_delta
            )
        assert self._writer is not None
        data = self._writer.write(
            payload_type=payload_type,
            marker=packet.marker,
            sequence_number=out_seq,
            timestamp=out_ts,
            ssrc=self._hook.ssrc,
            payload=payload,
            padding_size=packet.padding_size,
            abs_send_time=abs_send_time,
            audio_level=packet.extensions.audio_level,
        )
        try:
            self._hook.send_rtp(data)
        except ConnectionError:
            return
        if ((out_seq - self._last_out_seq) & 0xFFFF) < 0x8000:
            self._last_out_seq = out_seq
            self._last_out_ts = out_ts
            self._last_out_time = now
            self._last_packet = packet
        self._packets_sent += 1
        self._bytes_sent += len(payload)
        self._counters.rtp_packets_sent += 1
        self._counters.rtp_payload_bytes_sent += len(payload)

    def _forward_natively(
        self, packet: RtpPacket, extended_seq: int, abs_send_time: int, now: float
    ) -> bool:
        """Hand this (started) stream to the native fast path, first packet included; False
        when it cannot go native (publication not received natively, relayed ICE pair)."""
        if not self.publication.native:
            return False
        route = self._hook.direct_route()
        if route is None or self._writer is None or self._seq_offset is None:
            return False
        payload_types = []
        for publisher_payload_type in self.publication.media_payload_types:
            target = self._payload_type_for(publisher_payload_type)
            if target is not None:
                payload_types.append((publisher_payload_type, target))
        output = fastpath.new_output(
            route,
            self._writer,
            ssrc=self._hook.ssrc,
            payload_types=payload_types,
            seq_offset=self._seq_offset,
            ts_offset=self._ts_offset,
            start=self._start,
            last_sequence_number=self._last_out_seq,
        )
        if output is None or not self.publication.forward_natively(self, output):
            return False
        self._output = output
        sent = output.send(
            packet.payload,
            payload_type=packet.payload_type,
            marker=bool(packet.marker),
            sequence_number=packet.sequence_number,
            timestamp=packet.timestamp,
            extended_seq=extended_seq,
            padding_size=packet.padding_size,
            abs_send_time=abs_send_time,
            audio_level=packet.extensions.audio_level,
        )
        if sent:
            self._counters.rtp_packets_sent += 1
            self._counters.rtp_payload_bytes_sent += len(packet.payload)
        self._last_out_time = now
        return True

    def _forward_in_python(self) -> None:
        """Retire the native output (its counts and stream position carry over)."""
        output = self._output
        if output is None:
            return
        self._sync_native_state()
        self._packets_sent += output.packets_sent
        self._bytes_sent += output.bytes_sent
        self._output = None
        self.publication.forward_in_python(self, output)

    def _sync_native_state(self) -> None:
        """Copy where the native output's stream stands into the Python-side fields."""
        output = self._output
        if output is None or not output.packets_sent:
            return
        self._last_out_seq = output.last_sequence_number
        self._last_out_ts = output.last_timestamp
        self._last_out_time = max(self._last_out_time, self.publication.last_native_forward)

    def _payload_type_for(self, publisher_payload_type: int) -> int | None:
        try:
            return self._payload_types[publisher_payload_type]
        except KeyError:
            pass
        source = self.publication.codec_for(publisher_payload_type)
        target = next(
            (
                c.payloadType
                for c in self._send_codecs
                if source is not None and not is_rtx(c) and compatible(c, source)
            ),
            None,
        )
        if target is None:
            logger.warning(
                "dropping packets of a codec the subscriber did not negotiate "
                "subscriber=%s payload_type=%d",
                self.subscriber_id,
                publisher_payload_type,
            )
        self._payload_types[publisher_payload_type] = target
        return target

    def _segment_of(self, out_seq: int) -> _Segment | None:
        for segment in reversed(self._segments):
            span = segment.length if segment.length is not None else 0x8000
            if (out_seq - segment.out_start) & 0xFFFF < span:
                return segment
        return None

    def _retransmit(self, out_seq: int) -> None:
        if self._writer is None:
            return
        segment = self._segment_of(out_seq)
        if segment is None:
            self._counters.retransmissions_missed += 1
            return
        entry = self.publication.history_packet(
            segment.layer, (out_seq - segment.seq_offset) & 0xFFFF
        )
        if entry is None or entry[0] < segment.start:
            self._counters.retransmissions_missed += 1
            return
        packet = entry[1]
        payload_type = self._payload_type_for(packet.payload_type)
        if payload_type is None:
            return
        payload = packet.payload
        if segment.picture_id_delta or segment.tl0picidx_delta:
            payload = rewrite_vp8_picture_ids(
                payload, segment.picture_id_delta, segment.tl0picidx_delta
            )
        ssrc = self._hook.ssrc
        sequence_number = out_seq
        if self._rtx_payload_type is not None:
            # RFC 4588: the original sequence number leads the retransmitted payload.
            payload = out_seq.to_bytes(2, "big") + payload
            payload_type = self._rtx_payload_type
            ssrc = self._hook.rtx_ssrc
            sequence_number = self._next_rtx_sequence_number()
        data = self._writer.write(
            payload_type=payload_type,
            marker=packet.marker,
            sequence_number=sequence_number,
            timestamp=(packet.timestamp + segment.ts_offset) & 0xFFFFFFFF,
            ssrc=ssrc,
            payload=payload,
            abs_send_time=(current_ntp_time() >> 14) & 0x00FFFFFF,
        )
        try:
            self._hook.send_rtp(data)
        except ConnectionError:
            return
        self._counters.retransmissions_sent += 1

    def _next_rtx_sequence_number(self) -> int:
        number = self._rtx_sequence_number
        self._rtx_sequence_number = (number + 1) & 0xFFFF
        return number

    def _send_padding(self) -> bool:
        """Send one payload-less RTX packet (RFC 4588 allows them; receivers count them in
        their bandwidth estimate and discard them); False when nothing can be sent."""
        if self._writer is None or self._rtx_payload_type is None or not self.forwarding:
            return False
        data = self._writer.write(
            payload_type=self._rtx_payload_type,
            marker=0,
            sequence_number=self._next_rtx_sequence_number(),
            timestamp=self._last_out_ts,
            ssrc=self._hook.rtx_ssrc,
            payload=b"",
            padding_size=_PADDING_SIZE,
            abs_send_time=(current_ntp_time() >> 14) & 0x00FFFFFF,
        )
        try:
            self._hook.send_rtp(data)
        except ConnectionError:
            return False
        self._counters.padding_packets_sent += 1
        return True

    def _receiver_reports(self, packet: RtcpRrPacket | RtcpSrPacket) -> None:
        for report in packet.reports:
            if report.ssrc != self._hook.ssrc:
                continue
            lost = max(report.packets_lost, 0)
            if lost > self._reported_lost:
                self._counters.rtp_packets_lost_downstream += lost - self._reported_lost
            self._reported_lost = lost
            if report.lsr and report.lsr == self._last_sr_lsr:
                rtt = self._loop.time() - self._last_sr_time - report.dlsr / 65536
                if rtt >= 0:
                    self.round_trip_time_s = rtt


class _Padding:
    """Sends padding packets at a set bitrate, in bursts every `_PADDING_INTERVAL_S`."""

    def __init__(self, loop: asyncio.AbstractEventLoop, send: Callable[[], bool]) -> None:
        self._loop = loop
        self._send = send
        self._bps = 0
        self._credit = 0.0
        self._timer: asyncio.TimerHandle | None = None

    def set_rate(self, bps: int) -> None:
        self._bps = bps
        if bps and self._timer is None:
            self._credit = 0.0
            self._timer = self._loop.call_later(_PADDING_INTERVAL_S, self._burst)
        elif not bps and self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _burst(self) -> None:
        self._credit += self._bps * _PADDING_INTERVAL_S / 8
        while self._credit >= _PADDING_SIZE:
            self._credit -= _PADDING_SIZE
            if not self._send():
                self._credit = 0.0
                break
        self._timer = self._loop.call_later(_PADDING_INTERVAL_S, self._burst)


def _signed32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value
