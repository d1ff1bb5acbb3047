"""Fixtures for the media-layer tests: a room in this process and peer processes around it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from media_harness import Peer, RoomUnderTest


@pytest.fixture
async def room() -> AsyncIterator[RoomUnderTest]:
    room = RoomUnderTest()
    yield room
    await room.close()


@pytest.fixture
async def peers() -> AsyncIterator[Callable[..., Awaitable[Peer]]]:
    """Start peer processes; all are stopped at the end of the test."""
    started: list[Peer] = []

    async def start(name: str, *args: str) -> Peer:
        peer = await Peer.start(name, *args)
        started.append(peer)
        return peer

    yield start
    for peer in started:
        await peer.stop()
