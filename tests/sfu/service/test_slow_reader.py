"""A signalling client that stops reading costs the SFU a bounded amount of memory: its
outgoing messages are bounded, then it is dropped with a reason."""

from __future__ import annotations

import base64
import json
import os
import socket
import struct

from fixtures.sfu_clients import SignallingClient
from fixtures.sfu_harness import LOOPBACK, SFU_WAIT_SECONDS
from fixtures.waiting import eventually

METADATA = "x" * 4000
UPDATES = 20_000
"""80 MB of room events for the stalled client if the SFU buffered them all."""
RSS_GROWTH_LIMIT = 40 * 1024 * 1024


def stalled_websocket(port: int, join: dict) -> socket.socket:
    """A WebSocket client that completes the handshake, sends `join`, then never reads."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((LOOPBACK, port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /ws HTTP/1.1\r\nHost: {LOOPBACK}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(1)
    assert response.startswith(b"HTTP/1.1 101"), response
    payload = json.dumps(join).encode()
    mask = os.urandom(4)
    header = bytes([0x81]) + (
        bytes([0x80 | len(payload)])
        if len(payload) < 126
        else bytes([0x80 | 126]) + struct.pack("!H", len(payload))
    )
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    sock.sendall(header + mask + masked)
    return sock


async def test_client_that_stops_reading_is_dropped_and_memory_stays_bounded(sfu, token) -> None:
    stalled = stalled_websocket(sfu.port, {"type": "join", "token": token(identity="stalled")})
    sender = SignallingClient(sfu.ws_url)
    try:

        async def both_joined() -> bool:
            return (await sfu.metrics())["switchboard_sfu_participants"] == 2

        await sender.connect(token(identity="chatty"))
        await eventually(both_joined, SFU_WAIT_SECONDS, "the stalled client to be admitted")
        baseline = sfu.rss_bytes()

        for _ in range(UPDATES):
            await sender.send({"type": "setMetadata", "metadata": METADATA})
        await sender.send({"type": "ping", "requestId": "after"})
        await sender.next_of("pong")  # every update has been processed by now
        growth = sfu.rss_bytes() - baseline
        left = await sender.next_of("participantLeft")
        metrics = await sfu.metrics()
    finally:
        stalled.close()
        await sender.close()

    assert left["identity"] == "stalled"
    assert left["reason"] == "slow-consumer"
    assert metrics["switchboard_sfu_participants_dropped_total{reason=slow-consumer}"] == 1
    assert growth < RSS_GROWTH_LIMIT, f"RSS grew by {growth / 2**20:.1f} MiB"
