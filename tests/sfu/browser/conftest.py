"""Fixtures for real-browser tests: headless Chromium pages served from their own origin,
reporting back to the test over HTTP, against an SFU subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import urlencode

import pytest
from aiohttp import web

from fixtures.chromium import CHROMIUM_FLAGS, FRAME_JS, chromium_executable
from fixtures.sfu_harness import (
    LOOPBACK,
    JoinKeys,
    PodIdentity,
    SfuProcess,
    sign_join_token,
)

PAGE_DIR = Path(__file__).resolve().parent / "page"


class PageServer:
    """Serves the test page on its own origin and collects what pages report."""

    def __init__(self) -> None:
        self.reports: dict[str, list[dict]] = defaultdict(list)
        self.commands: dict[str, list[dict]] = defaultdict(list)
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def origin(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    async def _page(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(PAGE_DIR / "client.html")

    async def _frame_js(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(FRAME_JS)

    async def _report(self, request: web.Request) -> web.Response:
        self.reports[request.match_info["id"]].append(await request.json())
        return web.Response(status=204)

    async def _commands(self, request: web.Request) -> web.Response:
        queued = self.commands.pop(request.match_info["id"], [])
        return web.json_response(queued)

    def command(self, page_id: str, message: dict) -> None:
        """Have the page send `message` on its signalling WebSocket."""
        self.commands[page_id].append(message)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/report/{id}", self._report)
        app.router.add_get("/commands/{id}", self._commands)
        app.router.add_get("/", self._page)
        app.router.add_get("/frame.js", self._frame_js)
        app.router.add_static("/", PAGE_DIR)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, LOOPBACK, 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def of(self, page_id: str, kind: str) -> list[dict]:
        return [r for r in self.reports[page_id] if r["kind"] == kind]

    def errors(self, page_id: str) -> list[str]:
        return [r["message"] for r in self.of(page_id, "error")]


class Browser:
    """One headless Chromium process showing one page."""

    def __init__(self, profile: Path, url: str, log_path: Path) -> None:
        profile.mkdir(parents=True)
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [chromium_executable(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", url],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its helpers share the group: stop() ends them all
            )

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


@pytest.fixture
async def pages() -> AsyncIterator[PageServer]:
    server = PageServer()
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
