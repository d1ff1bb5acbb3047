"""Clients of the SFU for tests: an aiortc participant speaking the WebSocket signalling
protocol, WHIP/WHEP over HTTP, and synthetic media tracks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from fractions import Fraction
from typing import Any

import aiohttp
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame, VideoFrame
from sfu_harness import LOOPBACK

from switchboard_sfu.media import IceSettings, create_peer_connection

MESSAGE_DEADLINE_SECONDS = 20.0


def loopback_peer() -> RTCPeerConnection:
    """A test peer whose only ICE candidate is 127.0.0.1 (the namespace has only loopback)."""
    return create_peer_connection(IceSettings(announce_address=LOOPBACK))


class SyntheticVideo(MediaStreamTrack):
    """Small frames that change every time (cheap to encode, never static)."""

    kind = "video"

    def __init__(self, width: int = 160, height: int = 120, fps: int = 15) -> None:
        super().__init__()
        self._width, self._height, self._fps = width, height, fps
        self._count = 0
        self._start = time.monotonic()

    async def recv(self) -> VideoFrame:
        self._count += 1
        delay = self._start + self._count / self._fps - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        frame = VideoFrame(width=self._width, height=self._height, format="yuv420p")
        luma = bytes(((x + self._count * 3) & 0xFF) for x in range(self._width))
        frame.planes[0].update(luma * self._height)
        chroma = bytes([128]) * (self._width * self._height // 4)
        frame.planes[1].update(chroma)
        frame.planes[2].update(chroma)
        frame.pts = self._count * (90000 // self._fps)
        frame.time_base = Fraction(1, 90000)
        return frame


class SyntheticAudio(MediaStreamTrack):
    """20 ms frames of a quiet square wave."""

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
        pcm = b"".join(
            (1000 if (n // 48) % 2 else -1000).to_bytes(2, "little", signed=True)
            for n in range(count)
        )
        frame = AudioFrame(format="s16", layout="mono", samples=count)
        frame.planes[0].update(pcm)
        frame.pts = self._samples
        frame.sample_rate = rate
        frame.time_base = Fraction(1, rate)
        self._samples += count
        return frame


class FrameCounter:
    """Reads a received track and counts decoded frames (proof that media arrived)."""

    def __init__(self, track: MediaStreamTrack) -> None:
        self.track = track
        self.frames = 0
        self.ended = False
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        try:
            while True:
                await self.track.recv()
                self.frames += 1
        except MediaStreamError:
            self.ended = True

    def stop(self) -> None:
        self._task.cancel()


class SignallingClient:
    """A participant over /ws: join, publish, subscribe; answers the SFU's offers."""

    def __init__(self, ws_url: str) -> None:
        self.ws_url = ws_url
        self.session: aiohttp.ClientSession | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.messages: list[dict[str, Any]] = []
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self.publisher_pc: RTCPeerConnection | None = None
        self.subscriber_pc: RTCPeerConnection | None = None
        self.received: dict[str, FrameCounter] = {}
        """Received tracks by SFU track id (from the offer's mid -> track map)."""
        self._track_map: dict[str, str] = {}
        self._reader: asyncio.Task[None] | None = None
        self._new_message = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def connect(self, token: str | None, **join: Any) -> dict[str, Any]:
        """Open the socket and send join; returns the first reply (joined or error)."""
        self.session = aiohttp.ClientSession()
        self.ws = await self.session.ws_connect(self.ws_url, max_msg_size=0)
        self._reader = asyncio.ensure_future(self._read())
        await self.send({"type": "join", "token": token, **join})
        return await self.next_of("joined", "error")

    async def send(self, message: dict[str, Any]) -> None:
        assert self.ws is not None
        await self.ws.send_str(json.dumps(message))

    async def _read(self) -> None:
        assert self.ws is not None
        async for message in self.ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            body = json.loads(message.data)
            self.messages.append(body)
            self._new_message.set()
            if body.get("type") == "offer":
                self._tasks.append(asyncio.ensure_future(self._answer(body)))
        self.close_code = self.ws.close_code
        self.closed.set()
        self._new_message.set()

    async def next_of(self, *types: str, after: int = 0) -> dict[str, Any]:
        """The first message (index >= after) of one of `types`; fails after a deadline."""
        deadline = time.monotonic() + MESSAGE_DEADLINE_SECONDS
        while True:
            for message in self.messages[after:]:
                if message.get("type") in types:
                    return message
            if self.closed.is_set():
                raise AssertionError(f"socket closed before {types}: {self.messages}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {types} message; got {self.messages}")
            self._new_message.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._new_message.wait()

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("type") == kind]

    async def publish(self, *tracks: MediaStreamTrack, data_labels: tuple[str, ...] = ()) -> dict:
        """Offer `tracks` (and data channels) on the publisher connection; returns the answer."""
        if self.publisher_pc is None:
            self.publisher_pc = loopback_peer()
        pc = self.publisher_pc
        for track in tracks:
            pc.addTransceiver(track, direction="sendonly")
        for label in data_labels:
            pc.createDataChannel(label)
        await pc.setLocalDescription(await pc.createOffer())
        mark = len(self.messages)
        await self.send({"type": "publish", "sdp": pc.localDescription.sdp})
        reply = await self.next_of("answer", "error", after=mark)
        if reply["type"] == "answer":
            await pc.setRemoteDescription(RTCSessionDescription(reply["sdp"], "answer"))
        return reply

    async def _answer(self, offer: dict[str, Any]) -> None:
        if self.subscriber_pc is None:
            self.subscriber_pc = loopback_peer()

            @self.subscriber_pc.on("track")
            def on_track(track: MediaStreamTrack) -> None:
                mid = next(
                    t.mid for t in self.subscriber_pc.getTransceivers() if t.receiver.track is track
                )
                track_id = self._track_map.get(str(mid), f"mid:{mid}")
                self.received[track_id] = FrameCounter(track)

        self._track_map.update(offer.get("tracks", {}))
        pc = self.subscriber_pc
        await pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        await self.send({"type": "answer", "target": "subscriber", "sdp": pc.localDescription.sdp})

    async def close(self) -> None:
        for counter in self.received.values():
            counter.stop()
        for task in self._tasks:
            task.cancel()
        for pc in (self.publisher_pc, self.subscriber_pc):
            if pc is not None:
                await pc.close()
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await self._reader
        if self.session is not None:
            await self.session.close()


async def sendonly_offer(*kinds: str) -> tuple[RTCPeerConnection, str]:
    """A peer with a sendonly synthetic track per kind and its gathered offer SDP."""
    pc = loopback_peer()
    for kind in kinds:
        pc.addTransceiver(SyntheticVideo() if kind == "video" else SyntheticAudio(), "sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    return pc, pc.localDescription.sdp


async def recvonly_offer(*kinds: str) -> tuple[RTCPeerConnection, str]:
    pc = loopback_peer()
    for kind in kinds:
        pc.addTransceiver(kind, direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    return pc, pc.localDescription.sdp


async def post_offer(url: str, sdp: str, token: str | None) -> tuple[int, Any, str]:
    """POST an SDP offer (WHIP/WHEP); returns (status, headers, body)."""
    headers = {"Content-Type": "application/sdp"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=sdp, headers=headers) as reply,
    ):
        return reply.status, reply.headers.copy(), await reply.text()
