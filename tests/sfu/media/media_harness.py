"""Test harness for the media layer: a room's media in this process, peers in their own.

`Peer` drives `peer_client.py` over JSON lines; `RoomUnderTest` plays the SFU's signalling
side just enough to connect peers (peers offer, the SFU answers), using only the media API.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from aiortc import RTCPeerConnection, RTCSessionDescription

from switchboard_sfu.media import (
    DropReason,
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

LOOPBACK = "127.0.0.1"
PEER_CLIENT = Path(__file__).with_name("peer_client.py")
TESTS = Path(__file__).resolve().parents[2]
PREFERRED_CODECS = ["video/VP8", "video/H264", "audio/opus"]
# Deadlines only catch hangs: a slow machine must never fail a test.
DEADLINE_S = 60.0


class Peer:
    """A `peer_client.py` process."""

    def __init__(self, process: asyncio.subprocess.Process, name: str) -> None:
        self.process = process
        self.name = name

    @classmethod
    async def start(cls, name: str, *args: str) -> Peer:
        # The peer imports the test fixtures (tests/ on its path, as in this process).
        path = os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": path}
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(PEER_CLIENT),
            "--address",
            LOOPBACK,
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=env,
            limit=64 * 1024 * 1024,
        )
        return cls(process, name)

    @property
    def pid(self) -> int:
        return self.process.pid

    async def send(self, command: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps(command) + "\n").encode())
        await self.process.stdin.drain()

    async def expect(self, event: str) -> dict[str, Any]:
        assert self.process.stdout is not None
        while True:
            line = await asyncio.wait_for(self.process.stdout.readline(), DEADLINE_S)
            if not line:
                raise AssertionError(f"peer {self.name} exited (code {self.process.returncode})")
            message = json.loads(line)
            if message.get("event") == event:
                return message

    async def report(self) -> dict[str, Any]:
        await self.send({"cmd": "report"})
        return await self.expect("report")

    async def stop(self) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ConnectionError):
                await self.send({"cmd": "exit"})
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


class RoomUnderTest:
    """One room's media plus the minimal signalling needed to connect peers to it."""

    def __init__(self, settings: ForwardingSettings | None = None) -> None:
        self.counters = MediaCounters()
        self.drops: list[tuple[str, DropReason]] = []
        self.media = RoomMedia(
            "tests/room",
            counters=self.counters,
            settings=settings,
            on_drop=lambda participant, reason: self.drops.append((participant, reason)),
        )
        self.pcs: dict[str, RTCPeerConnection] = {}
        self.publications: dict[str, list[Publication]] = {}
        self.subscriptions: dict[str, list[Subscription]] = {}

    async def join(self, participant_id: str, peer: Peer) -> RTCPeerConnection:
        """Answer the peer's offer: publish what it sends, subscribe what it wants to receive."""
        offer = await peer.expect("offer")
        pc = create_peer_connection(IceSettings(announce_address=LOOPBACK))
        self.pcs[participant_id] = pc
        published = self.publications.setdefault(participant_id, [])
        subscribed = self.subscriptions.setdefault(participant_id, [])

        @pc.on("track")
        def on_track(track: Any) -> None:
            published.append(self.media.publish(participant_id, pc, track))

        @pc.on("datachannel")
        def on_datachannel(channel: Any) -> None:
            self.media.add_data_channel(participant_id, channel)

        simulcast = simulcast_offers(offer["sdp"])
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer["sdp"], type="offer"))
        for transceiver in pc.getTransceivers():
            if transceiver.receiver.track is not None:
                restrict_codecs(transceiver, PREFERRED_CODECS)
                if transceiver.mid in simulcast:
                    accept_simulcast(transceiver, simulcast[transceiver.mid])
            else:
                publication = self.publication(transceiver.kind)
                subscribed.append(
                    self.media.subscribe(participant_id, pc, publication, transceiver=transceiver)
                )
        await pc.setLocalDescription(await pc.createAnswer())
        answer = answer_simulcast(pc.localDescription.sdp, simulcast)
        await peer.send({"cmd": "answer", "sdp": answer})
        return pc

    async def offer_subscription(
        self, participant_id: str, peer: Peer, publication: Publication
    ) -> Subscription:
        """Add a publication to a connected peer by renegotiating: the SFU offers."""
        pc = self.pcs[participant_id]
        subscription = self.media.subscribe(participant_id, pc, publication)
        await pc.setLocalDescription(await pc.createOffer())
        await peer.send({"cmd": "offer", "sdp": pc.localDescription.sdp})
        answer = await peer.expect("answer")
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
        return subscription

    def publication(self, kind: str) -> Publication:
        return next(p for p in self.media.publications if p.kind == kind)

    async def close(self) -> None:
        await self.media.close()
        for pc in self.pcs.values():
            await pc.close()


def rss_bytes(pid: int | str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise LookupError("no VmRSS")
