"""A coalescing, per-key work queue: the operator's reconcile loop, as in controller-runtime.

Any number of triggers for one key while it waits collapse into one reconcile; one key is
never reconciled by two workers at once; a failed reconcile is retried with back-off; and
a key can ask to be looked at again later (requeue_after) without any event.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass

from switchboard_operator.logic.backoff import Backoff

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Result:
    """What a reconcile asks of the queue: nothing, or another look after some seconds."""

    requeue_after: float | None = None


Reconcile = Callable[[Hashable], Awaitable[Result | None]]
RETRY_BACKOFF = Backoff(first_seconds=0.5, max_seconds=60.0)
Observe = Callable[[float, bool], None]
"""Told of every pass: (seconds it took, whether it failed)."""


class WorkQueue:
    def __init__(
        self,
        reconcile: Reconcile,
        name: str,
        workers: int = 4,
        backoff: Backoff = RETRY_BACKOFF,
        *,
        observe: Observe | None = None,
    ) -> None:
        self._reconcile = reconcile
        self._observe = observe
        self._name = name
        self._workers = workers
        self._backoff = backoff
        self._queue: asyncio.Queue[Hashable] = asyncio.Queue()
        self._waiting: set[Hashable] = set()
        self._running: set[Hashable] = set()
        self._dirty: set[Hashable] = set()
        self._failures: dict[Hashable, int] = {}
        self._timers: dict[Hashable, asyncio.TimerHandle] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._idle = asyncio.Event()
        self._idle.set()

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._work(), name=f"{self._name}-worker-{i}")
            for i in range(self._workers)
        ]

    async def stop(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def trigger(self, key: Hashable) -> None:
        """Ask for ``key`` to be reconciled soon (coalesced with pending triggers)."""
        if key in self._running:
            self._dirty.add(key)
        elif key not in self._waiting:
            self._waiting.add(key)
            self._idle.clear()
            self._queue.put_nowait(key)

    async def wait_idle(self) -> None:
        """Return once no key waits or is being reconciled (timers do not count)."""
        await self._idle.wait()

    def trigger_after(self, key: Hashable, delay: float) -> None:
        existing = self._timers.get(key)
        loop = asyncio.get_running_loop()
        if existing is not None and existing.when() <= loop.time() + delay:
            return
        if existing is not None:
            existing.cancel()
        self._timers[key] = loop.call_later(delay, self._fire_timer, key)

    def _observed(self, started: float, failed: bool) -> None:
        if self._observe is not None:
            self._observe(time.monotonic() - started, failed)

    def _fire_timer(self, key: Hashable) -> None:
        self._timers.pop(key, None)
        self.trigger(key)

    async def _work(self) -> None:
        while True:
            key = await self._queue.get()
            self._waiting.discard(key)
            self._running.add(key)
            started = time.monotonic()
            try:
                result = await self._reconcile(key)
            except asyncio.CancelledError:
                raise
            except Exception:
                self._observed(started, failed=True)
                failures = self._failures[key] = self._failures.get(key, 0) + 1
                delay = self._backoff.delay(failures)
                log.exception(
                    "reconcile failed queue=%s key=%s retry_in=%.1fs", self._name, key, delay
                )
                self.trigger_after(key, delay)
            else:
                self._observed(started, failed=False)
                self._failures.pop(key, None)
                if result is not None and result.requeue_after is not None:
                    self.trigger_after(key, result.requeue_after)
            finally:
                self._running.discard(key)
                self._queue.task_done()
            if key in self._dirty:
                self._dirty.discard(key)
                self.trigger(key)
            elif not self._waiting and not self._running:
                self._idle.set()
