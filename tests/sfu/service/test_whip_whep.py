"""WHIP publishing and WHEP playback: 201 + Location + SDP answer, DELETE ends the
session, ICE servers in Link headers, CORS for pages on other origins."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

import aiohttp
import pytest
from aiortc import RTCSessionDescription

from fixtures.sfu_clients import (
    FrameCounter,
    SignallingClient,
    post_offer,
    recvonly_offer,
    sendonly_offer,
)
from fixtures.sfu_harness import SFU_WAIT_SECONDS
from fixtures.waiting import eventually
from switchboard_api.contract import JoinGrants, SfuEnv

ROOM_PATH = "default/stage"
TURN_SECRET = b"region-turn-secret"
TURN_URIS = "turn:turn.test.invalid:3478?transport=udp,turns:turn.test.invalid:5349"


async def delete(url: str) -> int:
    async with aiohttp.ClientSession() as session, session.delete(url) as reply:
        return reply.status


async def whip_publish(sfu, token, identity: str = "camera"):
    pc, offer = await sendonly_offer("video", "audio")
    status, headers, body = await post_offer(
        f"{sfu.base_url}/whip/{ROOM_PATH}", offer, token(room=ROOM_PATH, identity=identity)
    )
    assert status == 201, body
    await pc.setRemoteDescription(RTCSessionDescription(body, "answer"))
    return pc, headers


async def test_whip_publish_and_whep_play(sfu, token) -> None:
    publisher, whip_headers = await whip_publish(sfu, token)
    viewer, offer = await recvonly_offer("video", "audio")
    counters: list[FrameCounter] = []
    viewer.on("track", lambda track: counters.append(FrameCounter(track)))
    try:
        status, headers, answer = await post_offer(
            f"{sfu.base_url}/whep/{ROOM_PATH}", offer, token(room=ROOM_PATH, identity="viewer")
        )
        assert status == 201, answer
        assert headers["Content-Type"].startswith("application/sdp")
        assert re.fullmatch(r"/whep/resource/WHEP_[\w-]{20,}", headers["Location"])
        assert re.fullmatch(r"/whip/resource/WHIP_[\w-]{20,}", whip_headers["Location"])
        await viewer.setRemoteDescription(RTCSessionDescription(answer, "answer"))

        await eventually(
            lambda: len(counters) == 2 and all(c.frames >= 5 for c in counters),
            SFU_WAIT_SECONDS,
            "the WHEP viewer to decode audio and video",
        )
        metrics = await sfu.metrics()
        assert metrics["switchboard_sfu_participants"] == 2
        assert metrics["switchboard_sfu_forwarded_tracks"] == 2

        # DELETE on the Location ends the session; a second DELETE finds nothing.
        assert await delete(sfu.base_url + headers["Location"]) == 200
        assert await delete(sfu.base_url + headers["Location"]) == 404
        metrics = await sfu.metrics()
        assert metrics["switchboard_sfu_participants"] == 1
        assert metrics["switchboard_sfu_forwarded_tracks"] == 0
    finally:
        for counter in counters:
            counter.stop()
        await viewer.close()
        await publisher.close()


async def test_deleting_the_publisher_ends_its_viewers(sfu, token) -> None:
    publisher, whip_headers = await whip_publish(sfu, token)
    viewer, offer = await recvonly_offer("video")
    try:
        status, _, answer = await post_offer(
            f"{sfu.base_url}/whep/{ROOM_PATH}", offer, token(room=ROOM_PATH, identity="viewer")
        )
        assert status == 201
        await viewer.setRemoteDescription(RTCSessionDescription(answer, "answer"))

        assert await delete(sfu.base_url + whip_headers["Location"]) == 200

        async def room_empty() -> bool:
            metrics = await sfu.metrics()
            return metrics["switchboard_sfu_participants"] == 0

        await eventually(
            room_empty, SFU_WAIT_SECONDS, "the viewer's session to end with its publisher"
        )
    finally:
        await viewer.close()
        await publisher.close()


async def test_whep_before_anything_is_published(sfu, token) -> None:
    viewer, offer = await recvonly_offer("video")
    try:
        status, _, body = await post_offer(
            f"{sfu.base_url}/whep/{ROOM_PATH}", offer, token(room=ROOM_PATH, identity="early")
        )
    finally:
        await viewer.close()

    assert status == 404
    assert '"nothing-to-play"' in body
    assert (await sfu.metrics())["switchboard_sfu_participants"] == 0


@pytest.fixture
async def sfu_with_turn(start_sfu, tmp_path):
    secret_file = tmp_path / "turn-secret"
    secret_file.write_bytes(TURN_SECRET + b"\n")
    return await start_sfu(
        extra_env={
            SfuEnv.TURN_URIS: TURN_URIS,
            SfuEnv.TURN_SECRET_FILE: str(secret_file),
            SfuEnv.TURN_CREDENTIAL_TTL_SECONDS: "600",
        }
    )


async def test_link_headers_carry_turn_with_short_lived_credentials(sfu_with_turn, token) -> None:
    pc, offer = await sendonly_offer("video")
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{sfu_with_turn.base_url}/whip/{ROOM_PATH}",
                data=offer,
                headers={
                    "Content-Type": "application/sdp",
                    "Authorization": f"Bearer {token(room=ROOM_PATH, identity='cam-1')}",
                },
            ) as reply,
        ):
            assert reply.status == 201
            links = reply.headers.getall("Link")
    finally:
        await pc.close()

    assert len(links) == 2
    parsed = [_parse_link(link) for link in links]
    assert [p["url"] for p in parsed] == TURN_URIS.split(",")
    for link in parsed:
        assert link["rel"] == "ice-server"
        assert link["credential-type"] == "password"
        expiry, identity = link["username"].split(":", 1)
        assert identity == "cam-1"
        expected = hmac.new(TURN_SECRET, link["username"].encode(), hashlib.sha1).digest()
        assert link["credential"] == base64.b64encode(expected).decode()
        assert int(expiry) > 0


async def test_signalling_join_hands_out_the_same_turn_servers(sfu_with_turn, token) -> None:
    client = SignallingClient(sfu_with_turn.ws_url)
    try:
        joined = await client.connect(token(identity="dana"))
    finally:
        await client.close()

    [server] = joined["iceServers"]
    assert server["urls"] == TURN_URIS.split(",")
    assert server["username"].endswith(":dana")


def _parse_link(value: str) -> dict[str, str]:
    url, _, rest = value.partition(";")
    fields = {"url": url.strip().strip("<>")}
    for part in rest.split(";"):
        key, _, raw = part.strip().partition("=")
        fields[key] = raw.strip('"')
    return fields


async def test_cors_preflight_and_exposed_headers(sfu, token) -> None:
    origin = "https://app.example"
    async with aiohttp.ClientSession() as session:
        async with session.options(
            f"{sfu.base_url}/whip/{ROOM_PATH}",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        ) as preflight:
            assert preflight.status in (200, 204)
            allowed_methods = preflight.headers["Access-Control-Allow-Methods"]
            allowed_headers = preflight.headers["Access-Control-Allow-Headers"].lower()
            assert preflight.headers["Access-Control-Allow-Origin"] in ("*", origin)
        async with session.options(
            f"{sfu.base_url}/whep/resource/WHEP_anything",
            headers={"Origin": origin, "Access-Control-Request-Method": "DELETE"},
        ) as resource_preflight:
            assert resource_preflight.status in (200, 204)
            assert "DELETE" in resource_preflight.headers["Access-Control-Allow-Methods"]

    pc, offer = await sendonly_offer("video")
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{sfu.base_url}/whip/{ROOM_PATH}",
                data=offer,
                headers={
                    "Origin": origin,
                    "Content-Type": "application/sdp",
                    "Authorization": f"Bearer {token(room=ROOM_PATH)}",
                },
            ) as reply,
        ):
            assert reply.status == 201
            exposed = reply.headers["Access-Control-Expose-Headers"]
            allow_origin = reply.headers["Access-Control-Allow-Origin"]
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{sfu.base_url}/whip/{ROOM_PATH}",
                data=offer,
                headers={"Origin": origin, "Content-Type": "application/sdp"},
            ) as refused,
        ):
            assert refused.status == 401
            refused_origin = refused.headers["Access-Control-Allow-Origin"]
    finally:
        await pc.close()

    assert {"POST", "DELETE", "PATCH", "OPTIONS"} <= {m.strip() for m in allowed_methods.split(",")}
    assert {"authorization", "content-type"} <= {h.strip() for h in allowed_headers.split(",")}
    assert "Location" in exposed and "Link" in exposed
    assert allow_origin in ("*", origin)
    assert refused_origin in ("*", origin)


async def test_patch_trickles_candidates(sfu, token) -> None:
    publisher, headers = await whip_publish(sfu, token)
    frag = (
        "a=ice-ufrag:abcd\r\na=ice-pwd:0123456789abcdef012345\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\n"
        "a=mid:0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host\r\n"
        "a=end-of-candidates\r\n"
    )
    try:
        async with aiohttp.ClientSession() as session:
            async with session.patch(
                sfu.base_url + headers["Location"],
                data=frag,
                headers={"Content-Type": "application/trickle-ice-sdpfrag"},
            ) as reply:
                assert reply.status == 204
            async with session.patch(
                sfu.base_url + headers["Location"],
                data=frag,
                headers={"Content-Type": "application/trickle-ice-sdpfrag", "If-Match": "*"},
            ) as restart:
                assert restart.status == 405
            async with session.patch(
                f"{sfu.base_url}/whip/resource/WHIP_unknown",
                data=frag,
                headers={"Content-Type": "application/trickle-ice-sdpfrag"},
            ) as unknown:
                assert unknown.status == 404
    finally:
        await publisher.close()


async def test_whep_token_cannot_publish_via_whip(sfu, token) -> None:
    pc, offer = await sendonly_offer("video")
    try:
        status, _, _ = await post_offer(
            f"{sfu.base_url}/whip/{ROOM_PATH}",
            offer,
            token(room=ROOM_PATH, grants=JoinGrants(publish=False, subscribe=True, data=False)),
        )
    finally:
        await pc.close()
    assert status == 403
