"""The cluster's ServiceAccount token signing keys, fetched once and cached.

Refetched only when a token names a key the cache does not hold (key rotation), and at
most once per ``min_refresh_seconds``, so report verification never costs an API call
in steady state.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

log = logging.getLogger(__name__)


class JwksCache:
    def __init__(self, api: client.ApiClient, min_refresh_seconds: float = 30.0) -> None:
        self._api = api
        self._min_refresh = min_refresh_seconds
        self._jwks: dict[str, Any] = {"keys": []}
        self._issuer = ""
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()

    @property
    def jwks(self) -> dict[str, Any]:
        return self._jwks

    @property
    def issuer(self) -> str:
        return self._issuer

    async def refresh(self, force: bool = False) -> bool:
        """Fetch the keys and issuer; return False if throttled."""
        async with self._lock:
            if not force and time.monotonic() - self._fetched_at < self._min_refresh:
                return False
            discovery = await _raw_json(
                client.WellKnownApi(self._api).get_service_account_issuer_open_id_configuration
            )
            self._jwks = await _raw_json(
                client.OpenidApi(self._api).get_service_account_issuer_open_id_keyset
            )
            self._issuer = str(discovery["issuer"])
            self._fetched_at = time.monotonic()
            log.info("service-account signing keys fetched keys=%d", len(self._jwks["keys"]))
            return True


async def _raw_json(call: Callable[..., Awaitable[Any]]) -> dict[str, Any]:
    # The generated client would turn these documents into a Python repr of a str.
    response = await call(_preload_content=False)
    text = await response.read()
    if not 200 <= response.status <= 299:
        raise ApiException(status=response.status, reason=text.decode(errors="replace")[:500])
    return dict(json.loads(text))
