"""Every Room in the cluster, listed then watched: the scheduler's view of Room objects.

This is the one stream the operator does not take through kopf. Rooms are its hot path
(two watch events per placement, thousands per failover), and kopf's per-object handler
machinery (cause detection, diff bases, handler registries, its index) cost about 0.8 ms
of CPU per event, more than the placement itself (measured with py-spy under
bench/placement_e2e.py). An informer in the client-go sense does what the scheduler
needs: a list, then a watch from its resourceVersion, bookmarks, a fresh list when the
version has expired (410), and a callback per changed key. Level-based: the store is
always the API server's state as of the last event, and a re-list reports every key
whose object changed or vanished meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any

import aiohttp
from kubernetes_asyncio import client

from switchboard_api.contract import room_key
from switchboard_api.resources import GROUP, ROOM, VERSION
from switchboard_operator.adapters import kube

log = logging.getLogger(__name__)

PAGE = 500
LIST_TIMEOUT_SECONDS = 30.0
WATCH_SECONDS = 300
RETRY_FIRST_SECONDS = 0.5
RETRY_MAX_SECONDS = 30.0


class ResourceExpired(Exception):
    """The watch's resourceVersion is gone from the API server's history: list again."""


def _key(body: Mapping[str, Any]) -> str:
    meta = body["metadata"]
    return room_key(meta["namespace"], meta["name"])


class RoomInformer:
    def __init__(
        self,
        api: client.ApiClient,
        on_change: Callable[[str], None],
        on_synced: Callable[[], None] = lambda: None,
    ) -> None:
        self._api = client.CustomObjectsApi(api)
        self._on_change = on_change
        self._on_synced = on_synced
        self._bodies: dict[str, dict[str, Any]] = {}
        self._version: str | None = None
        self.synced = asyncio.Event()
        """Set once the first list is in the store (and stays set across re-lists)."""

    def get(self, key: str) -> dict[str, Any] | None:
        return self._bodies.get(key)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._bodies))

    async def run(self) -> None:
        failures = 0
        while True:
            try:
                if self._version is None:
                    await self._list()
                await self._watch()
                failures = 0
            except asyncio.CancelledError:
                raise
            except ResourceExpired:
                log.info("room watch expired, listing again version=%s", self._version)
                self._version = None
            except Exception as error:  # the scheduler's only view of Rooms must not die
                failures += 1
                delay = min(RETRY_FIRST_SECONDS * 2 ** (failures - 1), RETRY_MAX_SECONDS)
                log.warning(
                    "room watch failed retry_in=%.1fs error=%s: %s",
                    delay,
                    type(error).__name__,
                    error,
                )
                await asyncio.sleep(delay)

    async def _list(self) -> None:
        seen: dict[str, dict[str, Any]] = {}
        token: str | None = None
        while True:
            page = await self._api.list_cluster_custom_object(
                GROUP,
                VERSION,
                ROOM.plural,
                limit=PAGE,
                _continue=token,
                _request_timeout=LIST_TIMEOUT_SECONDS,
            )
            for item in page.get("items", []):
                item.setdefault("apiVersion", f"{GROUP}/{VERSION}")
                item.setdefault("kind", ROOM.kind)
                seen[_key(item)] = kube.snapshot(item)
            token = page["metadata"].get("continue")
            if not token:
                version = page["metadata"]["resourceVersion"]
                break
        changed = [k for k, body in seen.items() if self._changed(k, body)]
        gone = [k for k in self._bodies if k not in seen]
        self._bodies = seen
        self._version = version
        first = not self.synced.is_set()
        if first:
            self.synced.set()
            self._on_synced()
        for key in (*changed, *gone):
            self._on_change(key)
        log.info(
            "rooms listed count=%d changed=%d gone=%d first=%s",
            len(seen),
            len(changed),
            len(gone),
            first,
        )

    def _changed(self, key: str, body: Mapping[str, Any]) -> bool:
        known = self._bodies.get(key)
        version = body["metadata"].get("resourceVersion")
        return known is None or known["metadata"].get("resourceVersion") != version

    async def _watch(self) -> None:
        response = await self._api.list_cluster_custom_object(
            GROUP,
            VERSION,
            ROOM.plural,
            watch=True,
            resource_version=self._version,
            allow_watch_bookmarks=True,
            timeout_seconds=WATCH_SECONDS,
            _preload_content=False,
            _request_timeout=WATCH_SECONDS + 30,
        )
        async with response:
            if response.status != 200:
                text = await response.text()
                if response.status == 410:
                    raise ResourceExpired(text)
                raise client.ApiException(status=response.status, reason=text[:200])
            async for line in _lines(response.content):
                self._apply(json.loads(line))

    def _apply(self, event: Mapping[str, Any]) -> None:
        kind, body = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            if body.get("code") == 410:
                raise ResourceExpired(body.get("message", ""))
            raise client.ApiException(status=body.get("code"), reason=body.get("message"))
        version = (body.get("metadata") or {}).get("resourceVersion")
        if kind == "BOOKMARK":
            self._version = version or self._version
            return
        key = _key(body)
        if kind == "DELETED":
            self._bodies.pop(key, None)
        else:
            self._bodies[key] = kube.snapshot(body)
        self._version = version or self._version
        self._on_change(key)


async def _lines(stream: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """Newline-delimited watch events, read in chunks: aiohttp's own line reader refuses
    lines over its buffer size, and a Room may be as large as the API server allows."""
    pending = b""
    async for chunk in stream.iter_any():
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            if line.strip():
                yield line
    if pending.strip():
        yield pending
