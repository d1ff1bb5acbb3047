"""Callers waiting for something to happen to a key (e.g. a join request for its room's
placement), and the one who makes it happen answering them all at once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Waiters(Generic[T]):
    def __init__(self) -> None:
        self._futures: dict[str, list[asyncio.Future[T]]] = {}

    async def wait(
        self,
        key: str,
        timeout: float,  # noqa: ASYNC109 - the caller's deadline, cleaned up here
        *,
        then: Callable[[], None] = lambda: None,
    ) -> T:
        """Wait up to `timeout` seconds for the answer about `key` (TimeoutError if none).
        `then` runs once the wait is registered, so an answer it causes is not missed."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._futures.setdefault(key, []).append(future)
        try:
            then()
            return await asyncio.wait_for(future, timeout)
        finally:
            waiting = self._futures.get(key, [])
            if future in waiting:
                waiting.remove(future)
            if not waiting:
                self._futures.pop(key, None)

    def answer(self, key: str, value: T) -> None:
        """Answer everyone waiting for `key` (nobody waiting: nothing happens)."""
        for future in self._futures.pop(key, []):
            if not future.done():
                future.set_result(value)
