"""The aiortc (and aioice) internals `switchboard_sfu.media.aiortc_adapter` relies on.

When one of these fails after an upgrade, the forwarding core is broken: read the new aiortc
source and update the adapter (and this contract) before relaxing the version pin.
"""

from __future__ import annotations

import inspect
import re

import aioice.ice
import aiortc
import pylibsrtp
import pytest
from aiortc import RTCDtlsTransport, RTCPeerConnection, RTCRtpReceiver, RTCRtpSender
from aiortc.mediastreams import VideoStreamTrack
from aiortc.rtcdtlstransport import RtpRouter
from aiortc.rtcrtpreceiver import NackGenerator, StreamStatistics
from aiortc.rtcrtptransceiver import RTCRtpTransceiver
from aiortc.rtp import HeaderExtensions, HeaderExtensionsMap
from media_harness import DEADLINE_S, LOOPBACK
from pylibsrtp import _binding

from fixtures.waiting import eventually
from switchboard_sfu.media import IceSettings, aiortc_adapter, create_peer_connection


def parameters(function: object) -> list[str]:
    return list(inspect.signature(function).parameters)  # type: ignore[arg-type]


def source(function: object) -> str:
    return inspect.getsource(function)  # type: ignore[arg-type]


def test_aiortc_is_the_pinned_minor_version():
    assert aiortc.__version__.startswith(aiortc_adapter.SUPPORTED_AIORTC)


@pytest.mark.parametrize(
    ("owner", "name", "expected"),
    [
        (RTCRtpReceiver, "receive", ["self", "parameters"]),
        (RTCRtpReceiver, "_handle_rtp_packet", ["self", "packet", "arrival_time_ms"]),
        (RTCRtpReceiver, "_handle_rtcp_packet", ["self", "packet"]),
        (RTCRtpReceiver, "_send_rtcp", ["self", "packet"]),
        (RTCRtpReceiver, "_RTCRtpReceiver__stop_decoder", ["self"]),
        (RtpRouter, "route_rtp", ["self", "packet"]),
        (NackGenerator, "add", ["self", "packet"]),
        (RTCRtpSender, "send", ["self", "parameters"]),
        (RTCRtpSender, "_handle_rtcp_packet", ["self", "packet"]),
        (RTCRtpSender, "_send_rtcp", ["self", "packets"]),
        (RTCDtlsTransport, "_send_rtp", ["self", "data"]),
        (aioice.ice, "get_host_addresses", ["use_ipv4", "use_ipv6"]),
        (aioice.ice.StunProtocol, "send_data", ["self", "data", "addr"]),
    ],
)
def test_private_methods_keep_their_signatures(owner, name, expected):
    assert parameters(getattr(owner, name)) == expected


def test_private_state_is_where_the_adapter_reads_it():
    init = source(RTCRtpReceiver.__init__)
    assert "self.__started = False" in init
    assert "self.__decoder_thread" in init
    # A receiver of simulcast layers: one NACK generator per stream, and a bandwidth estimate
    # started afresh when paused layers resume (ReceiverTap.reset_bandwidth_estimate).
    assert "self.__nack_generator = NackGenerator()" in init
    assert "self.__remote_bitrate_estimator = RemoteBitrateEstimator()" in init
    # The RID header extensions are added to the transceiver's negotiated ones.
    assert "self._headerExtensions" in source(RTCRtpTransceiver.__init__)
    # Unknown SSRCs are routed by MID before aiortc's payload-type guess.
    router = source(RtpRouter.__init__)
    for table in ("mid_table", "ssrc_table", "payload_type_table"):
        assert f"self.{table}" in router
    sender_init = source(RTCRtpSender.__init__)
    assert "self._ssrc = " in sender_init and "self._rtx_ssrc = " in sender_init
    assert "self._stream_id = " in sender_init
    assert "self._codecs" in source(RTCRtpTransceiver.__init__)


def test_the_receive_fast_path_mirrors_aiortcs_own():
    # _FastReceive replaces StunProtocol.datagram_received on the instance: asyncio must look
    # it up there, and aioice hands non-STUN data on exactly as the fast path's fallback does.
    assert "self._protocol.datagram_received(" in source(
        __import__("asyncio.selector_events").selector_events._SelectorDatagramTransport
    )
    received = source(aioice.ice.StunProtocol.datagram_received)
    assert "self.receiver.data_received(data, self.local_candidate.component)" in received
    assert "self._protocols" in source(aioice.ice.Connection.__init__)
    # What RTCDtlsTransport does with an SRTP datagram, which the fast path repeats.
    recv = source(RTCDtlsTransport._recv_next)
    assert "data = self._rx_srtp.unprotect(data)" in recv
    assert "self.__rx_bytes += len(data)" in recv and "self.__rx_packets += 1" in recv
    handle = source(RTCDtlsTransport._handle_rtp_data)
    assert "RtpPacket.parse(data, self._rtp_header_extensions_map)" in handle
    assert "receiver = self._rtp_router.route_rtp(packet)" in handle
    # ReceiverTap.handle_rtp keeps these parts of the receiver's own handling.
    handle_rtp = source(RTCRtpReceiver._handle_rtp_packet)
    for part in (
        "self.__remote_bitrate_estimator.add(",
        "self.__remote_streams[packet.ssrc].add(packet)",
        "self.__rtx_ssrc.get(packet.ssrc)",
        "self.__nack_generator.add(packet)",
        "await self._send_rtcp_nack(",
        "codec = self.__codecs.get(packet.payload_type)",
        "if not self._enabled:",
    ):
        assert part in handle_rtp, part
    assert parameters(RTCRtpReceiver._send_rtcp_nack) == ["self", "media_ssrc", "lost"]
    # The statistics and NACK generator read only these packet fields (their native ports
    # take sequence number and timestamp).
    statistics = source(StreamStatistics.add) + source(NackGenerator.add)
    fields = set(re.findall(r"packet\.(\w+)", statistics))
    assert fields <= {"sequence_number", "timestamp", "ssrc"}, fields
    # The state _NativeReceiveState hands to the native ports and back, and nothing else.
    state = set(re.findall(r"self\.(\w+)(?::[^=\n]+)? =", source(StreamStatistics.__init__)))
    assert state == {
        "base_seq",
        "max_seq",
        "cycles",
        "packets_received",
        "_clockrate",
        "_jitter_q4",
        "_last_arrival",
        "_last_timestamp",
        "_expected_prior",
        "_received_prior",
    }, state
    assert set(re.findall(r"self\.(\w+)", source(NackGenerator))) == {
        "max_seq",
        "missing",
        "truncate",
    }
    assert aiortc.rtp.RTP_HISTORY_SIZE == 128  # how far back the native generator NACKs
    assert "self.__remote_streams: dict[int, StreamStatistics] = {}" in source(
        RTCRtpReceiver.__init__
    )
    # The native receiver becomes the socket's reader (_FastReceive.use_ingress): asyncio's
    # own reader stays callable for errors, and closing the transport removes either.
    selector_events = __import__("asyncio.selector_events").selector_events
    transport = selector_events._SelectorDatagramTransport
    assert parameters(transport._read_ready) == ["self"]
    assert "self._loop._remove_reader(self._sock_fd)" in source(
        selector_events._SelectorTransport.close
    )
    assert "reader.cancel()" in source(selector_events.BaseSelectorEventLoop._add_reader)
    ids = source(HeaderExtensionsMap.__init__)
    assert "self.__ids = HeaderExtensions()" in ids
    assert {"abs_send_time", "audio_level"} <= set(vars(HeaderExtensions()))


def test_the_native_path_reaches_libsrtp_through_pylibsrtp():
    # aiortc_adapter.libsrtp_session: the srtp_t behind a Session and libsrtp's functions.
    assert "self._srtp = ffi.gc(srtp" in source(pylibsrtp.Session.__init__)
    assert "func(self._srtp[0], self._cdata, len_p)" in source(pylibsrtp.Session._Session__process)
    for name in ("srtp_protect", "srtp_unprotect"):
        assert _binding.ffi.addressof(_binding.lib, name) != _binding.ffi.NULL
    assert pylibsrtp.__version__.startswith("1.")  # libsrtp 2.x: (ctx, buffer, int *len)
    # The sender's transport announces when it stops (SenderHook listens for it).
    assert 'self.emit("statechange")' in source(RTCDtlsTransport._set_state)


def test_the_send_fast_path_mirrors_aiortcs_own():
    # SenderHook.send_rtp repeats RTCDtlsTransport._send_rtp: state check, SRTP, ICE send.
    send_rtp = source(RTCDtlsTransport._send_rtp)
    assert "self._state != State.CONNECTED" in send_rtp
    assert "self._tx_srtp.protect(data)" in send_rtp
    assert "await self.transport._send(data)" in send_rtp
    assert "self._send = self._connection.send" in source(aiortc.RTCIceTransport)
    sendto = source(aioice.ice.Connection.sendto)
    assert "self._nominated.get(component)" in sendto
    assert "active_pair.protocol.send_data(data, active_pair.remote_addr)" in sendto
    assert "self.transport.sendto(data, addr)" in source(aioice.ice.StunProtocol.send_data)


def test_hooked_methods_are_called_through_the_instance():
    assert "self._rtp_router.route_rtp(packet)" in source(RTCDtlsTransport._handle_rtp_data)
    # The receiver's header extensions (RIDs included) configure the transport's parser.
    register = source(RTCDtlsTransport._register_rtp_receiver)
    assert "self._rtp_header_extensions_map.configure(parameters)" in register
    assert "headerExtensions=transceiver._headerExtensions" in source(
        RTCPeerConnection._RTCPeerConnection__remoteRtp
    )
    # The adapter replaces these on instances; aiortc must look them up there at call time.
    assert "receiver._handle_rtp_packet(" in source(RTCDtlsTransport._handle_rtp_data)
    assert "recipient._handle_rtcp_packet(" in source(RTCDtlsTransport._handle_rtcp_data)
    assert "await self._send_rtcp(" in source(RTCRtpReceiver._handle_rtp_packet)
    assert "await self._send_rtcp(" in source(RTCRtpSender._run_rtcp)
    connect = source(RTCPeerConnection._RTCPeerConnection__connect)
    assert "transceiver.sender.send(" in connect and "transceiver.receiver.receive(" in connect
    # The decoder thread is only fed while it exists: stopping it stops the frame queue.
    assert "and self.__decoder_thread" in source(RTCRtpReceiver._handle_rtp_packet)


def test_ice_gathering_goes_through_the_overridable_function():
    assert "get_host_addresses(" in source(aioice.ice.Connection.gather_candidates)
    gather = source(RTCPeerConnection.setLocalDescription)
    assert "await self.__gather()" in gather
    assert "asyncio.gather" in source(RTCPeerConnection._RTCPeerConnection__gather)


def test_consent_freshness_is_timed_by_module_constants_and_ends_in_a_close():
    # set_consent_freshness sets these constants and wraps query_consent on the class.
    query_consent = source(aiortc_adapter._aioice_query_consent)
    assert "CONSENT_INTERVAL * (" in query_consent
    assert "if failures >= CONSENT_FAILURES:" in query_consent
    assert "retransmissions=0" in query_consent
    assert query_consent.count("return") == 1 and "return await self.close()" in query_consent
    assert "asyncio.create_task(self.query_consent())" in source(aioice.ice.Connection.connect)
    # The close wakes the DTLS transport (it ends) and the ICE transport's monitor, each in
    # its own task, so they run only after query_consent has returned.
    close = source(aioice.ice.Connection.close)
    assert "self._queue.put_nowait(None)" in close and "ConnectionClosed()" in close
    # aiortc closes a peer connection whose DTLS transports all ended: "closed", not "failed".
    update = source(RTCPeerConnection._RTCPeerConnection__updateConnectionState)
    assert 'dtlsStates == set(["closed"])' in update and "self.close()" in update
    assert "self._connection = " in source(aiortc.RTCIceTransport.__init__)


class RecordingListener:
    def __init__(self) -> None:
        self.parameters = None
        self.packets = 0

    def receiver_started(self, parameters):
        self.parameters = parameters

    def rtp_received(self, packet, arrival_time_ms):
        self.packets += 1

    def sender_report_received(self, packet):
        pass

    def bitrate_estimated(self, bitrate_bps):
        pass


async def test_a_tapped_receiver_hands_over_rtp_and_stops_its_decoder():
    sender_pc = create_peer_connection(IceSettings(LOOPBACK))
    receiver_pc = create_peer_connection(IceSettings(LOOPBACK))
    listener = RecordingListener()
    receivers = []

    @receiver_pc.on("track")
    def on_track(track):
        receiver = aiortc_adapter.transceiver_of(receiver_pc, track).receiver
        aiortc_adapter.tap_receiver(receiver, listener)
        receivers.append(receiver)

    sender_pc.addTrack(VideoStreamTrack())
    try:
        await sender_pc.setLocalDescription(await sender_pc.createOffer())
        await receiver_pc.setRemoteDescription(sender_pc.localDescription)
        await receiver_pc.setLocalDescription(await receiver_pc.createAnswer())
        await sender_pc.setRemoteDescription(receiver_pc.localDescription)

        async def packets() -> int:
            return listener.packets

        await eventually(packets, DEADLINE_S, "tapped packets", until=lambda n: n >= 10)
        assert listener.parameters is not None
        assert receivers[0]._RTCRtpReceiver__decoder_thread is None
    finally:
        await sender_pc.close()
        await receiver_pc.close()
