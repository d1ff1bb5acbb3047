"""A WebRTC test peer in its own process: publishes synthetic media or subscribes, and reports
what it sent or received (payload digests, decoded frames, RTCP) as JSON lines.

Protocol (one JSON object per line): the peer writes {"event": "offer", "sdp": ...} at start,
then answers commands read from stdin: {"cmd": "answer", "sdp"}, {"cmd": "offer", "sdp"}
(renegotiation: replies {"event": "answer"}), {"cmd": "report"} (replies {"event":
"report", ...}), {"cmd": "send_data", "label", "count", "size"}, {"cmd": "remb_limit",
"bps"} (0: none), {"cmd": "stop_media"} (simulcast: stop sending, reply {"event":
"stopped", "sent_layers"}) and {"cmd": "exit"}.

With `--simulcast` a publisher sends its video as three layers, as a browser does with
`sendEncodings` (RIDs q, h and f, scaled down by 4, 2 and 1): aiortc has no simulcast, so the
peer offers it in SDP itself and encodes, packetises and sends each layer on its own SSRC with
the RID header extension.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Callable
from fractions import Fraction
from typing import Any

from aiortc import RTCRtpSender, RTCRtpTransceiver, RTCSessionDescription, rtcrtpsender
from aiortc.codecs import get_encoder, vpx
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RtcpPacket,
    RtcpPsfbPacket,
    RtcpSrPacket,
    RtpPacket,
    is_rtcp,
    pack_remb_fci,
    unpack_remb_fci,
    unwrap_rtx,
)
from av import AudioFrame, VideoFrame

from fixtures.simulcast_sender import LayerStream, add_simulcast_transceiver, simulcast_offer
from switchboard_sfu.media import IceSettings, create_peer_connection


def digest(payload: bytes) -> str:
    return hashlib.blake2b(payload, digest_size=8).hexdigest()


def xor(data: bytes, key: int) -> bytes:
    return bytes(b ^ key for b in data)


def vp8_descriptor_length(payload: bytes) -> int:
    _, rest = vpx.VpxPayloadDescriptor.parse(payload)
    return len(payload) - len(rest)


def packet_entry(packet: RtpPacket, vp8: bool) -> list[Any]:
    """[sequence number, timestamp, payload digest, frame data digest, VP8 picture id]: the
    frame data is the payload after the VP8 descriptor, whose picture id a forwarder may
    rewrite when it switches simulcast layers."""
    entry = [packet.sequence_number, packet.timestamp, digest(packet.payload)]
    if not vp8:
        return [*entry, entry[2], None]
    descriptor, rest = vpx.VpxPayloadDescriptor.parse(packet.payload)
    return [*entry, digest(rest), descriptor.picture_id]


def vp8_keyframe_start(payload: bytes) -> bool:
    """First packet of a VP8 keyframe: descriptor S bit, partition 0, P bit clear."""
    descriptor, rest = vpx.VpxPayloadDescriptor.parse(payload)
    return bool(descriptor.partition_start and descriptor.partition_id == 0) and not (
        rest[0] & 0x01
    )


class SyntheticVideo(MediaStreamTrack):
    """Moving gradient with a frame counter stripe: every frame differs, encoders stay cheap."""

    kind = "video"

    def __init__(self, width: int, height: int, fps: int) -> None:
        super().__init__()
        self._width, self._height, self._fps = width, height, fps
        row = bytes((x * 255 // width) for x in range(width)) * 2
        self._rows = row
        self._chroma = bytes([128]) * (width * height // 4)
        self._count = 0
        self._start = time.monotonic()

    async def recv(self) -> VideoFrame:
        self._count += 1
        delay = self._start + self._count / self._fps - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        shift = (self._count * 4) % self._width
        line = self._rows[shift : shift + self._width]
        stripe = bytes([(self._count * 37) & 0xFF]) * self._width
        luma = b"".join(
            stripe if (y // 8) % 8 == self._count % 8 else line for y in range(self._height)
        )
        frame = VideoFrame(width=self._width, height=self._height, format="yuv420p")
        frame.planes[0].update(luma)
        frame.planes[1].update(self._chroma)
        frame.planes[2].update(self._chroma)
        frame.pts = self._count * (90000 // self._fps)
        frame.time_base = Fraction(1, 90000)
        return frame


class SyntheticAudio(MediaStreamTrack):
    """A gliding tone, 20 ms frames at 48 kHz, so consecutive Opus packets differ."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._samples = 0
        self._start = time.monotonic()

    async def recv(self) -> AudioFrame:
        rate, count = 48000, 960
        delay = self._start + self._samples / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        pcm = array.array(
            "h",
            (
                int(8000 * math.sin(2 * math.pi * (300 + (n // 4800) % 400) * n / rate))
                for n in range(self._samples, self._samples + count)
            ),
        )
        frame = AudioFrame(format="s16", layout="mono", samples=count)
        frame.planes[0].update(pcm.tobytes())
        frame.pts = self._samples
        frame.sample_rate = rate
        frame.time_base = Fraction(1, rate)
        self._samples += count
        return frame


SIMULCAST_LAYERS = (("q", 4, 150_000), ("h", 2, 400_000), ("f", 1, 1_000_000))
"""(RID, scale-down factor, target bitrate) of each layer, lowest first."""


class SimulcastVideo:
    """Sends a synthetic camera as three simulcast layers, each with its own encoder, on one
    video transceiver."""

    def __init__(self, peer: Peer, transceiver: RTCRtpTransceiver) -> None:
        self._peer = peer
        self._transceiver = transceiver
        self.sent: dict[str, list[list[Any]]] = {rid: [] for rid, _, _ in SIMULCAST_LAYERS}
        self.stopped = False

    async def run(self) -> None:
        args = self._peer.args
        codec = next(
            c for c in self._transceiver._codecs if not c.mimeType.lower().endswith("/rtx")
        )
        vp8 = codec.mimeType.lower() == "video/vp8"
        layers = []
        for rid, scale, bitrate in SIMULCAST_LAYERS:
            stream = LayerStream(rid, self._transceiver)
            encoder = get_encoder(codec)
            encoder.target_bitrate = bitrate
            keyframe = [False]
            stream.on_keyframe_request = self._keyframe_requested(keyframe)
            if rid == SIMULCAST_LAYERS[0][0]:
                stream.on_remb = self._peer.rembs.append
            layers.append((stream, scale, encoder, keyframe))
        source = SyntheticVideo(args.width, args.height, args.fps)
        started = last_report = time.monotonic()
        while True:
            frame = await source.recv()
            if self.stopped:  # while waiting for this frame: report and sent must agree
                return
            for stream, scale, encoder, keyframe in layers:
                scaled = frame
                if scale > 1:
                    scaled = frame.reformat(width=args.width // scale, height=args.height // scale)
                force, keyframe[0] = keyframe[0], False
                payloads, timestamp = encoder.encode(scaled, force)
                for packet in await stream.send(payloads, timestamp):
                    self.sent[stream.rid].append(packet_entry(packet, vp8))
            # Sending never suspends: let commands in even when encoding falls behind.
            await asyncio.sleep(0)
            now = time.monotonic()
            if now - last_report >= 1.0:
                last_report = now
                for stream, *_ in layers:
                    await stream.send_report(now - started)

    def _keyframe_requested(self, flag: list[bool]) -> Callable[[], None]:
        def requested() -> None:
            flag[0] = True
            self._peer.keyframe_requests.append(self._peer.now())

        return requested


class Peer:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.pc = create_peer_connection(IceSettings(announce_address=args.address))
        self.started = time.monotonic()
        self.kind_of_ssrc: dict[int, str] = {}
        self.sent: dict[str, list[list[Any]]] = {"audio": [], "video": []}
        self.sent_reports: list[dict[str, Any]] = []
        self.keyframe_requests: list[float] = []
        self.rembs: list[int] = []
        self.received: dict[str, list[list[Any]]] = {"audio": [], "video": []}
        self.received_reports: list[dict[str, Any]] = []
        self.frames: dict[str, int] = {"audio": 0, "video": 0}
        self.first_frame: dict[str, dict[str, Any]] = {}
        self.first_packet_at: dict[str, float] = {}
        self.joined_at: float | None = None
        self.first_payload_keyframe: bool | None = None
        self.dropped: dict[str, Any] | None = None
        self.repaired: list[dict[str, Any]] = []
        self.messages: dict[str, list[str]] = {}
        self.channels: dict[str, Any] = {}
        self.tasks: list[asyncio.Task[None]] = []
        self.simulcast: SimulcastVideo | None = None
        self.padding_bytes = 0
        self.remb_limit = args.remb_limit

    # --- setup ----------------------------------------------------------------------------

    def setup(self) -> None:
        args = self.args
        if args.role == "publisher":
            if args.xor_key:
                self._encrypt_encoder_output(args.xor_key)
            if args.video != "none" and args.simulcast:
                transceiver = add_simulcast_transceiver(self.pc, f"video/{args.video.upper()}")
                self.simulcast = SimulcastVideo(self, transceiver)
            elif args.video != "none":
                sender = self.pc.addTrack(SyntheticVideo(args.width, args.height, args.fps))
                self._prefer(sender, f"video/{args.video.upper()}")
                self._watch_sender(sender)
            if args.audio:
                self._watch_sender(self.pc.addTrack(SyntheticAudio()))
        else:
            if args.video != "none":
                self.pc.addTransceiver("video", direction="recvonly")
            if args.audio:
                self.pc.addTransceiver("audio", direction="recvonly")
            self.pc.on("track", self._on_track)
        for label in args.data:
            ordered = label != "unreliable"
            channel = self.pc.createDataChannel(
                label, ordered=ordered, maxRetransmits=None if ordered else 0
            )
            self.channels[label] = channel
            self.messages[label] = []
            channel.on("message", lambda m, label=label: self.messages[label].append(str(m)[:32]))
        if self.pc.getTransceivers():
            self._record_outgoing(self.pc.getTransceivers()[0].sender.transport)

    def _prefer(self, sender: RTCRtpSender, mime_type: str) -> None:
        transceiver = next(t for t in self.pc.getTransceivers() if t.sender is sender)
        capabilities = RTCRtpSender.getCapabilities("video").codecs
        chosen = [c for c in capabilities if c.mimeType.lower() == mime_type.lower()][:1]
        rtx = [c for c in capabilities if c.mimeType.lower() == "video/rtx"][:1]
        transceiver.setCodecPreferences(chosen + rtx)

    def _encrypt_encoder_output(self, key: int) -> None:
        """Stand-in for an Encoded Transform: XOR every frame byte after the VP8 descriptor."""
        original = rtcrtpsender.get_encoder

        def get_encoder(codec: Any) -> Any:
            encoder = original(codec)
            if codec.mimeType.lower() != "video/vp8":
                return encoder
            encode = encoder.encode

            def encrypted(frame: Any, force_keyframe: bool = False) -> Any:
                payloads, timestamp = encode(frame, force_keyframe)
                out = []
                for payload in payloads:
                    head = vp8_descriptor_length(payload)
                    out.append(payload[:head] + xor(payload[head:], key))
                return out, timestamp

            encoder.encode = encrypted
            return encoder

        rtcrtpsender.get_encoder = get_encoder

    def _watch_sender(self, sender: RTCRtpSender) -> None:
        self.kind_of_ssrc[sender._ssrc] = sender.kind
        handle = sender._handle_rtcp_packet

        async def watched(packet: Any) -> None:
            if isinstance(packet, RtcpPsfbPacket):
                if packet.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR):
                    self.keyframe_requests.append(self.now())
                elif packet.fmt == RTCP_PSFB_APP:
                    self.rembs.append(unpack_remb_fci(packet.fci)[0])
            await handle(packet)

        sender._handle_rtcp_packet = watched

    def _record_outgoing(self, transport: Any) -> None:
        send = transport._send_rtp

        async def recorded(data: bytes) -> None:
            if is_rtcp(data):
                for packet in RtcpPacket.parse(data):
                    if isinstance(packet, RtcpSrPacket) and packet.ssrc in self.kind_of_ssrc:
                        self.sent_reports.append(self._report(packet))
            else:
                packet = RtpPacket.parse(data)
                kind = self.kind_of_ssrc.get(packet.ssrc)
                if kind is not None and packet.payload:
                    self.sent[kind].append(
                        [packet.sequence_number, packet.timestamp, digest(packet.payload)]
                    )
            await send(data)

        transport._send_rtp = recorded

    def _report(self, packet: RtcpSrPacket) -> dict[str, Any]:
        return {
            "kind": self.kind_of_ssrc.get(packet.ssrc),
            "ssrc": packet.ssrc,
            "ntp": packet.sender_info.ntp_timestamp,
            "rtp": packet.sender_info.rtp_timestamp,
            "packets": packet.sender_info.packet_count,
            "at": self.now(),
        }

    def _on_track(self, track: MediaStreamTrack) -> None:
        transceiver = next(t for t in self.pc.getTransceivers() if t.receiver.track is track)
        receiver = transceiver.receiver
        kind = track.kind
        handle_rtp = receiver._handle_rtp_packet
        handle_rtcp = receiver._handle_rtcp_packet
        key = self.args.xor_key
        drop_at = self.args.drop_video_packet if kind == "video" else 0
        seen = 0

        async def tapped_rtp(packet: RtpPacket, arrival_time_ms: int) -> None:
            nonlocal seen
            codecs = {c.payloadType: c for c in transceiver._codecs}
            codec = codecs.get(packet.payload_type)
            if codec is None:
                return await handle_rtp(packet, arrival_time_ms=arrival_time_ms)
            if codec.mimeType.lower().endswith("/rtx"):
                if len(packet.payload) < 2:
                    self.padding_bytes += packet.padding_size
                    return await handle_rtp(packet, arrival_time_ms=arrival_time_ms)
                original = unwrap_rtx(packet, codec.parameters["apt"], packet.ssrc)
                self.repaired.append(
                    {"seq": original.sequence_number, "digest": digest(original.payload)}
                )
            elif packet.payload:
                if kind not in self.first_packet_at:
                    self.first_packet_at[kind] = self.now()
                    if codec.mimeType.lower() == "video/vp8":
                        self.first_payload_keyframe = vp8_keyframe_start(packet.payload)
                seen += 1
                self.received[kind].append(
                    packet_entry(packet, codec.mimeType.lower() == "video/vp8")
                )
                self.kind_of_ssrc[packet.ssrc] = kind
                if seen == drop_at:
                    self.dropped = {
                        "seq": packet.sequence_number,
                        "digest": digest(packet.payload),
                    }
                    return None
                if key and kind == "video":
                    head = vp8_descriptor_length(packet.payload)
                    packet.payload = packet.payload[:head] + xor(packet.payload[head:], key)
            return await handle_rtp(packet, arrival_time_ms=arrival_time_ms)

        async def tapped_rtcp(packet: Any) -> None:
            if isinstance(packet, RtcpSrPacket):
                report = self._report(packet)
                report["kind"] = kind
                self.received_reports.append(report)
            await handle_rtcp(packet)

        receiver._handle_rtp_packet = tapped_rtp
        receiver._handle_rtcp_packet = tapped_rtcp
        self._limit_remb(receiver)
        self.tasks.append(asyncio.ensure_future(self._consume(track)))

    def _limit_remb(self, receiver: Any) -> None:
        """Report at most `self.remb_limit` bps in REMB (when set), like a subscriber on a
        slow link."""
        send_rtcp = receiver._send_rtcp

        async def limited(packet: Any) -> None:
            remb = isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP
            if remb and self.args.no_remb:
                return
            if (
                self.remb_limit
                and isinstance(packet, RtcpPsfbPacket)
                and packet.fmt == RTCP_PSFB_APP
            ):
                bitrate, ssrcs = unpack_remb_fci(packet.fci)
                packet.fci = pack_remb_fci(min(bitrate, self.remb_limit), ssrcs)
            await send_rtcp(packet)

        receiver._send_rtcp = limited

    async def _consume(self, track: MediaStreamTrack) -> None:
        if self.args.never_read:
            return
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            self.frames[track.kind] += 1
            if track.kind not in self.first_frame:
                self.first_frame[track.kind] = {
                    "at": self.now(),
                    "key_frame": bool(getattr(frame, "key_frame", True)),
                }

    # --- protocol -------------------------------------------------------------------------

    def now(self) -> float:
        # CLOCK_MONOTONIC is system-wide: times compare across the test's processes.
        return time.monotonic()

    def emit(self, event: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(event) + "\n")
        sys.stdout.flush()

    async def run(self) -> None:
        self.setup()
        await self.pc.setLocalDescription(await self.pc.createOffer())
        offer = self.pc.localDescription.sdp
        if self.simulcast is not None:
            offer = simulcast_offer(offer, [rid for rid, _, _ in SIMULCAST_LAYERS])
        self.emit({"event": "offer", "sdp": offer})
        reader = asyncio.StreamReader()
        loop = asyncio.get_running_loop()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := await reader.readline():
            command = json.loads(line)
            name = command["cmd"]
            if name == "answer":
                self.joined_at = self.now()
                await self.pc.setRemoteDescription(
                    RTCSessionDescription(sdp=command["sdp"], type="answer")
                )
                if self.simulcast is not None:
                    self.tasks.append(asyncio.ensure_future(self._send_simulcast()))
            elif name == "offer":
                await self.pc.setRemoteDescription(
                    RTCSessionDescription(sdp=command["sdp"], type="offer")
                )
                await self.pc.setLocalDescription(await self.pc.createAnswer())
                self.emit({"event": "answer", "sdp": self.pc.localDescription.sdp})
            elif name == "send_data":
                channel = self.channels[command["label"]]
                for i in range(command["count"]):
                    text = f"{command['label']}:{i}:"
                    channel.send(text + "x" * max(0, command.get("size", 0) - len(text)))
                self.emit({"event": "sent_data", "count": command["count"]})
            elif name == "report":
                self.emit(self.report())
            elif name == "stop_media":
                if self.simulcast is not None:
                    self.simulcast.stopped = True
                    self.emit({"event": "stopped", "sent_layers": self.simulcast.sent})
            elif name == "remb_limit":
                self.remb_limit = int(command["bps"])
                self.emit({"event": "remb_limit"})
            elif name == "exit":
                break
        await self.pc.close()

    async def _send_simulcast(self) -> None:
        assert self.simulcast is not None
        connected = asyncio.Event()

        @self.pc.on("connectionstatechange")
        def on_state() -> None:
            if self.pc.connectionState == "connected":
                connected.set()

        if self.pc.connectionState != "connected":
            await connected.wait()
        with contextlib.suppress(ConnectionError):  # closed at exit
            await self.simulcast.run()

    def report(self) -> dict[str, Any]:
        return {
            "sent_layers": self.simulcast.sent if self.simulcast is not None else {},
            "padding_bytes": self.padding_bytes,
            "event": "report",
            "pid": os.getpid(),
            "connection": self.pc.connectionState,
            "joined_at": self.joined_at,
            "sent": self.sent,
            "sent_reports": self.sent_reports,
            "keyframe_requests": self.keyframe_requests,
            "rembs": self.rembs,
            "received": self.received,
            "received_reports": self.received_reports,
            "frames": self.frames,
            "first_frame": self.first_frame,
            "first_packet_at": self.first_packet_at,
            "first_payload_keyframe": self.first_payload_keyframe,
            "dropped": self.dropped,
            "repaired": self.repaired,
            "ssrcs": {str(ssrc): kind for ssrc, kind in self.kind_of_ssrc.items()},
            "messages": {label: len(m) for label, m in self.messages.items()},
            "message_indexes": {
                label: [int(m.split(":")[1]) for m in messages]
                for label, messages in self.messages.items()
            },
        }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--role", choices=["publisher", "subscriber"], required=True)
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--video", choices=["vp8", "h264", "none"], default="vp8")
    parser.add_argument("--audio", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--xor-key", type=int, default=0)
    parser.add_argument("--drop-video-packet", type=int, default=0)
    parser.add_argument("--never-read", action="store_true")
    parser.add_argument("--remb-limit", type=int, default=0)
    parser.add_argument("--no-remb", action="store_true", help="send no bandwidth estimate")
    parser.add_argument("--simulcast", action="store_true", help="publish video as 3 layers")
    parser.add_argument("--data", nargs="*", default=[])
    asyncio.run(Peer(parser.parse_args()).run())


if __name__ == "__main__":
    main()
