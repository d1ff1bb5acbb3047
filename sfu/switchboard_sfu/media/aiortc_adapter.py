"""The one module that reaches into aiortc (and aioice, pylibsrtp) internals, for aiortc 1.16.x.

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
import time
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import aioice.ice
import aiortc
import pylibsrtp
from aiortc import (
    RTCDtlsTransport,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCRtpTransceiver,
    clock,
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
    unwrap_rtx,
)
from pylibsrtp._binding import ffi as _srtp_ffi
from pylibsrtp._binding import lib as _srtp_lib

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

    def rtp_received(self, packet: RtpPacket, arrival_time_ms: int) -> None: ...

    def sender_report_received(self, packet: RtcpSrPacket) -> None: ...

    def bitrate_estimated(self, bitrate_bps: int) -> None: ...

    def native_burst(
        self, packets: int, payload_bytes: int, sent_packets: int, sent_bytes: int
    ) -> None:
        """Packets the native fast path received in one burst (their bytes with padding) and
        what its outputs sent of them."""
        ...

    def native_packet(self, record: NativeRecord, packet: RtpPacket | None) -> None:
        """A packet the native fast path received (counted in its burst) that subscriptions
        on the Python path need too (`packet`: when it came through Python)."""
        ...

    def native_forwarding_time(self, seconds: float) -> None:
        """Time spent in one native receive call (decrypt, track, fan out)."""
        ...


# What the native module reports per packet while Python forwards too, and per packet it is
# handed (see sfu/fastpath/src/ingress.rs, Track::record): (owner, sequence number,
# timestamp, size, abs-send-time, arrival ms, extended sequence number, frame start,
# keyframe, duplicate, packets sent, payload bytes sent, packet bytes, new uplink estimate).
NativeRecord = tuple[Any, ...]
# What it reports per track and burst (Track::summary): (owner, packets, their bytes with
# padding, packets sent, payload bytes sent, newest uplink estimate or None, [the missing
# sequence numbers of each NACK due]).
NativeSummary = tuple[Any, ...]


@dataclass(frozen=True)
class ReceiveRoute:
    """What a native receiver needs from a publisher's transport: its SRTP session and the
    publisher's header extension ids (0: not negotiated)."""

    srtp: LibsrtpSession
    abs_send_time_id: int
    audio_level_id: int


class _NativeStreamStatistics(StreamStatistics):
    """aiortc's receive statistics of a stream whose packets the native track counts (its
    receiver reports and stats read these fields from the track)."""

    def __init__(self, track: Any, clock_rate: int, prior: StreamStatistics | None) -> None:
        # Not StreamStatistics.__init__: the counted fields live in the track.
        self._track = track
        self._clockrate = clock_rate
        self._expected_prior = prior._expected_prior if prior is not None else 0
        self._received_prior = prior._received_prior if prior is not None else 0

    def _field(self, index: int) -> Any:
        return self._track.receive_statistics[index]

    base_seq = property(lambda self: self._field(0))  # type: ignore[assignment]
    max_seq = property(lambda self: self._field(1))  # type: ignore[assignment]
    cycles = property(lambda self: self._field(2))  # type: ignore[assignment]
    packets_received = property(lambda self: self._field(3))  # type: ignore[assignment]
    _jitter_q4 = property(lambda self: self._field(4))  # type: ignore[assignment]
    _last_arrival = property(lambda self: self._field(5))  # type: ignore[assignment]
    _last_timestamp = property(lambda self: self._field(6))  # type: ignore[assignment]

    def add(self, packet: RtpPacket) -> None:
        """A packet of this stream that reached Python first."""
        self._track.count_received(packet.sequence_number, packet.timestamp)

    def detached(self) -> StreamStatistics:
        """The same statistics as aiortc's own object, to go on counting in Python."""
        stats = StreamStatistics(self._clockrate)
        (
            stats.base_seq,
            stats.max_seq,
            stats.cycles,
            stats.packets_received,
            stats._jitter_q4,
            stats._last_arrival,
            stats._last_timestamp,
        ) = self._track.receive_statistics
        stats._expected_prior = self._expected_prior
        stats._received_prior = self._received_prior
        return stats


class _NativeNackGenerator(NackGenerator):
    """aiortc's NACK generator of a stream whose packets the native track sees."""

    def __init__(self, track: Any) -> None:
        self._track = track

    @property  # type: ignore[override]
    def max_seq(self) -> int | None:
        return self._track.nack_state[0]

    @property  # type: ignore[override]
    def missing(self) -> set[int]:
        return set(self._track.nack_state[1])

    def add(self, packet: RtpPacket) -> bool:
        """A packet of this stream that reached Python first (a repair)."""
        return bool(self._track.nack_add(packet.sequence_number))

    def truncate(self) -> None:
        pass  # the native generator truncates as it adds

    def detached(self) -> NackGenerator:
        generator = NackGenerator()
        generator.max_seq, missing = self._track.nack_state
        generator.missing = set(missing)
        return generator


class _NativeReceiveState:
    """Moves a receiver's statistics and NACK state for one stream into a native track and
    back: while the track receives natively, aiortc's receiver reads them from it."""

    @staticmethod
    def adopt(receiver: RTCRtpReceiver, track: Any) -> None:
        ssrc = int(track.media_ssrc)
        streams: dict[int, StreamStatistics] = receiver._RTCRtpReceiver__remote_streams
        prior = streams.get(ssrc)
        if isinstance(prior, _NativeStreamStatistics):
            prior = prior.detached()
        if prior is not None:
            clock_rate = prior._clockrate
        else:
            codecs = receiver._RTCRtpReceiver__codecs
            clock_rate = next(iter(codecs.values())).clockRate if codecs else 90000
        nacks = receiver._RTCRtpReceiver__nack_generator
        if isinstance(nacks, _NativeNackGenerator):
            nacks = nacks.detached()
        track.adopt_receive_state(
            clock_rate=clock_rate,
            statistics=None
            if prior is None
            else (
                prior.base_seq,
                prior.max_seq,
                prior.cycles,
                prior.packets_received,
                prior._jitter_q4,
                prior._last_arrival,
                prior._last_timestamp,
            ),
            nack=None if nacks is None else (nacks.max_seq, sorted(nacks.missing)),
        )
        streams[ssrc] = _NativeStreamStatistics(track, clock_rate, prior)
        if nacks is not None:
            receiver._RTCRtpReceiver__nack_generator = _NativeNackGenerator(track)

    @staticmethod
    def release(receiver: RTCRtpReceiver, track: Any) -> None:
        streams: dict[int, StreamStatistics] = receiver._RTCRtpReceiver__remote_streams
        for ssrc, stream in list(streams.items()):
            if isinstance(stream, _NativeStreamStatistics) and stream._track is track:
                streams[ssrc] = stream.detached()
        nacks = receiver._RTCRtpReceiver__nack_generator
        if isinstance(nacks, _NativeNackGenerator) and nacks._track is track:
            receiver._RTCRtpReceiver__nack_generator = nacks.detached()


class ReceiverTap:
    """A publisher's receiver whose RTP is handed to the forwarding core first.

    aiortc's own bookkeeping still runs afterwards (statistics for receiver reports, NACKs to
    the publisher, bandwidth estimation); its decoder is stopped as soon as aiortc starts it,
    so decoded frames never pile up on the unread remote track. aiortc's REMB feedback is held
    back and reported as an estimate: the forwarding core sends the bitrate bound upstream.

    Once the receiver starts, its transport's SRTP packets skip aiortc's receive chain (see
    `_FastReceive`) and arrive at `handle_rtp` straight from the socket callback.

    A receiver of several streams (simulcast layers, see `receive_layers`) gets one NACK
    generator per stream and its RTX mapped by the forwarding core, which learns the streams'
    SSRCs from their RID header extensions (the offer lists none).
    """

    def __init__(self, receiver: RTCRtpReceiver, listener: ReceiverListener) -> None:
        self._receiver = receiver
        self._listener = listener
        self._original_send_rtcp: Callable[[AnyRtcpPacket], Awaitable[None]] = receiver._send_rtcp
        if receiver._RTCRtpReceiver__started:
            raise RuntimeError("a receiver must be tapped before it starts (in the track event)")
        receive = receiver.receive
        handle_rtp = receiver._handle_rtp_packet
        handle_rtcp = receiver._handle_rtcp_packet
        self._feedback: set[asyncio.Future[None]] = set()
        self._rtx_media_ssrcs: Mapping[int, int] | None = None
        self._nack_generators: dict[int, NackGenerator] = {}

        async def tapped_receive(parameters: RTCRtpReceiveParameters) -> None:
            started = receiver._RTCRtpReceiver__started
            await receive(parameters)
            if not started:
                _stop_decoder(receiver)
                _route_unknown_ssrcs_by_mid(receiver.transport)
                listener.receiver_started(parameters)
                _FastReceive.of(receiver.transport).add(receiver, self)

        async def tapped_rtp(packet: RtpPacket, arrival_time_ms: int) -> None:
            if self._rtx_media_ssrcs is not None:
                self.handle_rtp(packet, arrival_time_ms)  # several streams: never aiortc's
                return
            listener.rtp_received(packet, arrival_time_ms)
            await handle_rtp(packet, arrival_time_ms=arrival_time_ms)

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
        self._native_ssrc: int | None = None
        self._native_track: Any = None

    def receive_layers(self, rtx_media_ssrcs: Mapping[int, int]) -> None:
        """Treat the receiver's packets as several streams from now on; `rtx_media_ssrcs`
        (RTX SSRC -> its stream's SSRC) is read live, so the caller keeps it up to date."""
        self._rtx_media_ssrcs = rtx_media_ssrcs

    def reset_bandwidth_estimate(self) -> None:
        """Start estimating the publisher's bitrate afresh (as after the first packets)."""
        if self._receiver._RTCRtpReceiver__remote_bitrate_estimator is not None:
            self._receiver._RTCRtpReceiver__remote_bitrate_estimator = RemoteBitrateEstimator()

    # --- the native fast path ---------------------------------------------------------

    def receive_route(self) -> ReceiveRoute | None:
        """The publisher transport's receive side, once it is connected."""
        transport = self._receiver.transport
        if transport._state is not DtlsState.CONNECTED or transport._rx_srtp is None:
            return None
        ids = transport._rtp_header_extensions_map._HeaderExtensionsMap__ids
        return ReceiveRoute(
            srtp=libsrtp_session(transport._rx_srtp),
            abs_send_time_id=ids.abs_send_time or 0,
            audio_level_id=ids.audio_level or 0,
        )

    def forward_natively(self, make_ingress: Callable[[ReceiveRoute], Any], track: Any) -> bool:
        """Let the native module receive this track's packets (SSRC `track.media_ssrc`)
        straight from the socket; False when the transport cannot (not connected)."""
        fast = _FastReceive.of(self._receiver.transport)
        if fast.ingress is None:
            route = self.receive_route()
            if route is None:
                return False
            fast.use_ingress(make_ingress(route))
        self._native_ssrc = int(track.media_ssrc)
        self._native_track = track
        _NativeReceiveState.adopt(self._receiver, track)
        fast.ingress.add_track(track)
        return True

    def forward_in_python(self, track: Any) -> None:
        fast = _FastReceive.of(self._receiver.transport)
        if fast.ingress is not None:
            fast.ingress.remove_track(track)
        _NativeReceiveState.release(self._receiver, track)
        self._native_ssrc = None
        self._native_track = None

    def serialize(self, packet: RtpPacket) -> tuple[bytes, tuple[int, int]]:
        """`packet` as bytes for the native module, with the transport's (abs-send-time,
        audio level) extension ids."""
        extensions = self._receiver.transport._rtp_header_extensions_map
        ids = extensions._HeaderExtensionsMap__ids
        return packet.serialize(extensions), (ids.abs_send_time or 0, ids.audio_level or 0)

    def parse(self, data: bytes) -> RtpPacket:
        """A packet kept by the native module, parsed as aiortc parses what it receives."""
        return RtpPacket.parse(data, self._receiver.transport._rtp_header_extensions_map)

    def native_burst(self, summary: NativeSummary) -> None:
        """A burst the native module received for this receiver. It did what `handle_rtp`
        does for aiortc's receiver (receive statistics, NACK generator, uplink estimate:
        ports of aiortc's); here the NACKs it found due are sent, the estimate reported and
        the forwarding core told."""
        _, packets, size, sent_packets, sent_bytes, estimate, nacks = summary
        if estimate is not None:
            self._listener.bitrate_estimated(estimate)
        ssrc = self._native_ssrc
        if nacks and ssrc is not None and self._receiver._enabled:
            for missing in nacks:
                self._spawn(self._receiver._send_rtcp_nack(ssrc, missing))
        self._listener.native_burst(packets, size, sent_packets, sent_bytes)

    def native_packet(self, record: NativeRecord) -> None:
        """A packet of the burst that subscriptions on the Python path need too."""
        self._listener.native_packet(record, None)

    def native_forwarding_time(self, seconds: float) -> None:
        self._listener.native_forwarding_time(seconds)

    def handle_rtp(self, packet: RtpPacket, arrival_time_ms: int) -> None:
        """One RTP packet from the fast receive path: the forwarding core, then what aiortc's
        `_handle_rtp_packet` keeps for a receiver without a decoder.

        Left out: the depacketiser and jitter buffer (they only feed the stopped decoder).
        """
        self._listener.rtp_received(packet, arrival_time_ms)
        receiver = self._receiver
        if not receiver._enabled:
            return
        estimator = receiver._RTCRtpReceiver__remote_bitrate_estimator
        abs_send_time = packet.extensions.abs_send_time
        if estimator is not None and abs_send_time is not None:
            size = len(packet.payload) + packet.padding_size
            if self._native_track is not None:
                # One estimate per stream: the native track's, fed with every packet.
                bitrate = self._native_track.estimate(arrival_time_ms, abs_send_time, size)
            else:
                remb = estimator.add(
                    abs_send_time=abs_send_time,
                    arrival_time_ms=arrival_time_ms,
                    payload_size=size,
                    ssrc=packet.ssrc,
                )
                bitrate = None if remb is None else int(remb[0])
            if bitrate is not None:
                self._listener.bitrate_estimated(bitrate)
        codecs = receiver._RTCRtpReceiver__codecs
        codec = codecs.get(packet.payload_type)
        if codec is None:
            return
        streams = receiver._RTCRtpReceiver__remote_streams
        stream = streams.get(packet.ssrc)
        if stream is None:
            stream = streams[packet.ssrc] = StreamStatistics(codec.clockRate)
        stream.add(packet)
        if codec.mimeType.lower().endswith("/rtx"):
            rtx_ssrcs = self._rtx_media_ssrcs
            if rtx_ssrcs is None:
                rtx_ssrcs = receiver._RTCRtpReceiver__rtx_ssrc
            original_ssrc = rtx_ssrcs.get(packet.ssrc)
            apt = codec.parameters.get("apt")
            if (
                original_ssrc is None
                or len(packet.payload) < 2
                or not isinstance(apt, int)
                or apt not in codecs
            ):
                return
            packet = unwrap_rtx(packet, payload_type=apt, ssrc=original_ssrc)
        nacks = self._nack_generator(packet.ssrc)
        if nacks is not None and nacks.add(packet):
            self._spawn(receiver._send_rtcp_nack(packet.ssrc, sorted(nacks.missing)))

    def _nack_generator(self, ssrc: int) -> NackGenerator | None:
        """aiortc's (one stream), or one per stream of a receiver of several (None: NACK
        not negotiated)."""
        generator = self._receiver._RTCRtpReceiver__nack_generator
        if generator is None or self._rtx_media_ssrcs is None:
            return generator
        per_stream = self._nack_generators.get(ssrc)
        if per_stream is None:
            per_stream = self._nack_generators[ssrc] = NackGenerator()
        return per_stream

    async def send_rtcp(self, packet: AnyRtcpPacket) -> None:
        """Send feedback to the publisher (never raises on a closed transport)."""
        await self._original_send_rtcp(packet)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._feedback.add(task)
        task.add_done_callback(self._feedback.discard)


class _FastReceive:
    """A DTLS transport's incoming SRTP, handled in the socket's datagram callback.

    aiortc passes each datagram through aioice's STUN parser (which fails on media), a queue,
    the ICE and DTLS transports' receive tasks and several coroutines before a receiver sees
    it. For transports whose receivers are all tapped, the ICE sockets' `datagram_received` is
    replaced on the instance: SRTP (not SRTCP) is unprotected, parsed, routed as aiortc routes
    it and handed to the tap synchronously. Everything else (STUN, DTLS, SRTCP) takes
    aiortc's own path unchanged.

    Once the native module receives for the transport (`use_ingress`), it also reads the
    transport's plain UDP sockets itself: each socket's reader in the event loop becomes a
    burst read by the native `Ingress` (one `recvmmsg`), which hands back what is not its own.
    """

    _by_transport: ClassVar[weakref.WeakKeyDictionary[RTCDtlsTransport, _FastReceive]] = (
        weakref.WeakKeyDictionary()
    )

    def __init__(self, transport: RTCDtlsTransport) -> None:
        self._transport = transport
        self._taps: dict[RTCRtpReceiver, ReceiverTap] = {}
        self._hooked: set[int] = set()
        self._pending: set[asyncio.Future[None]] = set()
        # The native module's receiver for this transport (`_fastpath.Ingress`), if used.
        self.ingress: Any = None
        # Plain UDP sockets the native receiver can read itself: (descriptor, asyncio
        # transport, reader to install once it is used).
        self._sockets: list[tuple[int, Any, Callable[[], None]]] = []

    def use_ingress(self, ingress: Any) -> None:
        """Receive natively from now on: `ingress` reads the transport's sockets."""
        self.ingress = ingress
        for fd, datagrams, reader in self._sockets:
            if not datagrams.is_closing():
                # Replaces the transport's own reader (it reads one datagram per wake-up);
                # closing the transport removes this one as it would its own.
                datagrams._loop._add_reader(fd, reader)  # type: ignore[attr-defined]

    @classmethod
    def of(cls, transport: RTCDtlsTransport) -> _FastReceive:
        fast = cls._by_transport.get(transport)
        if fast is None:
            fast = cls._by_transport[transport] = cls(transport)
        return fast

    def add(self, receiver: RTCRtpReceiver, tap: ReceiverTap) -> None:
        self._taps[receiver] = tap
        # Gathering is over when a receiver starts: these are all the sockets there will be.
        for protocol in self._transport.transport._connection._protocols:
            if id(protocol) not in self._hooked:
                self._hooked.add(id(protocol))
                self._hook(protocol)

    def _hook(self, protocol: aioice.ice.StunProtocol) -> None:
        python_received = self._python_receive(protocol)
        # Only a plain UDP socket can be drained directly (a TURN allocation wraps packets).
        drain_fd: int | None = None
        datagrams = protocol.transport
        if isinstance(datagrams, asyncio.BaseTransport):
            socket = datagrams.get_extra_info("socket")
            drain_fd = socket.fileno() if socket is not None else None

        def native_received(result: Any, addr: tuple[Any, ...] | None, started: float) -> None:
            summaries, records, others = result
            for summary in summaries:
                summary[0].native_burst(summary)
            for record in records:
                record[0].native_packet(record)
            if summaries:
                summaries[0][0].native_forwarding_time(time.perf_counter() - started)
            for other, source in others:
                if source or addr:
                    python_received(other, source or addr)

        def datagram_received(data: bytes | str, addr: tuple[Any, ...]) -> None:
            ingress = self.ingress
            if ingress is not None and type(data) is bytes:
                started = time.perf_counter()
                result = ingress.receive(data, drain_fd)
                if result is not None:
                    native_received(result, addr, started)
                    return
            python_received(data, addr)

        protocol.datagram_received = datagram_received  # type: ignore[method-assign]
        # The selector event loop's datagram transport: its reader can be replaced.
        read_one = getattr(datagrams, "_read_ready", None)
        if drain_fd is None or read_one is None or not hasattr(datagrams, "_loop"):
            return
        fd = drain_fd

        def readable() -> None:
            started = time.perf_counter()
            ingress = self.ingress
            result = ingress.receive_from(fd) if ingress is not None else None
            if result is None:
                read_one()  # the transport's own read meets the error and reports it
                return
            native_received(result, None, started)

        self._sockets.append((fd, datagrams, readable))
        if self.ingress is not None and not datagrams.is_closing():
            datagrams._loop._add_reader(fd, readable)  # type: ignore[attr-defined]

    def _python_receive(
        self, protocol: aioice.ice.StunProtocol
    ) -> Callable[[bytes | str, tuple[Any, ...]], None]:
        """The socket's datagram handler for what the native module does not take: SRTP to
        the tapped receivers in Python, the rest to aioice's handler."""
        original = protocol.datagram_received
        transport = self._transport
        taps = self._taps
        extensions = transport._rtp_header_extensions_map
        now_ms = clock.current_ms

        def python_received(data: bytes | str, addr: tuple[Any, ...]) -> None:
            srtp = transport._rx_srtp
            if (
                type(data) is not bytes
                or len(data) < 12
                or not 127 < data[0] < 192
                or 191 < data[1] < 224  # SRTCP (RFC 5761 payload types 64-95 with marker)
                or srtp is None
                or transport._state is not DtlsState.CONNECTED
            ):
                original(data, addr)
                return
            arrival_time_ms = now_ms()
            transport._RTCDtlsTransport__rx_bytes += len(data)
            transport._RTCDtlsTransport__rx_packets += 1
            try:
                data = srtp.unprotect(data)
                packet = RtpPacket.parse(data, extensions)
            except (pylibsrtp.Error, ValueError):
                return  # aiortc drops these too
            receiver = transport._rtp_router.route_rtp(packet)
            if receiver is None:
                return
            tap = taps.get(receiver)
            if tap is not None:
                tap.handle_rtp(packet, arrival_time_ms)
            else:
                task = asyncio.ensure_future(
                    receiver._handle_rtp_packet(packet, arrival_time_ms=arrival_time_ms)
                )
                self._pending.add(task)
                task.add_done_callback(self._pending.discard)

        return python_received


def estimates_bitrate(receiver: RTCRtpReceiver) -> bool:
    """True when aiortc keeps a bandwidth estimate for this receiver (video)."""
    return receiver._RTCRtpReceiver__remote_bitrate_estimator is not None


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

    def sender_stopped(self) -> None:
        """The transport left the connected state for good: nothing can be sent any more."""
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
                transport = self._transport = sender.transport

                @transport.on("statechange")
                def on_statechange() -> None:
                    if transport._state in (DtlsState.CLOSED, DtlsState.FAILED):
                        listener.sender_stopped()

                listener.sender_started(parameters, transport)

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

    def direct_route(self) -> DirectRoute | None:
        """What `send_rtp` uses, for sending without it: the transport's SRTP session, the
        socket and the remote address of the nominated ICE pair. None unless that pair is a
        plain host/server-reflexive socket (relayed pairs wrap packets) and connected."""
        transport = self._transport
        if transport is None or transport._state is not DtlsState.CONNECTED:
            return None
        pair = transport.transport._connection._nominated.get(1)
        if pair is None or type(pair.protocol).send_data is not _HOST_SEND_DATA:
            return None
        datagrams = pair.protocol.transport
        if not isinstance(datagrams, asyncio.BaseTransport) or transport._tx_srtp is None:
            return None
        socket = datagrams.get_extra_info("socket")
        if socket is None:
            return None
        host, port = pair.remote_addr[0], int(pair.remote_addr[1])
        return DirectRoute(
            srtp=libsrtp_session(transport._tx_srtp),
            socket_fd=socket.fileno(),
            host=host,
            port=port,
        )


@dataclass(frozen=True)
class LibsrtpSession:
    """A pylibsrtp session as C addresses: `owner` must outlive every use of `ctx`."""

    owner: pylibsrtp.Session
    ctx: int
    protect: int
    unprotect: int


@dataclass(frozen=True)
class DirectRoute:
    """How a subscriber's RTP leaves: SRTP session, UDP socket, remote address."""

    srtp: LibsrtpSession
    socket_fd: int
    host: str
    port: int


def libsrtp_session(session: pylibsrtp.Session) -> LibsrtpSession:
    """The libsrtp context behind `session` and libsrtp's protect/unprotect functions, so a
    native caller uses the same session (same keys, rollover counters and replay state)."""

    def address(pointer: Any) -> int:
        return int(_srtp_ffi.cast("uintptr_t", pointer))

    return LibsrtpSession(
        owner=session,
        ctx=address(session._srtp[0]),
        protect=address(_srtp_ffi.addressof(_srtp_lib, "srtp_protect")),
        unprotect=address(_srtp_ffi.addressof(_srtp_lib, "srtp_unprotect")),
    )


_HOST_SEND_DATA = aioice.ice.StunProtocol.send_data
_pending_sends: set[asyncio.Future[None]] = set()
_MAX_PENDING_SENDS = 4096


def hook_sender(sender: RTCRtpSender, listener: SenderListener) -> SenderHook:
    """Hook `sender` (before negotiation completes, so its start is seen)."""
    return SenderHook(sender, listener)


def aiortc_version() -> str:
    return str(aiortc.__version__)
