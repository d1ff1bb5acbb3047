"""Retrying API calls that failed for transient reasons (throttling, server errors, network)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aiohttp
from kubernetes_asyncio.client.exceptions import ApiException

from switchboard_operator.logic.backoff import Backoff

log = logging.getLogger(__name__)
T = TypeVar("T")

TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})
BACKOFF = Backoff(first_seconds=0.2, max_seconds=5.0)


def is_transient(error: BaseException) -> bool:
    if isinstance(error, ApiException):
        return error.status in TRANSIENT_STATUS
    return isinstance(error, aiohttp.ClientError | asyncio.TimeoutError)


async def with_retries(
    call: Callable[[], Awaitable[T]],
    what: str,
    attempts: int = 6,
    backoff: Backoff = BACKOFF,
) -> T:
    """Run ``call`` until it succeeds, retrying transient failures with exponential back-off."""
    for attempt in range(1, attempts + 1):
        try:
            return await call()
        except Exception as error:
            if attempt == attempts or not is_transient(error):
                raise
            log.warning(
                "transient API failure, retrying what=%s attempt=%d error=%s", what, attempt, error
            )
            await asyncio.sleep(backoff.delay(attempt))
    raise AssertionError("unreachable")
