"""One forwarded stream: a publication's packets sent to one subscriber's sender.

Each subscription rewrites SSRC, payload type, sequence number and timestamp (offsets fixed
when forwarding starts, at a keyframe for video), answers the subscriber's NACKs from the
publication's history, passes PLI/FIR and REMB upstream, and writes sender reports that carry
the publisher's clock mapping so browsers can synchronise audio and video.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
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
from .rtp_writer import RtpWriter
from .settings import ForwardingSettings
from .tracks import ForwardedTrack

if TYPE_CHECKING:
    from .publication import Publication

logger = logging.getLogger(__name__)

_NTP_UNITS_PER_SECOND = 1 << 32


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
        self._packets_sent = 0
        self._bytes_sent = 0
        # The native twin of this subscription's rewrite state, once forwarding went native.
        self._output: fastpath.Output | None = None
        self.remb_bps: int | None = None
        self.round_trip_time_s: float | None = None
        self.active = False
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
        self._seq_offset: int | None = None
        self._ts_offset = 0
        # Extended publisher sequence number of the first packet forwarded.
        self._start = 0
        self._waiting_since = 0.0
        self._last_out_seq = 0
        self._last_out_ts = 0
        self._last_out_time = 0.0
        self._last_sr_lsr: int | None = None
        self._last_sr_time = 0.0
        self._reported_lost = 0
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

    async def close(self) -> None:
        """Stop forwarding to this subscriber; the transceiver stays until renegotiated."""
        if self._closed:
            return
        self._closed = True
        self.active = False
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
        self._waiting_since = self._loop.time()
        self.active = True
        logger.info(
            "subscription started subscriber=%s publisher=%s kind=%s codec=%s",
            self.subscriber_id,
            self.publication.participant_id,
            self.kind,
            codec.mimeType,
        )
        self.publication.request_keyframe()

    def sender_stopped(self) -> None:
        self.active = False
        self._forward_in_python()

    async def rtcp_received(self, packet: AnyRtcpPacket) -> bool:
        counters = self._counters
        if isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
            counters.nacks_received += 1
            for sequence_number in packet.lost:
                self._retransmit(sequence_number)
            return True
        if isinstance(packet, RtcpPsfbPacket):
            if packet.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR):
                if packet.fmt == RTCP_PSFB_PLI:
                    counters.plis_received += 1
                else:
                    counters.firs_received += 1
                self.publication.request_keyframe()
                return True
            if packet.fmt == RTCP_PSFB_APP:
                try:
                    bitrate, ssrcs = unpack_remb_fci(packet.fci)
                except ValueError:
                    return True
                if self._hook.ssrc in ssrcs:
                    self.remb_bps = bitrate
                    self.publication.subscriber_bitrate_changed()
                return True
        if isinstance(packet, (RtcpRrPacket, RtcpSrPacket)):
            self._receiver_reports(packet)
        return False

    def sender_report_due(self, packet: RtcpSrPacket) -> bool:
        if not self.forwarding:
            return False
        self._sync_native_state()
        now = self._loop.time()
        clock = self.publication.clock
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

    def source_changed(self) -> None:
        """The publisher's stream restarted (new SSRC): continue after the last packet sent."""
        if self._seq_offset is None:
            return
        self._forward_in_python()
        self._seq_offset = None
        self._next_sequence_number = (self._last_out_seq + 1) & 0xFFFF
        frame = self._clock_rate // (30 if self.kind == "video" else 50)
        self._next_timestamp = (self._last_out_ts + frame) & 0xFFFFFFFF
        self._waiting_since = self._loop.time()

    def forward(
        self,
        packet: RtpPacket,
        extended_seq: int,
        *,
        frame_start: bool,
        keyframe: bool,
        abs_send_time: int,
        now: float,
    ) -> None:
        """Send one publisher packet to this subscriber, rewritten."""
        if not self.active:
            return
        seq_offset = self._seq_offset
        if seq_offset is None:
            if not self._can_start(frame_start, keyframe, now):
                return
            seq_offset = self._begin(packet, extended_seq)
            if self._forward_natively(packet, extended_seq, abs_send_time, now):
                return
        elif extended_seq < self._start:
            return  # older than where this subscriber's stream began
        payload_type = self._payload_type_for(packet.payload_type)
        if payload_type is None:
            return
        out_seq = (packet.sequence_number + seq_offset) & 0xFFFF
        out_ts = (packet.timestamp + self._ts_offset) & 0xFFFFFFFF
        assert self._writer is not None
        data = self._writer.write(
            payload_type=payload_type,
            marker=packet.marker,
            sequence_number=out_seq,
            timestamp=out_ts,
            ssrc=self._hook.ssrc,
            payload=packet.payload,
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
        self._packets_sent += 1
        self._bytes_sent += len(packet.payload)
        self._counters.rtp_packets_sent += 1
        self._counters.rtp_payload_bytes_sent += len(packet.payload)

    # --- internals ------------------------------------------------------------------------

    def _can_start(self, frame_start: bool, keyframe: bool, now: float) -> bool:
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
        self.publication.request_keyframe()
        return False

    def _begin(self, packet: RtpPacket, extended_seq: int) -> int:
        seq_offset = (self._next_sequence_number - packet.sequence_number) & 0xFFFF
        self._seq_offset = seq_offset
        self._ts_offset = (self._next_timestamp - packet.timestamp) & 0xFFFFFFFF
        self._start = extended_seq
        self._last_out_seq = self._next_sequence_number
        return seq_offset

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

    def _retransmit(self, out_seq: int) -> None:
        seq_offset = self._seq_offset
        if seq_offset is None or self._writer is None:
            return
        entry = self.publication.history_packet((out_seq - seq_offset) & 0xFFFF)
        if entry is None or entry[0] < self._start:
            self._counters.retransmissions_missed += 1
            return
        packet = entry[1]
        payload_type = self._payload_type_for(packet.payload_type)
        if payload_type is None:
            return
        payload = packet.payload
        ssrc = self._hook.ssrc
        sequence_number = out_seq
        if self._rtx_payload_type is not None:
            # RFC 4588: the original sequence number leads the retransmitted payload.
            payload = out_seq.to_bytes(2, "big") + payload
            payload_type = self._rtx_payload_type
            ssrc = self._hook.rtx_ssrc
            sequence_number = self._rtx_sequence_number
            self._rtx_sequence_number = (self._rtx_sequence_number + 1) & 0xFFFF
        data = self._writer.write(
            payload_type=payload_type,
            marker=packet.marker,
            sequence_number=sequence_number,
            timestamp=(packet.timestamp + self._ts_offset) & 0xFFFFFFFF,
            ssrc=ssrc,
            payload=payload,
            abs_send_time=(current_ntp_time() >> 14) & 0x00FFFFFF,
        )
        try:
            self._hook.send_rtp(data)
        except ConnectionError:
            return
        self._counters.retransmissions_sent += 1

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
