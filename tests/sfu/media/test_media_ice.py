"""The SFU's peer connections announce exactly the configured address, loopback included, and
say when they end and why: a peer that stops answering consent checks, or closes its side."""

from __future__ import annotations

from collections.abc import Iterator

import aioice.ice
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import VideoStreamTrack
from media_harness import DEADLINE_S, LOOPBACK

from fixtures.waiting import eventually
from switchboard_sfu.media import (
    DropReason,
    IceSettings,
    create_peer_connection,
    watch_peer_connection,
)


async def _offer_candidates(pc: RTCPeerConnection) -> list[str]:
    pc.addTransceiver("audio")
    await pc.setLocalDescription(await pc.createOffer())
    return [
        line.split()[4]
        for line in pc.localDescription.sdp.splitlines()
        if line.startswith("a=candidate:")
    ]


async def test_only_the_announced_address_is_offered():
    pc = create_peer_connection(IceSettings(announce_address="127.0.0.2"))
    try:
        assert set(await _offer_candidates(pc)) == {"127.0.0.2"}
    finally:
        await pc.close()


async def test_other_connections_in_the_process_are_unaffected():
    restricted = create_peer_connection(IceSettings(announce_address="127.0.0.2"))
    plain = RTCPeerConnection()  # aiortc's default: every interface except loopback
    try:
        await _offer_candidates(restricted)
        assert "127.0.0.2" not in await _offer_candidates(plain)
    finally:
        await restricted.close()
        await plain.close()


async def test_two_peers_on_distinct_loopback_addresses_connect():
    offerer = create_peer_connection(IceSettings(announce_address="127.0.0.2"))
    answerer = create_peer_connection(IceSettings(announce_address="127.0.0.3"))
    offerer.addTrack(VideoStreamTrack())
    try:
        await offerer.setLocalDescription(await offerer.createOffer())
        await answerer.setRemoteDescription(offerer.localDescription)
        await answerer.setLocalDescription(await answerer.createAnswer())
        answer = answerer.localDescription
        assert "127.0.0.3" in answer.sdp
        await offerer.setRemoteDescription(RTCSessionDescription(answer.sdp, answer.type))

        async def states() -> tuple[str, str]:
            return offerer.connectionState, answerer.connectionState

        await eventually(
            states, DEADLINE_S, "connection", until=lambda s: s == ("connected", "connected")
        )
    finally:
        await offerer.close()
        await answerer.close()


@pytest.fixture
def quick_consent() -> Iterator[IceSettings]:
    """Peer settings whose consent expires in about 2 s; aioice's process-wide timing is
    restored afterwards."""
    saved = aioice.ice.CONSENT_INTERVAL, aioice.ice.CONSENT_FAILURES
    yield IceSettings(announce_address=LOOPBACK, consent_interval_s=0.2, consent_max_failures=3)
    aioice.ice.CONSENT_INTERVAL, aioice.ice.CONSENT_FAILURES = saved


async def _connect_watched(
    settings: IceSettings,
) -> tuple[RTCPeerConnection, RTCPeerConnection, list[DropReason]]:
    """A watched SFU-side connection answering a peer's offer, both connected."""
    sfu, peer = create_peer_connection(settings), create_peer_connection(settings)
    ended: list[DropReason] = []
    watch_peer_connection(sfu, ended.append)
    peer.addTransceiver("audio", direction="sendonly")  # no track: no media at all
    await peer.setLocalDescription(await peer.createOffer())
    await sfu.setRemoteDescription(peer.localDescription)
    await sfu.setLocalDescription(await sfu.createAnswer())
    await peer.setRemoteDescription(sfu.localDescription)

    async def states() -> tuple[str, str]:
        return sfu.connectionState, peer.connectionState

    await eventually(
        states, DEADLINE_S, "connection", until=lambda s: s == ("connected", "connected")
    )
    return sfu, peer, ended


async def test_a_peer_that_stops_answering_loses_consent(quick_consent):
    sfu, peer, ended = await _connect_watched(quick_consent)
    try:
        # The peer's socket is closed under it, as when its process is killed.
        connection = peer.getTransceivers()[0].receiver.transport.transport._connection
        for protocol in connection._protocols:
            protocol.transport.close()

        async def reported() -> list[DropReason]:
            return ended

        await eventually(reported, DEADLINE_S, "the connection to end")
        assert ended == [DropReason.CONSENT_EXPIRED]
        assert sfu.connectionState == "closed"
    finally:
        await sfu.close()
        await peer.close()
    assert ended == [DropReason.CONSENT_EXPIRED]  # reported once


async def test_a_peer_that_closes_its_connection_is_reported_once(quick_consent):
    sfu, peer, ended = await _connect_watched(quick_consent)
    try:
        await peer.close()  # DTLS close_notify

        async def reported() -> list[DropReason]:
            return ended

        await eventually(reported, DEADLINE_S, "the connection to end")
    finally:
        await sfu.close()
    assert ended == [DropReason.PEER_CLOSED]
