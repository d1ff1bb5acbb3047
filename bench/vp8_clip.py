"""A pre-encoded VP8 clip for the forwarding benchmark: encoded once, cached, replayed forever.

Replaying encoded frames keeps the load generator cheap, so the machine's cores measure the
SFU rather than an encoder.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import time
from fractions import Fraction
from pathlib import Path

import av
from aiortc.mediastreams import MediaStreamTrack

FPS = 30
CACHE_DIR = Path(os.environ.get("SWITCHBOARD_BENCH_CACHE", "/tmp/switchboard-bench"))


def _frames(width: int, height: int, count: int) -> list[av.VideoFrame]:
    """Moving gradient plus a noisy band, so the encoder has real work and a steady bitrate."""
    row = bytes((x * 255 // width) for x in range(width)) * 2
    chroma = bytes([128]) * (width * height // 4)
    band = height // 4
    frames = []
    for n in range(count):
        shift = (n * 6) % width
        line = row[shift : shift + width]
        luma = line * (height - band) + os.urandom(width * band)
        frame = av.VideoFrame(width=width, height=height, format="yuv420p")
        frame.planes[0].update(luma)
        frame.planes[1].update(chroma)
        frame.planes[2].update(chroma)
        frame.pts = n
        frame.time_base = Fraction(1, FPS)
        frames.append(frame)
    return frames


def encode_clip(width: int, height: int, bitrate: int, seconds: int) -> list[tuple[bytes, bool]]:
    """(VP8 frame, is keyframe) for `seconds` of video, a keyframe every two seconds."""
    path = CACHE_DIR / f"vp8-{width}x{height}-{bitrate}-{seconds}s.pickle"
    if path.exists():
        return pickle.loads(path.read_bytes())
    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height = width, height
    codec.pix_fmt = "yuv420p"
    codec.bit_rate = bitrate
    codec.framerate = Fraction(FPS)
    codec.time_base = Fraction(1, FPS)
    codec.gop_size = 2 * FPS
    codec.options = {
        "deadline": "realtime",
        "cpu-used": "8",
        "lag-in-frames": "0",
        "minrate": str(bitrate),
        "maxrate": str(bitrate),
        "bufsize": str(bitrate),
    }
    clip = []
    for frame in _frames(width, height, seconds * FPS):
        for packet in codec.encode(frame):
            clip.append((bytes(packet), bool(packet.is_keyframe)))
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(clip))
    return clip


class ReplayTrack(MediaStreamTrack):
    """Yields the clip's encoded frames at its frame rate; aiortc packetizes without encoding."""

    kind = "video"

    def __init__(self, clip: list[tuple[bytes, bool]]) -> None:
        super().__init__()
        self._clip = clip
        self._count = 0
        self._start = time.monotonic()

    async def recv(self) -> av.Packet:
        delay = self._start + self._count / FPS - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        data, _ = self._clip[self._count % len(self._clip)]
        packet = av.Packet(data)
        packet.pts = self._count * (90000 // FPS)
        packet.time_base = Fraction(1, 90000)
        self._count += 1
        return packet
