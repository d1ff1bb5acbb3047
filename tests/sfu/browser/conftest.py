"""Fixtures for real-browser tests: headless Chromium pages served from their own origin,
reporting back to the test over HTTP, against an SFU subprocess."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import urlencode

import pytest

from fixtures.browser_pages import Browser, PageServer
from fixtures.sfu_harness import JoinKeys, PodIdentity, SfuProcess, sign_join_token

PAGE_DIR = Path(__file__).resolve().parent / "page"


@pytest.fixture
async def pages() -> AsyncIterator[PageServer]:
    server = PageServer(PAGE_DIR)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def sfu(tmp_path: Path) -> AsyncIterator[SfuProcess]:
    workdir = tmp_path / "sfu"
    workdir.mkdir()
    process = SfuProcess(workdir, JoinKeys(tmp_path / "join-keys"), PodIdentity())
    await process.start()
    yield process
    process.stop()


@pytest.fixture
def open_page(tmp_path: Path, pages: PageServer, sfu: SfuProcess) -> Callable[..., str]:
    """open_page(role=..., transport=..., identity=..., **query) -> the page's report id."""
    browsers: list[Browser] = []

    def open_(identity: str, room: str = "default/browser", **query: str) -> str:
        token = sign_join_token(sfu.keys, sfu.pod, room=room, identity=identity)
        query = {"sfu": sfu.base_url, "token": token, "room": room, "report": identity, **query}
        url = f"{pages.origin}/?{urlencode(query)}"
        browsers.append(
            Browser(tmp_path / f"profile-{identity}", url, tmp_path / f"{identity}.log")
        )
        return identity

    yield open_  # type: ignore[misc]
    for browser in browsers:
        browser.stop()
