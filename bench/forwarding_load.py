"""Load generator for the forwarding benchmark: one publisher replaying a pre-encoded VP8 clip
and N subscribers that count packets without decoding them, all in this one process.

Reports on stdin command "report" (one JSON line); subscribers ask for the clip's bitrate via
REMB, so a re-encoding baseline sends at the same rate as the publisher.

With `--simulcast` the publisher sends three layers (the clip at full, half and quarter size)
as a browser does, each on its own SSRC with the RID header extension (aiortc cannot publish
simulcast); subscribers then ask for far more than the clip's bitrate, so each receives the
full-size layer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import aiohttp
import av
from aiortc import RTCPeerConnection, RTCRtpSender, RTCRtpTransceiver, RTCSessionDescription
from aiortc.codecs import get_encoder
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, RtpPacket, is_rtcp, pack_remb_fci
from janus_gateway import ROOM, JanusSession
from vp8_clip import FPS, ReplayTrack, encode_clip

from switchboard_sfu.media import IceSettings, create_peer_connection

TESTS = Path(__file__).resolve().parent.parent / "tests"
sys.path.insert(0, str(TESTS))  # the test suite's simulcast sender

from fixtures.simulcast_sender import (  # noqa: E402
    LayerStream,
    add_simulcast_transceiver,
    simulcast_offer,
)

SIMULCAST_LAYERS = (("q", 4, 12), ("h", 2, 4), ("f", 1, 1))
"""(RID, scale-down factor, bitrate divisor) of each layer, lowest first."""


class CountingSubscriber:
    """A peer that counts the RTP packets it receives and drops them.

    Once connected, SRTP datagrams are counted in the ICE socket callback without being
    decrypted (STUN, DTLS and RTCP still take aiortc's path): one process can then take in
    64 subscribers' packets and still answer the SFU's ICE consent checks on a busy machine.
    """

    def __init__(self, ice: IceSettings, remb_bps: int) -> None:
        self.pc = create_peer_connection(ice)
        self.packets = 0
        self.remb_bps = remb_bps
        self.pc.on("track", self._on_track)
        self._feedback: asyncio.Task[None] | None = None

    def _on_track(self, track: Any) -> None:
        receiver = next(t.receiver for t in self.pc.getTransceivers() if t.receiver.track is track)

        async def count(packet: RtpPacket, arrival_time_ms: int) -> None:
            self.packets += 1
            if self._feedback is None:
                self._feedback = asyncio.ensure_future(self._send_remb(receiver, packet.ssrc))

        receiver._handle_rtp_packet = count

    def count_at_the_socket(self) -> None:
        receiver = next(t.receiver for t in self.pc.getTransceivers())
        connection = receiver.transport.transport._connection
        for protocol in connection._protocols:
            original = protocol.datagram_received

            def counted(data: bytes, addr: Any, original: Any = original) -> None:
                if len(data) >= 12 and 127 < data[0] < 192 and not 191 < data[1] < 224:
                    self.packets += 1
                    if self._feedback is None:
                        media_ssrc = int.from_bytes(data[8:12], "big")
                        self._feedback = asyncio.ensure_future(
                            self._send_remb(receiver, media_ssrc)
                        )
                    return
                original(data, addr)

            protocol.datagram_received = counted

    async def _send_remb(self, receiver: Any, media_ssrc: int) -> None:
        sender_ssrc = next(t.sender._ssrc for t in self.pc.getTransceivers())
        while True:
            remb = RtcpPsfbPacket(
                fmt=RTCP_PSFB_APP,
                ssrc=sender_ssrc,
                media_ssrc=0,
                fci=pack_remb_fci(self.remb_bps, [media_ssrc]),
            )
            await receiver._send_rtcp(remb)
            await asyncio.sleep(1.0)


Munge = Callable[[str], str]


def unchanged(sdp: str) -> str:
    return sdp


async def negotiate(
    pc: RTCPeerConnection, session: aiohttp.ClientSession, url: str, munge: Munge = unchanged
) -> None:
    """WHIP/WHEP-style: POST our offer, apply the answer."""
    await pc.setLocalDescription(await pc.createOffer())
    async with session.post(url, data=munge(pc.localDescription.sdp)) as response:
        response.raise_for_status()
        answer = await response.text()
    await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))


async def connect_to_switchboard(
    http: aiohttp.ClientSession,
    url: str,
    publisher: RTCPeerConnection,
    subscribers: list,
    munge: Munge = unchanged,
) -> None:
    await negotiate(publisher, http, f"{url}/publish", munge)
    for subscriber in subscribers:
        subscriber.pc.addTransceiver("video", direction="recvonly")
        await negotiate(subscriber.pc, http, f"{url}/subscribe")


async def connect_to_janus(
    http: aiohttp.ClientSession,
    url: str,
    publisher: RTCPeerConnection,
    subscribers: list,
    munge: Munge = unchanged,
) -> JanusSession:
    janus = JanusSession(http, url)
    await janus.create()
    handle = await janus.attach()
    await janus.message(handle, {"request": "join", "ptype": "publisher", "room": ROOM})
    feed = (await janus.event(handle, "joined"))["plugindata"]["data"]["id"]
    await publisher.setLocalDescription(await publisher.createOffer())
    offer = {"type": "offer", "sdp": munge(publisher.localDescription.sdp), "trickle": False}
    await janus.message(handle, {"request": "publish", "audio": False, "video": True}, offer)
    answer = (await janus.event(handle, "event"))["jsep"]
    await publisher.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
    # Janus refuses subscriptions to a feed whose media is not up yet.
    await janus.event(handle, "webrtcup")
    for subscriber in subscribers:
        handle = await janus.attach()
        await janus.message(
            handle,
            {"request": "join", "ptype": "subscriber", "room": ROOM, "streams": [{"feed": feed}]},
        )
        offer = (await janus.event(handle, "attached"))["jsep"]
        await subscriber.pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
        await subscriber.pc.setLocalDescription(await subscriber.pc.createAnswer())
        answer = {"type": "answer", "sdp": subscriber.pc.localDescription.sdp, "trickle": False}
        await janus.message(handle, {"request": "start"}, answer)
    return janus


class Published:
    """Packets the publisher sent: all of them, and those of the layer subscribers get."""

    def __init__(self) -> None:
        self.all = 0
        self.forwardable = 0


def publish_clip(publisher: RTCPeerConnection, clip: list, published: Published) -> None:
    sender = publisher.addTrack(ReplayTrack(clip))
    transceiver = next(t for t in publisher.getTransceivers() if t.sender is sender)
    vp8 = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == "video/VP8"]
    transceiver.setCodecPreferences(vp8)
    transport_send = sender.transport._send_rtp

    async def counted(data: bytes) -> None:
        if not is_rtcp(data):
            published.all += 1
            published.forwardable += 1
        await transport_send(data)

    sender.transport._send_rtp = counted


async def replay_simulcast(
    publisher: RTCPeerConnection,
    transceiver: RTCRtpTransceiver,
    clips: dict[str, list],
    published: Published,
) -> None:
    """Each layer's clip, packetised as aiortc would and sent with its RID, in step."""
    connected = asyncio.Event()

    @publisher.on("connectionstatechange")
    def on_state() -> None:
        if publisher.connectionState == "connected":
            connected.set()

    await connected.wait()
    codec = next(c for c in transceiver._codecs if c.mimeType == "video/VP8")
    layers = [
        (LayerStream(rid, transceiver), get_encoder(codec), clip) for rid, clip in clips.items()
    ]
    start = time.monotonic()
    count = 0
    while True:
        delay = start + count / FPS - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        for stream, packer, clip in layers:
            packet = av.Packet(clip[count % len(clip)][0])
            packet.pts = count * (90000 // FPS)
            packet.time_base = Fraction(1, 90000)
            payloads, timestamp = packer.pack(packet)
            await stream.send(payloads, timestamp)
            published.all += len(payloads)
            if stream.rid == SIMULCAST_LAYERS[-1][0]:
                published.forwardable += len(payloads)
        if count % FPS == 0:
            for stream, _, _ in layers:
                await stream.send_report(time.monotonic() - start)
        count += 1


async def run(args: argparse.Namespace) -> None:
    ice = IceSettings(announce_address=args.address)
    publisher = create_peer_connection(ice)
    published = Published()
    munge: Munge = unchanged
    replay = None
    if args.simulcast:
        transceiver = add_simulcast_transceiver(publisher, "video/VP8")
        clips = {
            rid: encode_clip(args.width // scale, args.height // scale, args.bitrate // div, 10)
            for rid, scale, div in SIMULCAST_LAYERS
        }
        # Janus takes the first RID for the best layer; the order does not matter to ours.
        rids = list(reversed(clips)) if args.janus else list(clips)

        def munge(sdp: str) -> str:
            return simulcast_offer(sdp, rids)

        replay = replay_simulcast(publisher, transceiver, clips, published)
    else:
        publish_clip(
            publisher, encode_clip(args.width, args.height, args.bitrate, seconds=10), published
        )
    # With simulcast, ask for more than the top layer needs: each subscriber gets that layer.
    remb = args.bitrate * (5 if args.simulcast else 1)
    subscribers = [CountingSubscriber(ice, remb) for _ in range(args.subscribers)]
    # The replay waits for the connection: start it first, Janus wants media to flow.
    sending = asyncio.ensure_future(replay) if replay is not None else None
    http = aiohttp.ClientSession()
    janus = None
    if args.janus:
        janus = await connect_to_janus(http, args.sfu, publisher, subscribers, munge)
    else:
        await connect_to_switchboard(http, args.sfu, publisher, subscribers, munge)
    for subscriber in subscribers:
        subscriber.count_at_the_socket()
    sys.stdout.write(json.dumps({"event": "ready", "pid": os.getpid()}) + "\n")
    sys.stdout.flush()

    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        if json.loads(line)["cmd"] != "report":
            break
        report = {
            "published": published.all,
            "forwardable": published.forwardable,
            "received": [s.packets for s in subscribers],
        }
        sys.stdout.write(json.dumps({"event": "report", **report}) + "\n")
        sys.stdout.flush()
    if sending is not None:
        sending.cancel()
    for pc in [publisher, *(s.pc for s in subscribers)]:
        await pc.close()
    if janus is not None:
        await janus.close()
    await http.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sfu", required=True)
    parser.add_argument("--subscribers", type=int, required=True)
    parser.add_argument("--address", required=True, help="this side's only ICE address")
    parser.add_argument("--janus", action="store_true", help="the SFU is Janus (its HTTP API)")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--bitrate", type=int, default=2_000_000)
    parser.add_argument("--simulcast", action="store_true", help="publish three layers")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
