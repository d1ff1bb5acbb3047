"""Load generator for the forwarding benchmark: one publisher replaying a pre-encoded VP8 clip
and N subscribers that count packets without decoding them, all in this one process.

Reports on stdin command "report" (one JSON line); subscribers ask for the clip's bitrate via
REMB, so a re-encoding baseline sends at the same rate as the publisher.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

import aiohttp
from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, RtpPacket, is_rtcp, pack_remb_fci
from janus_gateway import ROOM, JanusSession
from vp8_clip import ReplayTrack, encode_clip

from switchboard_sfu.media import IceSettings, create_peer_connection


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


async def negotiate(pc: RTCPeerConnection, session: aiohttp.ClientSession, url: str) -> None:
    """WHIP/WHEP-style: POST our offer, apply the answer."""
    await pc.setLocalDescription(await pc.createOffer())
    async with session.post(url, data=pc.localDescription.sdp) as response:
        response.raise_for_status()
        answer = await response.text()
    await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))


async def connect_to_switchboard(
    http: aiohttp.ClientSession, url: str, publisher: RTCPeerConnection, subscribers: list
) -> None:
    await negotiate(publisher, http, f"{url}/publish")
    for subscriber in subscribers:
        subscriber.pc.addTransceiver("video", direction="recvonly")
        await negotiate(subscriber.pc, http, f"{url}/subscribe")


async def connect_to_janus(
    http: aiohttp.ClientSession, url: str, publisher: RTCPeerConnection, subscribers: list
) -> JanusSession:
    janus = JanusSession(http, url)
    await janus.create()
    handle = await janus.attach()
    await janus.message(handle, {"request": "join", "ptype": "publisher", "room": ROOM})
    feed = (await janus.event(handle, "joined"))["plugindata"]["data"]["id"]
    await publisher.setLocalDescription(await publisher.createOffer())
    offer = {"type": "offer", "sdp": publisher.localDescription.sdp, "trickle": False}
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


async def run(args: argparse.Namespace) -> None:
    ice = IceSettings(announce_address=args.address)
    clip = encode_clip(args.width, args.height, args.bitrate, seconds=10)
    publisher = create_peer_connection(ice)
    sender = publisher.addTrack(ReplayTrack(clip))
    transceiver = next(t for t in publisher.getTransceivers() if t.sender is sender)
    vp8 = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == "video/VP8"]
    transceiver.setCodecPreferences(vp8)
    published = 0
    transport_send = sender.transport._send_rtp

    async def counted(data: bytes) -> None:
        nonlocal published
        if not is_rtcp(data):
            published += 1
        await transport_send(data)

    sender.transport._send_rtp = counted
    subscribers = [CountingSubscriber(ice, args.bitrate) for _ in range(args.subscribers)]
    http = aiohttp.ClientSession()
    janus = None
    if args.janus:
        janus = await connect_to_janus(http, args.sfu, publisher, subscribers)
    else:
        await connect_to_switchboard(http, args.sfu, publisher, subscribers)
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
        report = {"published": published, "received": [s.packets for s in subscribers]}
        sys.stdout.write(json.dumps({"event": "report", **report}) + "\n")
        sys.stdout.flush()
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
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
