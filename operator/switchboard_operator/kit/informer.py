"""An informer in the client-go sense, for every kind the operator watches outside kopf:
a paginated list, a watch from its resourceVersion with bookmarks, a fresh list when the
version has expired (410) that reports every key changed or gone meanwhile, and a callback
per changed key. Level-based: the store is always the API server's state as of the last
event.

Rooms come through here because they are the hot path (two watch events per placement,
thousands per failover) and kopf's per-object machinery cost about 0.8 ms of CPU per
event, more than the placement itself (docs/architecture.md has the measurement). API-key
Secrets come through here because kopf can only watch them cluster-wide, and the operator
may list Secrets in its own namespace alone, by label.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from kubernetes_asyncio import client

from switchboard_operator.kube import bodies
from switchboard_operator.kube.client import request
from switchboard_operator.logic.backoff import Backoff

log = logging.getLogger(__name__)

PAGE = 500
LIST_TIMEOUT_SECONDS = 30.0
WATCH_SECONDS = 300
RETRY_BACKOFF = Backoff(first_seconds=0.5, max_seconds=30.0)


@dataclass(frozen=True)
class Resource:
    """What an informer lists and watches: one kind, in one namespace or all of them,
    optionally only objects matching a label selector (filtered by the API server)."""

    api_version: str
    """`v1` for the core group, else `<group>/<version>`."""
    kind: str
    plural: str
    namespace: str | None = None
    label_selector: str | None = None

    @property
    def path(self) -> str:
        base = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        if self.namespace is not None:
            base += f"/namespaces/{self.namespace}"
        return f"{base}/{self.plural}"

    def query(self, **params: str | None) -> list[tuple[str, str]]:
        selector = {"labelSelector": self.label_selector}
        return [(k, v) for k, v in {**selector, **params}.items() if v is not None]


class ResourceExpired(Exception):
    """The watch's resourceVersion is gone from the API server's history: list again."""


def object_key(body: Mapping[str, Any]) -> str:
    """`<namespace>/<name>`, or `<name>` for a cluster-scoped object."""
    meta = body["metadata"]
    namespace = meta.get("namespace")
    return f"{namespace}/{meta['name']}" if namespace else str(meta["name"])


class Informer:
    def __init__(
        self,
        api: client.ApiClient,
        resource: Resource,
        on_change: Callable[[str], None] = lambda _key: None,
        on_synced: Callable[[], None] = lambda: None,
    ) -> None:
        self._api = api
        self._resource = resource
        self._on_change = on_change
        self._on_synced = on_synced
        self._bodies: dict[str, dict[str, Any]] = {}
        self._version: str | None = None
        self.synced = asyncio.Event()
        """Set once the first list is in the store (and stays set across re-lists)."""

    def subscribe(
        self,
        on_change: Callable[[str], None],
        on_synced: Callable[[], None] = lambda: None,
    ) -> None:
        """Tell `on_change` every key whose object changed or went away, and `on_synced`
        once the first list is in (after the first list's changes)."""
        self._on_change = on_change
        self._on_synced = on_synced

    def get(self, key: str) -> dict[str, Any] | None:
        return self._bodies.get(key)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._bodies))

    def values(self) -> list[dict[str, Any]]:
        return list(self._bodies.values())

    def forget_version(self) -> None:
        """Resume from a version long gone, as after a long disconnection: the next watch
        is refused (410) and the informer lists again."""
        self._version = "1"

    async def run(self) -> None:
        failures = 0
        kind = self._resource.kind
        while True:
            try:
                if self._version is None:
                    await self._list()
                await self._watch()
                failures = 0
            except asyncio.CancelledError:
                raise
            except ResourceExpired:
                log.info("watch expired, listing again kind=%s version=%s", kind, self._version)
                self._version = None
            except Exception as error:  # a view of the cluster must not die
                failures += 1
                delay = RETRY_BACKOFF.delay(failures)
                log.warning(
                    "watch failed kind=%s retry_in=%.1fs error=%s: %s",
                    kind,
                    delay,
                    type(error).__name__,
                    error,
                )
                await asyncio.sleep(delay)

    async def _list(self) -> None:
        seen: dict[str, dict[str, Any]] = {}
        token: str | None = None
        resource = self._resource
        while True:
            page = await request(
                self._api,
                "GET",
                resource.path,
                query=resource.query(limit=str(PAGE), **{"continue": token}),
                timeout=LIST_TIMEOUT_SECONDS,
            )
            for item in page.get("items", []):
                item.setdefault("apiVersion", resource.api_version)
                item.setdefault("kind", resource.kind)
                seen[object_key(item)] = bodies.snapshot(item)
            token = page["metadata"].get("continue")
            if not token:
                version = page["metadata"]["resourceVersion"]
                break
        changed = [k for k, body in seen.items() if self._changed(k, body)]
        gone = [k for k in self._bodies if k not in seen]
        self._bodies = seen
        self._version = version
        first = not self.synced.is_set()
        for key in (*changed, *gone):
            self._on_change(key)
        if first:
            self.synced.set()
            self._on_synced()
        log.info(
            "listed kind=%s count=%d changed=%d gone=%d first=%s",
            resource.kind,
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
        resource = self._resource
        response = await self._api.call_api(
            resource.path,
            "GET",
            query_params=resource.query(
                watch="true",
                resourceVersion=self._version,
                allowWatchBookmarks="true",
                timeoutSeconds=str(WATCH_SECONDS),
            ),
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
            _preload_content=False,
            _request_timeout=WATCH_SECONDS + 30,
        )
        async with response:
            if response.status != 200:
                text = await response.text()
                if response.status == 410:
                    raise ResourceExpired(text)
                raise client.ApiException(status=response.status, reason=text[:200])
            async for line in event_lines(response.content):
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
        key = object_key(body)
        if kind == "DELETED":
            self._bodies.pop(key, None)
        else:
            self._bodies[key] = bodies.snapshot(body)
        self._version = version or self._version
        self._on_change(key)


async def event_lines(stream: aiohttp.StreamReader) -> AsyncIterator[bytes]:
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
