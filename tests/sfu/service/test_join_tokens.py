"""Every join needs a genuine, current token for this pod, the right room and the right
grants; a refused join allocates nothing (no room, no participant, no track)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fixtures.sfu_clients import SignallingClient, post_offer, recvonly_offer, sendonly_offer
from switchboard_api.contract import JoinGrants

NOTHING_ALLOCATED = {
    "switchboard_sfu_rooms": 0.0,
    "switchboard_sfu_participants": 0.0,
    "switchboard_sfu_published_tracks": 0.0,
}


async def assert_nothing_allocated(sfu) -> None:
    metrics = await sfu.metrics()
    assert {name: metrics[name] for name in NOTHING_ALLOCATED} == NOTHING_ALLOCATED


CLOSE_DEADLINE_SECONDS = 30.0
"""Generous: a refused join is closed at once; this only turns a hang into a failure."""

# Each case's token arguments are made when the case runs, not when the module is imported:
# a token "valid in an hour" made at import is valid by the time a slow suite reaches it.
BAD_TOKENS: dict[str, tuple[Callable[[], dict[str, Any]], str, int]] = {
    "expired": (lambda: dict(now=time.time() - 3600, ttl_seconds=60), "token-expired", 4401),
    "not yet valid": (lambda: dict(now=time.time() + 3600), "token-not-yet-valid", 4401),
    "wrong signature": (
        lambda: dict(signing_key=Ed25519PrivateKey.generate()),
        "invalid-token",
        4401,
    ),
    "unknown key id": (lambda: dict(kid="retired-key"), "unknown-key", 4401),
    "wrong pod name": (lambda: dict(claims={"pod": "sfu-7"}), "wrong-pod", 4403),
    "previous pod incarnation": (
        lambda: dict(claims={"podUID": "an-older-uid"}),
        "wrong-pod",
        4403,
    ),
    "wrong audience": (lambda: dict(claims={"aud": "someone-else"}), "invalid-token", 4401),
}


@pytest.mark.parametrize("case", list(BAD_TOKENS))
async def test_websocket_join_refused(sfu, token, case) -> None:
    make_kwargs, code, close_code = BAD_TOKENS[case]
    client = SignallingClient(sfu.ws_url)
    try:
        reply = await client.connect(token(**make_kwargs()))
        await asyncio.wait_for(client.closed.wait(), CLOSE_DEADLINE_SECONDS)
    finally:
        await client.close()

    assert reply["type"] == "error"
    assert reply["error"] == code
    assert client.close_code == close_code
    await assert_nothing_allocated(sfu)
    metrics = await sfu.metrics()
    assert metrics[f"switchboard_sfu_joins_refused_total{{code={code}}}"] == 1


async def test_websocket_join_without_token_refused(sfu) -> None:
    client = SignallingClient(sfu.ws_url)
    try:
        reply = await client.connect(None)
    finally:
        await client.close()

    assert reply["error"] == "missing-token"
    await assert_nothing_allocated(sfu)


async def test_valid_token_joins_and_creates_the_room(sfu, token) -> None:
    """The control for the refusals above: the same path with a good token gets in."""
    client = SignallingClient(sfu.ws_url)
    try:
        reply = await client.connect(token(room="default/standup", identity="alice"))
        metrics = await sfu.metrics()
    finally:
        await client.close()

    assert reply["type"] == "joined"
    assert reply["room"] == "default/standup"
    assert reply["identity"] == "alice"
    assert metrics["switchboard_sfu_rooms"] == 1
    assert metrics["switchboard_sfu_participants"] == 1


async def test_whip_with_token_for_another_room_is_forbidden(sfu, token) -> None:
    pc, offer = await sendonly_offer("video")
    try:
        status, _, body = await post_offer(
            f"{sfu.base_url}/whip/default/standup", offer, token(room="default/other-room")
        )
    finally:
        await pc.close()

    assert status == 403
    assert '"wrong-room"' in body
    await assert_nothing_allocated(sfu)


async def test_whip_without_publish_grant_is_forbidden(sfu, token) -> None:
    pc, offer = await sendonly_offer("video")
    viewer = token(grants=JoinGrants(publish=False, subscribe=True, data=True))
    try:
        status, _, body = await post_offer(f"{sfu.base_url}/whip/default/standup", offer, viewer)
    finally:
        await pc.close()

    assert status == 403
    assert '"missing-grant"' in body
    await assert_nothing_allocated(sfu)


async def test_whep_without_subscribe_grant_is_forbidden(sfu, token) -> None:
    pc, offer = await recvonly_offer("video")
    camera_only = token(grants=JoinGrants(publish=True, subscribe=False, data=False))
    try:
        status, _, body = await post_offer(
            f"{sfu.base_url}/whep/default/standup", offer, camera_only
        )
    finally:
        await pc.close()

    assert status == 403
    assert '"missing-grant"' in body
    await assert_nothing_allocated(sfu)


async def test_whip_with_expired_token_is_unauthorised(sfu, token) -> None:
    pc, offer = await sendonly_offer("video")
    try:
        status, _, body = await post_offer(
            f"{sfu.base_url}/whip/default/standup",
            offer,
            token(now=time.time() - 3600, ttl_seconds=60),
        )
    finally:
        await pc.close()

    assert status == 401
    assert '"token-expired"' in body
    await assert_nothing_allocated(sfu)


async def test_publish_without_grant_over_websocket_creates_no_track(sfu, token) -> None:
    client = SignallingClient(sfu.ws_url)
    try:
        joined = await client.connect(
            token(grants=JoinGrants(publish=False, subscribe=True, data=False))
        )
        pc, offer = await sendonly_offer("video")
        await client.send({"type": "publish", "sdp": offer})
        error = await client.next_of("error")
        metrics = await sfu.metrics()
        await pc.close()
    finally:
        await client.close()

    assert joined["type"] == "joined"
    assert error["error"] == "missing-grant"
    assert metrics["switchboard_sfu_published_tracks"] == 0
