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
