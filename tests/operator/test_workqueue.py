"""The reconcile queue coalesces triggers, never runs one key twice at once, and retries."""

from __future__ import annotations

import asyncio

from switchboard_operator.adapters.workqueue import Result, WorkQueue


async def _until(predicate, deadline: float = 10.0) -> None:
    async with asyncio.timeout(deadline):
        while not predicate():  # noqa: ASYNC110 - polls plain state the queue updates
            await asyncio.sleep(0.01)


async def test_triggers_while_waiting_coalesce_and_a_key_never_runs_concurrently():
    running: set[str] = set()
    overlaps: list[str] = []
    calls: list[str] = []
    release = asyncio.Event()

    async def reconcile(key):
        if key in running:
            overlaps.append(key)
        running.add(key)
        calls.append(key)
        await release.wait()
        running.discard(key)

    queue = WorkQueue(reconcile, "test", workers=4)
    queue.start()
    try:
        queue.trigger("a")
        await _until(lambda: calls == ["a"])
        for _ in range(10):  # arrive while "a" runs: one more pass, not ten, and not now
            queue.trigger("a")
        queue.trigger("b")
        await _until(lambda: sorted(calls) == ["a", "b"])
        release.set()
        await _until(lambda: calls.count("a") == 2)
        await asyncio.sleep(0.1)
        assert calls.count("a") == 2
        assert overlaps == []
    finally:
        await queue.stop()


async def test_failures_are_retried_and_requeue_after_looks_again():
    attempts: dict[str, int] = {"flaky": 0, "periodic": 0}

    async def reconcile(key):
        attempts[key] += 1
        if key == "flaky" and attempts[key] < 3:
            raise RuntimeError("transient")
        if key == "periodic" and attempts[key] < 2:
            return Result(requeue_after=0.05)
        return None

    queue = WorkQueue(reconcile, "test", first_backoff=0.01)
    queue.start()
    try:
        queue.trigger("flaky")
        queue.trigger("periodic")
        await _until(lambda: attempts == {"flaky": 3, "periodic": 2})
    finally:
        await queue.stop()


async def test_wait_idle_returns_only_once_every_triggered_key_is_done():
    release = asyncio.Event()
    done: list[str] = []

    async def reconcile(key):
        await release.wait()
        done.append(key)

    queue = WorkQueue(reconcile, "test", workers=2)
    queue.start()
    try:
        await asyncio.wait_for(queue.wait_idle(), 5)  # nothing triggered yet: idle
        for key in ("a", "b", "c"):
            queue.trigger(key)
        idle = asyncio.create_task(queue.wait_idle())
        await asyncio.sleep(0.05)
        assert not idle.done()
        release.set()
        await asyncio.wait_for(idle, 5)
        assert sorted(done) == ["a", "b", "c"]
    finally:
        await queue.stop()
