"""The demo's web server: the page, and `POST /demo/join`, which asks the join API for a room
of the demo namespace with the demo key. The key stays here; a browser only ever gets what
the join API answers (the SFU's URL, a join token for one room, ICE servers).

Served on 127.0.0.1 by the dev tooling alone: nothing shipped (the operator, the chart)
has this route.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
from collections.abc import AsyncIterator
from http import HTTPStatus
from pathlib import Path
from typing import Any, Final

import aiohttp
from aiohttp import web

from switchboard_api.contract import join_path
from switchboard_api.kube_types import DNS_LABEL, DNS_LABEL_MAX_LENGTH
from switchboard_dev.demo.apikey import DEMO_NAMESPACE
from switchboard_localcluster.controlplane import LOOPBACK

log = logging.getLogger(__name__)

DEMO_JOIN_PATH: Final = "/demo/join"
"""The demo endpoint: `{"room", "identity", "watch"}` in, the join API's answer out."""
PAGE_DIR: Final = Path(__file__).resolve().parent / "page"
MAX_BODY_BYTES: Final = 4096
JOIN_API_TIMEOUT_SECONDS: Final = 30.0
"""Longer than the join API's own placement timeout, so its answer is what the page sees."""
DEMO_ROOM_MAX_PARTICIPANTS: Final = 4
"""Rooms the demo creates hold this many: the example Regions' capacity then takes several
(a room reserves capacity for its busiest, see operator/switchboard_operator/CAPACITY.md)."""
WATCH_GRANTS: Final = {"publish": False, "subscribe": True, "data": False}
"""A watch-only participant receives media and sends nothing."""

_ROOM = re.compile(DNS_LABEL)
_JOIN_API: web.AppKey[JoinApiClient] = web.AppKey("join_api")


class JoinApiClient:
    """Calls the join API with the demo key for rooms of the demo namespace."""

    def __init__(self, base_url: str, api_key: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> JoinApiClient:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=JOIN_API_TIMEOUT_SECONDS)
        )
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def join(self, room: str, identity: str, watch: bool) -> web.Response:
        """The join API's answer for `room`, status and body as it gave them."""
        assert self._session is not None
        body: dict[str, Any] = {
            "identity": identity,
            "maxParticipants": DEMO_ROOM_MAX_PARTICIPANTS,
        }
        if watch:
            body["grants"] = WATCH_GRANTS
        url = self.base_url + join_path(DEMO_NAMESPACE, room)
        try:
            async with self._session.post(
                url, json=body, headers={"Authorization": f"Bearer {self._api_key}"}
            ) as answer:
                payload = await answer.read()
                headers = {}
                if "Retry-After" in answer.headers:
                    headers["Retry-After"] = answer.headers["Retry-After"]
                return web.Response(
                    status=answer.status,
                    body=payload,
                    content_type="application/json",
                    headers=headers,
                )
        except (aiohttp.ClientError, TimeoutError) as error:
            log.warning("join api unreachable url=%s error=%s", self.base_url, error)
            return _error(
                HTTPStatus.BAD_GATEWAY,
                "join_api_unreachable",
                f"the join API at {self.base_url} did not answer; is `make up` still running?",
            )


def _error(status: HTTPStatus, code: str, message: str) -> web.Response:
    """An error in the join API's shape, so the page reads both the same way."""
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


async def _join(request: web.Request) -> web.Response:
    if request.content_type != "application/json":
        # Also keeps other sites' pages out: a cross-origin JSON POST needs a preflight,
        # which this server never grants.
        return _error(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the body must be JSON (application/json)",
        )
    try:
        body = json.loads(await request.read())
    except web.HTTPRequestEntityTooLarge:
        return _error(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            "body_too_large",
            f"the body must not exceed {MAX_BODY_BYTES} bytes",
        )
    except (ValueError, UnicodeDecodeError):
        return _error(HTTPStatus.BAD_REQUEST, "invalid_json", "the body is not valid JSON")
    problem = _problem(body)
    if problem:
        return _error(HTTPStatus.BAD_REQUEST, "invalid_request", problem)
    return await request.app[_JOIN_API].join(
        body["room"], body["identity"], bool(body.get("watch", False))
    )


def _problem(body: object) -> str | None:
    """What is wrong with a demo join request, or None."""
    if not isinstance(body, dict):
        return 'send {"room": ..., "identity": ..., "watch": false}'
    room, identity = body.get("room"), body.get("identity")
    if not isinstance(room, str) or len(room) > DNS_LABEL_MAX_LENGTH or not _ROOM.fullmatch(room):
        return (
            f"the room name must be at most {DNS_LABEL_MAX_LENGTH} lower-case letters, digits "
            "and '-', starting and ending with a letter or digit"
        )
    if not isinstance(identity, str) or not identity.strip():
        return "a name is needed"
    if not isinstance(body.get("watch", False), bool):
        return "watch must be true or false"
    return None


async def _page(_: web.Request) -> web.FileResponse:
    return web.FileResponse(PAGE_DIR / "index.html", headers={"Cache-Control": "no-store"})


def demo_app(join_api_url: str, api_key: str) -> web.Application:
    """The page at `/`, its files below `/page/`, and the demo endpoint."""
    app = web.Application(client_max_size=MAX_BODY_BYTES)

    async def join_api(app: web.Application) -> AsyncIterator[None]:
        async with JoinApiClient(join_api_url, api_key) as client:
            app[_JOIN_API] = client
            yield

    app.cleanup_ctx.append(join_api)
    app.router.add_get("/", _page)
    app.router.add_static("/page/", PAGE_DIR)
    app.router.add_post(DEMO_JOIN_PATH, _join)
    return app


class DemoServer:
    """The demo app on its own thread and event loop, beside the synchronous `up` command."""

    def __init__(
        self, join_api_url: str, api_key: str, host: str = LOOPBACK, port: int = 0
    ) -> None:
        self._app = demo_app(join_api_url, api_key)
        self._host = host
        self._port = port
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="demo-server", daemon=True)

    @property
    def url(self) -> str:
        """The page's URL."""
        return f"http://{self._host}:{self._port}/"

    def start(self, timeout: float = 10.0) -> DemoServer:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"the demo server did not start within {timeout:g} s")
        if self._failure is not None:
            raise RuntimeError(f"the demo server did not start: {self._failure}")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except Exception as error:  # reported to start(), or logged once serving
            if not self._ready.is_set():
                self._failure = error
                self._ready.set()
            else:
                log.exception("demo server failed")

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        runner = web.AppRunner(self._app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, self._host, self._port).start()
            self._port = int(runner.addresses[0][1])
            self._ready.set()
            await self._stopping.wait()
        finally:
            await runner.cleanup()
