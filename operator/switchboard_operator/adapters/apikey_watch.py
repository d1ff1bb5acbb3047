"""Keeps the join API's key store equal to the labelled API-key Secrets of the operator's
namespace: a server-side label-selected watch, so no other Secret is ever read."""

from __future__ import annotations

import asyncio
import logging

from kubernetes_asyncio import client, watch

from switchboard_operator.adapters.joinapi.apikeys import (
    API_KEY_LABEL,
    API_KEY_LABEL_VALUE,
    SecretApiKeyStore,
)
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
        self._api = api
        self._core = client.CoreV1Api(api)
        self._namespace = namespace
        self._store = store
        self._limiter = limiter
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._resync()
        self._task = asyncio.create_task(self._run(), name="api-key-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _resync(self) -> str:
        listing = await self._core.list_namespaced_secret(self._namespace, label_selector=SELECTOR)
        secrets = [self._api.sanitize_for_serialization(item) for item in listing.items]
        self._store.replace(secrets)
        self._limiter.retain(self._store.names)
        log.info("join api keys loaded count=%d", len(self._store.names))
        return str(listing.metadata.resource_version)

    async def _run(self) -> None:
        # Level-based: any change re-lists the (few) key Secrets.
        while True:
            try:
                version = await self._resync()
                async with watch.Watch() as stream:
                    async for _ in stream.stream(
                        self._core.list_namespaced_secret,
                        self._namespace,
                        label_selector=SELECTOR,
                        resource_version=version,
                        timeout_seconds=300,
                    ):
                        await self._resync()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("api key watch restarting error=%s", error)
                await asyncio.sleep(2)
