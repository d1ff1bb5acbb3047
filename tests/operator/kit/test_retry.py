"""API calls that fail for transient reasons are retried with back-off; others fail at once."""

from __future__ import annotations

import pytest
from kubernetes_asyncio.client.exceptions import ApiException

from switchboard_operator.kit.retry import with_retries
from switchboard_operator.logic.backoff import Backoff

FAST = Backoff(first_seconds=0.001, max_seconds=0.01)


async def test_throttling_and_server_errors_are_retried_until_the_call_succeeds():
    failures = [ApiException(status=429), ApiException(status=503)]
    calls = 0

    async def call() -> str:
        nonlocal calls
        calls += 1
        if failures:
            raise failures.pop(0)
        return "written"

    assert await with_retries(call, "a write", backoff=FAST) == "written"
    assert calls == 3


async def test_a_refusal_is_not_retried():
    calls = 0

    async def call() -> None:
        nonlocal calls
        calls += 1
        raise ApiException(status=422)

    with pytest.raises(ApiException):
        await with_retries(call, "a write", backoff=FAST)
    assert calls == 1


async def test_retries_end_after_the_last_attempt():
    calls = 0

    async def call() -> None:
        nonlocal calls
        calls += 1
        raise ApiException(status=500)

    with pytest.raises(ApiException):
        await with_retries(call, "a write", attempts=3, backoff=FAST)
    assert calls == 3
