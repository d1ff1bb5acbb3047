"""Chromium reaches an SFU that serves a certificate (the Region's sfu.tlsSecretName) over
WSS and HTTPS, verifying it by the pod's public name against a test CA in its NSS
database: media flows over WebSocket signalling and WHEP. A Chromium that does not trust
the CA gets nothing from the same SFU, so the certificate really is checked."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import urlencode

import pytest

from fixtures.browser_pages import Browser, PageServer, trusting_home
from fixtures.sfu_harness import LOOPBACK, JoinKeys, PodIdentity, SfuProcess, sign_join_token
from fixtures.tls import TestCa, mount_tls_secret
from fixtures.waiting import eventually
from switchboard_api.contract import SfuEnv

pytestmark = pytest.mark.slow

BROWSER_DEADLINE_SECONDS = 60.0
POD_HOST = "sfu-0.sfu.example.test"
"""The pod's public name under the Region's wildcard certificate (publicURLTemplate
`wss://{pod}.sfu.example.test`); Chromium resolves it to the SFU's loopback address."""
ROOM = "default/secure-browser"


@pytest.fixture
async def tls_sfu(tmp_path: Path) -> AsyncIterator[tuple[SfuProcess, TestCa]]:
    ca = TestCa(tmp_path)
    secret = tmp_path / "sfu-tls"
    mount_tls_secret(secret, ca.issue("*.sfu.example.test"))
    workdir = tmp_path / "sfu"
    workdir.mkdir()
    process = SfuProcess(
        workdir,
        JoinKeys(tmp_path / "join-keys"),
        PodIdentity(),
        extra_env={
            SfuEnv.TLS_CERT_FILE: str(secret / "tls.crt"),
            SfuEnv.TLS_KEY_FILE: str(secret / "tls.key"),
        },
    )
    await process.start()
    yield process, ca
    process.stop()


@pytest.fixture
def open_page(tmp_path: Path, pages: PageServer, tls_sfu) -> Callable[..., str]:
    """open_page(identity, trusted=..., **query): a Chromium page against the TLS SFU, by
    its public name, trusting the test CA or not."""
    sfu, ca = tls_sfu
    browsers: list[Browser] = []

    def open_(identity: str, *, trusted: bool = True, **query: str) -> str:
        token = sign_join_token(sfu.keys, sfu.pod, room=ROOM, identity=identity)
        base = f"https://{POD_HOST}:{sfu.port}"
        query = {"sfu": base, "token": token, "room": ROOM, "report": identity, **query}
        home = trusting_home(tmp_path / f"home-{identity}", ca.cert if trusted else None)
        browsers.append(
            Browser(
                tmp_path / f"profile-{identity}",
                f"{pages.origin}/?{urlencode(query)}",
                tmp_path / f"{identity}.log",
                home=home,
                flags=(f"--host-resolver-rules=MAP {POD_HOST} {LOOPBACK}",),
            )
        )
        return identity

    yield open_  # type: ignore[misc]
    for browser in browsers:
        browser.stop()


async def test_chromium_over_wss_and_https_verified_by_a_test_ca(pages, open_page) -> None:
    publisher = open_page("tls-cam", role="publish", transport="ws")
    await eventually(
        lambda: pages.of(publisher, "published"), BROWSER_DEADLINE_SECONDS, "publish over wss"
    )
    viewer = open_page("tls-viewer", role="subscribe", transport="whep")

    def rendered() -> dict | None:
        assert not pages.errors(viewer), pages.errors(viewer)
        renders = pages.of(viewer, "render")
        if renders and renders[-1]["framesDecoded"] >= 10 and renders[-1]["nonBlack"]:
            return renders[-1]
        return None

    frame = await eventually(rendered, BROWSER_DEADLINE_SECONDS, "frames over WHEP on https")
    assert frame["nonBlack"] > 0.5
    assert pages.of(viewer, "http")[0]["status"] == 201


async def test_chromium_that_does_not_trust_the_ca_is_refused(pages, open_page) -> None:
    page = open_page("untrusting", trusted=False, role="publish", transport="whip")
    errors = await eventually(
        lambda: pages.errors(page), BROWSER_DEADLINE_SECONDS, "the page's failed request"
    )
    assert any("Failed to fetch" in error for error in errors), errors
    assert not pages.of(page, "published")
