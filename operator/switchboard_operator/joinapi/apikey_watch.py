"""Keeps the join API's key store equal to the labelled API-key Secrets of the operator's
namespace: an informer with a server-side label selector, so no other Secret is ever read."""

from __future__ import annotations

import asyncio
import logging

from kubernetes_asyncio import client

from switchboard_operator.joinapi.apikeys import (
    API_KEY_LABEL,
    API_KEY_LABEL_VALUE,
    SecretApiKeyStore,
)
from switchboard_operator.kit.informer import Informer, Resource
from switchboard_operator.logic.ratelimit import RateLimiter

log = logging.getLogger(__name__)
SELECTOR = f"{API_KEY_LABEL}={API_KEY_LABEL_VALUE}"


class ApiKeyWatch:
    def __init__(
        self,
        api: client.ApiClient,
        namespace: str,
        store: SecretApiKeyStore,
        limiter: RateLimiter,
    ) -> None:
        secrets = Resource("v1", "Secret", "secrets", namespace=namespace, label_selector=SELECTOR)
        self._informer = Informer(api, secrets)
        self._informer.subscribe(on_change=self._changed, on_synced=self._reload)
        self._store = store
        self._limiter = limiter
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start watching; return once the keys are loaded."""
        self._task = asyncio.create_task(self._informer.run(), name="api-key-watch")
        await self._informer.synced.wait()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def _changed(self, _key: str) -> None:
        # Level-based: any change replaces the whole (small) store.
        if self._informer.synced.is_set():
            self._reload()

    def _reload(self) -> None:
        self._store.replace(self._informer.values())
        self._limiter.retain(self._store.names)
        log.info("join api keys loaded count=%d", len(self._store.names))
