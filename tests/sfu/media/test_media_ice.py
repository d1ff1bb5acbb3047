"""The SFU's peer connections announce exactly the configured address, loopback included."""

from __future__ import annotations

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import VideoStreamTrack
from media_harness import DEADLINE_S

from fixtures.waiting import eventually
from switchboard_sfu.media import IceSettings, create_peer_connection


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
