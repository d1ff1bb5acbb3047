"""The SFU under benchmark: one room, HTTP offer/answer, in one of three modes.

`forward` uses the forwarding core (packets rewritten and sent, never decoded; on the native
fast path when it is built; a simulcast publisher's layers are accepted, one forwarded per
subscriber), `forward-python` the same core held to its pure-Python path; `relay` is aiortc's
MediaRelay (decode once, encode once per subscriber), the baseline to beat.
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import os
from collections import Counter

from aiohttp import web
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamTrack

from switchboard_sfu.media import (
    ForwardingSettings,
    IceSettings,
    MediaCounters,
    Publication,
    RoomMedia,
    Subscription,
    accept_simulcast,
    answer_simulcast,
    create_peer_connection,
    restrict_codecs,
    simulcast_offers,
)


class BenchSfu:
    def __init__(self, mode: str, address: str) -> None:
        self.mode = mode
        self.ice = IceSettings(announce_address=address)
        self.counters = MediaCounters()
        settings = ForwardingSettings(native_forwarding=mode != "forward-python")
        self.room = RoomMedia("bench/room", counters=self.counters, settings=settings)
        self.relay = MediaRelay()
        self.source: MediaStreamTrack | None = None
        self.publication: Publication | None = None
        self.pcs: list[RTCPeerConnection] = []
        self.subscriptions: list[Subscription] = []

    async def publish(self, request: web.Request) -> web.Response:
        pc = create_peer_connection(self.ice)
        self.pcs.append(pc)

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if self.mode != "relay":
                self.publication = self.room.publish("publisher", pc, track)
            else:
                self.source = track

        offer = await request.text()
        simulcast = simulcast_offers(offer) if self.mode != "relay" else {}
        await pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        for transceiver in pc.getTransceivers():
            restrict_codecs(transceiver, ["video/VP8"])
            if transceiver.mid in simulcast:
                accept_simulcast(transceiver, simulcast[transceiver.mid])
        await pc.setLocalDescription(await pc.createAnswer())
        return web.Response(text=answer_simulcast(pc.localDescription.sdp, simulcast))

    async def subscribe(self, request: web.Request) -> web.Response:
        pc = create_peer_connection(self.ice)
        self.pcs.append(pc)
        await pc.setRemoteDescription(RTCSessionDescription(await request.text(), "offer"))
        transceiver = pc.getTransceivers()[0]
        name = f"subscriber-{len(self.pcs)}"
        if self.mode != "relay":
            assert self.publication is not None
            self.subscriptions.append(
                self.room.subscribe(name, pc, self.publication, transceiver=transceiver)
            )
        else:
            assert self.source is not None
            restrict_codecs(transceiver, ["video/VP8"])
            transceiver.direction = "sendonly"
            transceiver.sender.replaceTrack(self.relay.subscribe(self.source))
        return await self._answer(pc)

    async def stats(self, request: web.Request) -> web.Response:
        sent = self.counters.rtp_packets_sent
        if self.mode == "relay":
            sent = 0
            for pc in self.pcs:
                for sender in pc.getSenders():
                    if sender.track is not None:
                        for stat in (await sender.getStats()).values():
                            if stat.type == "outbound-rtp":
                                sent += stat.packetsSent
        paths = {
            "native_subscriptions": sum(s.native for s in self.subscriptions),
            "forwarding_subscriptions": sum(s.forwarding for s in self.subscriptions),
            # Simulcast: how many subscribers receive each layer.
            "layers": dict(
                Counter(s.layer.name for s in self.subscriptions if s.layer and s.layer.rid)
            ),
        }
        return web.json_response({"packets_sent": sent, **paths, **self.counters.snapshot()})

    async def _answer(self, pc: RTCPeerConnection) -> web.Response:
        await pc.setLocalDescription(await pc.createAnswer())
        return web.Response(text=pc.localDescription.sdp)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["forward", "forward-python", "relay"], required=True)
    parser.add_argument("--address", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--profile", help="write a cProfile of the run to this file")
    args = parser.parse_args()
    logging.basicConfig(level=os.environ.get("SWITCHBOARD_BENCH_LOG_LEVEL", "WARNING"))
    sfu = BenchSfu(args.mode, args.address)
    app = web.Application()
    app.router.add_post("/publish", sfu.publish)
    app.router.add_post("/subscribe", sfu.subscribe)
    app.router.add_get("/stats", sfu.stats)
    profiler = cProfile.Profile() if args.profile else None
    if profiler is not None:
        profiler.enable()
    try:
        web.run_app(app, host=args.address, port=args.port, print=None, handle_signals=True)
    finally:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)


if __name__ == "__main__":
    main()
