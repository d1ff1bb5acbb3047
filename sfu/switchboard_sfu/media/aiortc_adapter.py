"""The one module that reaches into aiortc (and aioice) internals, for aiortc 1.16.x.

Everything the forwarding core needs that aiortc does not offer publicly goes through here:
tapping a receiver's RTP before its jitter buffer and stopping its decoder, redirecting a
sender's RTCP handling, sending raw RTP on a transport, editing negotiated codecs, limiting
ICE host candidates and timing ICE consent freshness. `tests/sfu/media/test_aiortc_contract.py`
fails loudly when any of these names or signatures move; keep that test and this module in
step.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

import aioice.ice
import aiortc
import pylibsrtp
from aiortc import (
    RTCDtlsTransport,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCRtpTransceiver,
)
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rate import RemoteBitrateEstimator
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcrtpparameters import (
    RTCRtpCodecParameters,
    RTCRtpHeaderExtensionParameters,
    RTCRtpReceiveParameters,
    RTCRtpSendParameters,
)
from aiortc.rtcrtpreceiver import NackGenerator, StreamStatistics
from aiortc.rtp import (
    RTCP_PSFB_APP,
    AnyRtcpPacket,
    RtcpPsfbPacket,
    RtcpSrPacket,
    RtpPacket,
    unpack_remb_fci,
)

SUPPORTED_AIORTC = "1.16."

# --- ICE host candidates -------------------------------------------------------------------

# aioice gathers a host candidate on every interface except loopback, from a module-level
# function; the override below consults this per-task variable, which a restricted peer
# connection sets only while it gathers, so other connections in the process are unaffected.
_host_addresses: contextvars.ContextVar[tuple[str, ...] | None] = contextvars.ContextVar(
    "switchboard_ice_host_addresses", default=None
)
_aioice_get_host_addresses = aioice.ice.get_host_addresses


def _get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    addresses = _host_addresses.get()
    if addresses is None:
        return _aioice_get_host_addresses(use_ipv4=use_ipv4, use_ipv6=use_ipv6)
    return list(addresses)


def _install_host_address_override() -> None:
    if aioice.ice.get_host_addresses is not _get_host_addresses:
        aioice.ice.get_host_addresses = _get_host_addresses


def restrict_host_candidates(pc: RTCPeerConnection, addresses: Sequence[str]) -> None:
    """Make `pc` gather host candidates on exactly `addresses` (loopback included).

    aiortc gathers inside `setLocalDescription` (in tasks that inherit the caller's context),
    so that method is wrapped on this instance to set the addresses for its duration.
    """
    _install_host_address_override()
    chosen = tuple(addresses)
    set_local_description = pc.setLocalDescription

    @functools.wraps(set_local_description)
    async def restricted(*args: Any, **kwargs: Any) -> None:
        token = _host_addresses.set(chosen)
        try:
            await set_local_description(*args, **kwargs)
        finally:
            _host_addresses.reset(token)

    pc.setLocalDescription = restricted  # type: ignore[method-assign]


# --- ICE consent freshness (RFC 7675) -------------------------------------------------------

# aioice checks consent on the nominated pair of every connected ICE connection: one STUN
# binding request (no retransmission, 0.5 s to answer) every CONSENT_INTERVAL seconds
# (randomised by +-20 %), and after CONSENT_FAILURES unanswered checks in a row it closes the
# connection. aiortc then sees its DTLS transport end and closes the whole peer connection:
# `connectionState` becomes "closed", never "failed", exactly as after a local close(). So
# the loop below records which connections it gave up on, for `consent_expired`.
_aioice_query_consent = aioice.ice.Connection.query_consent
_expired_connections: weakref.WeakSet[aioice.ice.Connection] = weakref.WeakSet()


async def _query_consent(connection: aioice.ice.Connection) -> None:
    await _aioice_query_consent(connection)
    # aioice's loop only returns once consent has expired (it is cancelled otherwise), right
    # after closing the connection and before anything waiting on that close has run.
    _expired_connections.add(connection)


def set_consent_freshness(interval_s: float, max_failures: int) -> None:
    """Check consent every `interval_s` (+-20 %) and give a connection up after
    `max_failures` unanswered checks in a row, for every ICE connection of the process
    (aioice reads these as module constants when each check is due)."""
    aioice.ice.CONSENT_INTERVAL = interval_s
    aioice.ice.CONSENT_FAILURES = max_failures
    aioice.ice.Connection.query_consent = _query_consent  # type: ignore[method-assign]


def consent_expired(pc: RTCPeerConnection) -> bool:
    """Whether an ICE connection of `pc` was closed because the peer stopped answering."""
    return any(transport._connection in _expired_connections for transport in _ice_transports(pc))


def _ice_transports(pc: RTCPeerConnection) -> list[aiortc.RTCIceTransport]:
    dtls = [t.receiver.transport for t in pc.getTransceivers()]
    if pc.sctp is not None:
        dtls.append(pc.sctp.transport)
    return [t.transport for t in dtls if t is not None]


# --- transceivers and negotiation -----------------------------------------------------------


def negotiated_codecs(transceiver: RTCRtpTransceiver) -> list[RTCRtpCodecParameters]:
    """Codecs agreed for `transceiver` so far (empty before any description was applied)."""
    return list(transceiver._codecs)


def set_negotiated_codecs(
    transceiver: RTCRtpTransceiver, codecs: Sequence[RTCRtpCodecParameters]
) -> None:
    """Replace the agreed codecs; the next answer (or our sending) uses exactly these."""
    transceiver._codecs = list(codecs)


def add_header_extensions(
    transceiver: RTCRtpTransceiver, extensions: Sequence[RTCRtpHeaderExtensionParameters]
) -> None:
    """Also negotiate `extensions` (the remote offer's ids) on `transceiver`: aiortc keeps only
    those it knows how to write, recomputed by every `setRemoteDescription`."""
    present = {ext.uri for ext in transceiver._headerExtensions}
    transceiver._headerExtensions = [
        *transceiver._headerExtensions,
        *(ext for ext in extensions if ext.uri not in present),
    ]


def transceiver_of(pc: RTCPeerConnection, track: MediaStreamTrack) -> RTCRtpTransceiver:
    """The transceiver whose receiver delivers the remote `track`."""
    for transceiver in pc.getTransceivers():
        if transceiver.receiver.track is track:
            return transceiver
    raise LookupError(f"track {track.id} is not received by this peer connection")


def set_sender_stream(sender: RTCRtpSender, stream_id: str) -> None:
    """Set the msid stream of a sender: tracks of one stream are played in sync by browsers."""
    sender._stream_id = stream_id


def rtcp_ssrc(transceiver: RTCRtpTransceiver) -> int:
    """The SSRC this side uses in RTCP feedback (aiortc shares it with the sender)."""
    return int(transceiver.sender._ssrc)


# --- receiving: tap before the jitter buffer ------------------------------------------------


class ReceiverListener(Protocol):
    """What a tapped receiver reports to the forwarding core."""

    def receiver_started(self, parameters: RTCRtpReceiveParameters) -> None: ...

    async def rtp_received(self, packet: RtpPacket, arrival_time_ms: int) -> None: ...

    def sender_report_received(self, packet: RtcpSrPacket) -> None: ...

    def bitrate_estimated(self, bitrate_bps: int) -> None: ...


class ReceiverTap:
    """A publisher's receiver whose RTP is handed to the forwarding core first.

    aiortc's own handling still runs afterwards (receiver reports, NACKs to the publisher,
    bandwidth estimation); its decoder is stopped as soon as aiortc starts it, so decoded
    frames never pile up on the unread remote track. aiortc's REMB feedback is held back and
    reported as an estimate: the forwarding core sends the bitrate bound upstream itself.

    A receiver of several streams (simulcast layers, see `receive_layers`) keeps aiortc's
    statistics and bandwidth estimation but gets one NACK generator per stream, and its
    packets skip aiortc's depacketiser and jitter buffer (which assume a single stream and
    only feed the stopped decoder).
    """

    def __init__(self, receiver: RTCRtpReceiver, listener: ReceiverListener) -> None:
        self._receiver = receiver
        self._listener = listener
        self._original_send_rtcp: Callable[[AnyRtcpPacket], Awaitable[None]] = receiver._send_rtcp
        self._rtx_media_ssrcs: Mapping[int, int] | None = None
        self._nack_generators: dict[int, NackGenerator] = {}
        if receiver._RTCRtpReceiver__started:
            raise RuntimeError("a receiver must be tapped before it starts (in the track event)")
        receive = receiver.receive
        handle_rtp = receiver._handle_rtp_packet
        handle_rtcp = receiver._handle_rtcp_packet

        async def tapped_receive(parameters: RTCRtpReceiveParameters) -> None:
            started = receiver._RTCRtpReceiver__started
            await receive(parameters)
            if not started:
                _stop_decoder(receiver)
                _route_unknown_ssrcs_by_mid(receiver.transport)
                listener.receiver_started(parameters)

        async def tapped_rtp(packet: RtpPacket, arrival_time_ms: int) -> None:
            await listener.rtp_received(packet, arrival_time_ms)
            if self._rtx_media_ssrcs is None:
                await handle_rtp(packet, arrival_time_ms=arrival_time_ms)
            else:
                await self._receive_layer_packet(packet, arrival_time_ms)

        async def tapped_rtcp(packet: AnyRtcpPacket) -> None:
            if isinstance(packet, RtcpSrPacket):
                listener.sender_report_received(packet)
            await handle_rtcp(packet)

        async def intercepted_send_rtcp(packet: AnyRtcpPacket) -> None:
            remb = _remb_bitrate(packet)
            if remb is not None:
                listener.bitrate_estimated(remb)
                return
            await self._original_send_rtcp(packet)

        receiver.receive = tapped_receive  # type: ignore[method-assign]
        receiver._handle_rtp_packet = tapped_rtp  # type: ignore[method-assign]
        receiver._handle_rtcp_packet = tapped_rtcp  # type: ignore[method-assign]
        receiver._send_rtcp = intercepted_send_rtcp  # type: ignore[method-assign]

    def receive_layers(self, rtx_media_ssrcs: Mapping[int, int]) -> None:
        """Treat the receiver's packets as several streams from now on; `rtx_media_ssrcs`
        (RTX SSRC -> its stream's SSRC) is read live, so the caller keeps it up to date."""
        self._rtx_media_ssrcs = rtx_media_ssrcs

    def reset_bandwidth_estimate(self) -> None:
        """Start estimating the publisher's bitrate afresh (as after the first packets)."""
        if self._receiver._RTCRtpReceiver__remote_bitrate_estimator is not None:
            self._receiver._RTCRtpReceiver__remote_bitrate_estimator = RemoteBitrateEstimator()

    async def send_rtcp(self, packet: AnyRtcpPacket) -> None:
        """Send feedback to the publisher (never raises on a closed transport)."""
        await self._original_send_rtcp(packet)

    async def _receive_layer_packet(self, packet: RtpPacket, arrival_time_ms: int) -> None:
        """What aiortc's `_handle_rtp_packet` does before depacketising, per stream."""
        receiver = self._receiver
        if not receiver._enabled:
            return
        estimator = receiver._RTCRtpReceiver__remote_bitrate_estimator
        if estimator is not None and packet.extensions.abs_send_time is not None:
            remb = estimator.add(
                abs_send_time=packet.extensions.abs_send_time,
                arrival_time_ms=arrival_time_ms,
                payload_size=len(packet.payload) + packet.padding_size,
                ssrc=packet.ssrc,
            )
            if remb is not None:
                self._listener.bitrate_estimated(int(remb[0]))
        codec = receiver._RTCRtpReceiver__codecs.get(packet.payload_type)
        if codec is None:
            return
        streams = receiver._RTCRtpReceiver__remote_streams
        stream = streams.get(packet.ssrc)
        if stream is None:
            stream = streams[packet.ssrc] = StreamStatistics(codec.clockRate)
        stream.add(packet)
        if receiver._RTCRtpReceiver__nack_generator is None:
            return  # NACK not negotiated
        media_ssrc = packet.ssrc
        sequenced: RtpPacket | _Repaired = packet
        if codec.mimeType.lower().endswith("/rtx"):
            rtx_media_ssrcs = self._rtx_media_ssrcs or {}
            if packet.ssrc not in rtx_media_ssrcs or len(packet.payload) < 2:
                return
            media_ssrc = rtx_media_ssrcs[packet.ssrc]
            # RFC 4588: the repaired packet's sequence number leads the payload.
            sequenced = _Repaired(int.from_bytes(packet.payload[:2], "big"))
        nacks = self._nack_generators.get(media_ssrc)
        if nacks is None:
            nacks = self._nack_generators[media_ssrc] = NackGenerator()
        if nacks.add(sequenced):  # type: ignore[arg-type]
            await receiver._send_rtcp_nack(media_ssrc, sorted(nacks.missing))


class _Repaired:
    """What aiortc's NACK generator reads of a packet: its sequence number."""

    __slots__ = ("sequence_number",)

    def __init__(self, sequence_number: int) -> None:
        self.sequence_number = sequence_number


_mid_routed: weakref.WeakSet[RTCDtlsTransport] = weakref.WeakSet()


def _route_unknown_ssrcs_by_mid(transport: RTCDtlsTransport) -> None:
    """Route a packet of an unknown SSRC by its MID header extension before aiortc's
    payload-type guess: bundled m-lines sharing payload types (two simulcast video tracks,
    whose offers list no SSRCs) would otherwise have their packets dropped."""
    if transport in _mid_routed:
        return
    _mid_routed.add(transport)
    router = transport._rtp_router
    route_rtp = router.route_rtp

    def route_by_mid(packet: RtpPacket) -> Any:
        mid = packet.extensions.mid
        if mid is not None and packet.ssrc not in router.ssrc_table:
            receiver = router.mid_table.get(mid)
            if receiver is not None and receiver in router.payload_type_table.get(
                packet.payload_type, ()
            ):
                router.ssrc_table[packet.ssrc] = receiver
                return receiver
        return route_rtp(packet)

    router.route_rtp = route_by_mid


def _stop_decoder(receiver: RTCRtpReceiver) -> None:
    receiver._RTCRtpReceiver__stop_decoder()


def _remb_bitrate(packet: AnyRtcpPacket) -> int | None:
    if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
        try:
            return int(unpack_remb_fci(packet.fci)[0])
        except ValueError:
            return None
    return None


def tap_receiver(receiver: RTCRtpReceiver, listener: ReceiverListener) -> ReceiverTap:
    """Tap `receiver` (call from the peer connection's "track" event, before it starts)."""
    return ReceiverTap(receiver, listener)


# --- sending: raw RTP out, RTCP in ----------------------------------------------------------


class SenderListener(Protocol):
    """What a hooked sender reports to the forwarding core."""

    def sender_started(
        self, parameters: RTCRtpSendParameters, transport: RTCDtlsTransport
    ) -> None: ...

    async def rtcp_received(self, packet: AnyRtcpPacket) -> bool:
        """Handle feedback from the subscriber; True when aiortc must not see it."""
        ...

    def sender_report_due(self, packet: RtcpSrPacket) -> bool:
        """Fill in a sender report about to be sent; False to leave it out."""
        ...


class SenderHook:
    """A subscriber's sender driven by the forwarding core instead of an encoder.

    The sender keeps its SSRCs, SDP presence and RTCP loop; the core sends packets with
    `send_rtp`, answers NACKs and PLIs itself, and writes the sender reports' clock fields.
    """

    def __init__(self, sender: RTCRtpSender, listener: SenderListener) -> None:
        self._sender = sender
        self._transport: RTCDtlsTransport | None = None
        # aiortc draws both when the sender is created and never changes them.
        self.ssrc = int(sender._ssrc)
        self.rtx_ssrc = int(sender._rtx_ssrc)
        send = sender.send
        handle_rtcp = sender._handle_rtcp_packet
        send_rtcp = sender._send_rtcp

        async def hooked_send(parameters: RTCRtpSendParameters) -> None:
            await send(parameters)
            if self._transport is None:
                self._transport = sender.transport
                listener.sender_started(parameters, sender.transport)

        async def hooked_rtcp(packet: AnyRtcpPacket) -> None:
            if not await listener.rtcp_received(packet):
                await handle_rtcp(packet)

        async def hooked_send_rtcp(packets: list[AnyRtcpPacket]) -> None:
            kept = [
                p
                for p in packets
                if not (isinstance(p, RtcpSrPacket) and p.ssrc == sender._ssrc)
                or listener.sender_report_due(p)
            ]
            if kept:
                await send_rtcp(kept)

        sender.send = hooked_send  # type: ignore[method-assign]
        sender._handle_rtcp_packet = hooked_rtcp  # type: ignore[method-assign]
        sender._send_rtcp = hooked_send_rtcp  # type: ignore[method-assign]

    def send_rtp(self, data: bytes) -> None:
        """Protect and send one serialised RTP packet now; ConnectionError when not connected.

        This is the fan-out hot path: it does what `RTCDtlsTransport._send_rtp` does (SRTP,
        then the ICE pair in use) without its five nested coroutines per packet.
        """
        transport = self._transport
        if transport is None or transport._state is not DtlsState.CONNECTED:
            raise ConnectionError("sender not connected")
        pair = transport.transport._connection._nominated.get(1)
        if pair is None:
            raise ConnectionError("no ICE pair nominated")
        try:
            protected = transport._tx_srtp.protect(data)
        except pylibsrtp.Error as exc:
            raise ConnectionError(f"SRTP protect failed: {exc}") from exc
        protocol = pair.protocol
        if type(protocol).send_data is _HOST_SEND_DATA:
            # A host candidate's send_data is a bare sendto wrapped in a coroutine.
            datagrams = protocol.transport
            if datagrams is None:
                raise ConnectionError("ICE socket closed")
            datagrams.sendto(protected, pair.remote_addr)
        else:
            # Relayed (TURN) pairs wrap the packet: keep their own path, bounded like a
            # socket buffer (a TURN channel that never binds must not collect packets).
            if len(_pending_sends) >= _MAX_PENDING_SENDS:
                raise ConnectionError("relayed ICE pair backlogged")
            task = asyncio.ensure_future(protocol.send_data(protected, pair.remote_addr))
            _pending_sends.add(task)
            task.add_done_callback(_pending_sends.discard)


_HOST_SEND_DATA = aioice.ice.StunProtocol.send_data
_pending_sends: set[asyncio.Future[None]] = set()
_MAX_PENDING_SENDS = 4096


def hook_sender(sender: RTCRtpSender, listener: SenderListener) -> SenderHook:
    """Hook `sender` (before negotiation completes, so its start is seen)."""
    return SenderHook(sender, listener)


def aiortc_version() -> str:
    return str(aiortc.__version__)
