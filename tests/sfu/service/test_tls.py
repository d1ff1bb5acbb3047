"""An SFU pod given a certificate (the Region's sfu.tlsSecretName) serves signalling over
WSS and WHIP/WHEP over HTTPS only, to clients that verify it against a test CA by the
pod's public name; a renewed certificate reaches new connections without a restart, and
sessions opened before keep going."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from aiortc import RTCSessionDescription

from fixtures.sfu_clients import SignallingClient, SyntheticVideo, post_offer, sendonly_offer
from fixtures.sfu_harness import LOOPBACK
from fixtures.tls import TestCa, mount_tls_secret, serial_of, served_serial, trusting_connector
from fixtures.waiting import eventually
from switchboard_api.contract import SfuEnv

POD_HOST = "sfu-0.sfu.example.test"
"""The pod's public name under the Region's wildcard certificate."""
ROOM = "default/secure"


@pytest.fixture
def ca(tmp_path: Path) -> TestCa:
    return TestCa(tmp_path)


@pytest.fixture
async def tls_sfu(start_sfu, ca: TestCa, tmp_path: Path):
    secret = tmp_path / "sfu-tls"
    mount_tls_secret(secret, ca.issue("*.sfu.example.test"))
    sfu = await start_sfu(
        extra_env={
            SfuEnv.TLS_CERT_FILE: str(secret / "tls.crt"),
            SfuEnv.TLS_KEY_FILE: str(secret / "tls.key"),
        }
    )
    sfu.secret = secret
    return sfu


def public_url(sfu, scheme: str, path: str) -> str:
    return f"{scheme}://{POD_HOST}:{sfu.port}{path}"


def connector(ca: TestCa) -> aiohttp.TCPConnector:
    return trusting_connector(ca, {POD_HOST: LOOPBACK})


async def test_signalling_and_media_over_wss_verified_by_the_pods_public_name(tls_sfu, ca, token):
    publisher = SignallingClient(public_url(tls_sfu, "wss", "/ws"), lambda: connector(ca))
    subscriber = SignallingClient(public_url(tls_sfu, "wss", "/ws"), lambda: connector(ca))
    try:
        assert (await publisher.connect(token(room=ROOM, identity="alice")))["type"] == "joined"
        assert (await publisher.publish(SyntheticVideo()))["type"] == "answer"
        assert (await subscriber.connect(token(room=ROOM, identity="bob")))["type"] == "joined"

        async def decoded() -> bool:
            return any(c.frames >= 5 for c in subscriber.received.values())

        await eventually(decoded, 60, "the subscriber to decode frames relayed over WSS signalling")
    finally:
        await publisher.close()
        await subscriber.close()


async def test_whip_over_https_and_no_plain_http(tls_sfu, ca, token):
    pc, offer = await sendonly_offer("video")
    try:
        status, _, body = await post_offer(
            public_url(tls_sfu, "https", f"/whip/{ROOM}"),
            offer,
            token(room=ROOM, identity="camera"),
            connector(ca),
        )
        assert status == 201, body
        await pc.setRemoteDescription(RTCSessionDescription(body, "answer"))
    finally:
        await pc.close()
    # The port speaks TLS only; a client that does not trust the CA is refused too.
    async with aiohttp.ClientSession() as plain:
        with pytest.raises(aiohttp.ClientError):
            await plain.get(f"http://{LOOPBACK}:{tls_sfu.port}/healthz")
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await plain.get(f"https://{LOOPBACK}:{tls_sfu.port}/healthz")


async def test_a_renewed_certificate_is_served_without_a_restart(tls_sfu, ca, token):
    client = SignallingClient(public_url(tls_sfu, "wss", "/ws"), lambda: connector(ca))
    try:
        assert (await client.connect(token(room=ROOM, identity="alice")))["type"] == "joined"
        renewed = ca.issue("*.sfu.example.test")
        mount_tls_secret(tls_sfu.secret, renewed)

        async def renewed_served() -> bool:
            return await served_serial(LOOPBACK, tls_sfu.port, ca, POD_HOST) == serial_of(renewed)

        await eventually(renewed_served, 20, "the renewed certificate on a new handshake")
        assert tls_sfu.exited() is None
        # The session opened under the old certificate carries on.
        mark = len(client.messages)
        await client.send({"type": "ping", "requestId": "after-renewal"})
        assert (await client.next_of("pong", after=mark))["requestId"] == "after-renewal"
    finally:
        await client.close()


async def test_unusable_certificate_files_stop_the_sfu_at_start(start_sfu, tmp_path):
    with pytest.raises(AssertionError, match="invalid configuration"):
        await start_sfu(
            extra_env={
                SfuEnv.TLS_CERT_FILE: str(tmp_path / "missing.crt"),
                SfuEnv.TLS_KEY_FILE: str(tmp_path / "missing.key"),
            }
        )
