"""Periodic jobs: run one every few seconds, or at once when woken, and never let one
failure stop it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


async def every(
    seconds: float,
    job: Callable[[], Awaitable[None]],
    *,
    wakeup: asyncio.Event | None = None,
    when: Callable[[], bool] = lambda: True,
) -> None:
    """Run `job` every `seconds`, or as soon as `wakeup` is set; skip a turn while `when()`
    is false. Runs until cancelled; a failed run is logged and the next one comes anyway."""
    while True:
        if wakeup is None:
            await asyncio.sleep(seconds)
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wakeup.wait(), seconds)
            wakeup.clear()
        if not when():
            continue
        try:
            await job()
        except Exception:
            log.exception("periodic job failed job=%s", getattr(job, "__name__", job))


class Periodic:
    """A job run every few seconds, or at once when woken, from `start` until `stop`."""

    def __init__(
        self,
        name: str,
        seconds: float,
        job: Callable[[], Awaitable[None]],
        *,
        when: Callable[[], bool] = lambda: True,
    ) -> None:
        self._name = name
        self._seconds = seconds
        self._job = job
        self._when = when
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(
            every(self._seconds, self._job, wakeup=self._wakeup, when=self._when), name=self._name
        )

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def wake(self) -> None:
        """Run the job now rather than at its next turn."""
        self._wakeup.set()
