"""Janus Gateway (Debian package `janus`) as a benchmark peer: a private configuration with only
the VideoRoom plugin and the HTTP transport, and the HTTP API calls the load generator needs.
"""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import aiohttp

SYSTEM_LIBS = Path("/usr/lib/x86_64-linux-gnu/janus")
ROOM = 1234


def write_config(address: str, port: int) -> Path:
    """A configuration folder for one VideoRoom room (no bitrate cap) on `address`."""
    folder = Path(tempfile.mkdtemp(prefix="switchboard-janus-"))
    for kind, library in (("plugins", "libjanus_videoroom.so"), ("transports", "libjanus_http.so")):
        (folder / kind).mkdir()
        (folder / kind / library).symlink_to(SYSTEM_LIBS / kind / library)
    (folder / "empty").mkdir()
    (folder / "janus.jcfg").write_text(
        f"""general: {{
    configs_folder = "{folder}"
    plugins_folder = "{folder}/plugins"
    transports_folder = "{folder}/transports"
    events_folder = "{folder}/empty"
    loggers_folder = "{folder}/empty"
    debug_level = 3
    interface = "{address}"
}}
nat: {{
    ice_enforce_list = "{address}"
}}
media: {{}}
plugins: {{}}
transports: {{}}
loggers: {{}}
events: {{}}
"""
    )
    (folder / "janus.transport.http.jcfg").write_text(
        f"""general: {{
    base_path = "/janus"
    http = true
    ip = "{address}"
    port = {port}
    https = false
}}
admin: {{
    admin_http = false
}}
"""
    )
    (folder / "janus.plugin.videoroom.jcfg").write_text(
        f"""general: {{}}
room-{ROOM}: {{
    description = "switchboard benchmark"
    publishers = 1
    bitrate = 0
    videocodec = "vp8"
    record = false
}}
"""
    )
    return folder


def start(address: str, port: int) -> tuple[subprocess.Popen[bytes], Path]:
    """Run Janus on `address`; returns the process and its folder (config and janus.log)."""
    folder = write_config(address, port)
    process = subprocess.Popen(
        ["janus", "-F", str(folder), "-C", str(folder / "janus.jcfg"), "--disable-colors"],
        stdout=(folder / "janus.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    return process, folder


class JanusSession:
    """One Janus API session over HTTP, events read by long polling."""

    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self._http = http
        self._base = base
        self._url = ""
        self._events: dict[int, asyncio.Queue[dict[str, Any]]] = {}
        self._poller: asyncio.Task[None] | None = None

    async def create(self) -> None:
        reply = await self._post(self._base, {"janus": "create"})
        self._url = f"{self._base}/{reply['data']['id']}"
        self._poller = asyncio.ensure_future(self._poll())

    async def attach(self) -> int:
        reply = await self._post(self._url, {"janus": "attach", "plugin": "janus.plugin.videoroom"})
        handle = int(reply["data"]["id"])
        self._events[handle] = asyncio.Queue()
        return handle

    async def message(
        self, handle: int, body: dict[str, Any], jsep: dict[str, Any] | None = None
    ) -> None:
        request: dict[str, Any] = {"janus": "message", "body": body}
        if jsep is not None:
            request["jsep"] = jsep
        await self._post(f"{self._url}/{handle}", request)

    async def event(self, handle: int, wanted: str) -> dict[str, Any]:
        """The next event of `handle` whose "janus" or videoroom kind is `wanted`."""
        while True:
            event = await asyncio.wait_for(self._events[handle].get(), 60)
            data = event.get("plugindata", {}).get("data", {})
            if wanted in (event.get("janus"), data.get("videoroom")):
                return event
            if "error" in data:
                raise RuntimeError(f"janus: {data['error']}")

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()

    async def _post(self, url: str, request: dict[str, Any]) -> dict[str, Any]:
        request["transaction"] = secrets.token_hex(6)
        async with self._http.post(url, json=request) as response:
            reply = await response.json(content_type=None)
        if reply.get("janus") == "error":
            raise RuntimeError(f"janus: {reply['error']}")
        return reply

    async def _poll(self) -> None:
        while True:
            async with self._http.get(f"{self._url}?maxev=10") as response:
                events = await response.json(content_type=None)
            for event in events if isinstance(events, list) else [events]:
                handle = event.get("sender")
                if handle in self._events:
                    self._events[handle].put_nowait(event)
