"""The reconcile queue coalesces triggers, never runs one key twice at once, retries with
back-off, looks again when asked, and says when it is idle."""

from __future__ import annotations

import asyncio

from fixtures.waiting import eventually
from switchboard_operator.kit.workqueue import Result, WorkQueue
from switchboard_operator.logic.backoff import Backoff

DEADLINE = 10.0


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
        await eventually(lambda: calls == ["a"], DEADLINE, "the first pass of a")
        for _ in range(10):  # arrive while "a" runs: one more pass, not ten, and not now
            queue.trigger("a")
        queue.trigger("b")
        await eventually(lambda: sorted(calls) == ["a", "b"], DEADLINE, "b, beside a")
        release.set()
        # Idle means nothing waits or runs: a third pass of "a" would have been queued
        # before the queue could say so.
        await asyncio.wait_for(queue.wait_idle(), DEADLINE)
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

    queue = WorkQueue(reconcile, "test", backoff=Backoff(first_seconds=0.01, max_seconds=0.1))
    queue.start()
    try:
        queue.trigger("flaky")
        queue.trigger("periodic")
        await eventually(
            lambda: attempts == {"flaky": 3, "periodic": 2}, DEADLINE, "retries and the requeue"
        )
    finally:
        await queue.stop()


async def test_wait_idle_returns_only_once_every_triggered_key_is_done():
    release = asyncio.Event()
    started: list[str] = []
    done: list[str] = []

    async def reconcile(key):
        started.append(key)
        await release.wait()
        done.append(key)

    queue = WorkQueue(reconcile, "test", workers=2)
    queue.start()
    try:
        await asyncio.wait_for(queue.wait_idle(), DEADLINE)  # nothing triggered yet: idle
        for key in ("a", "b", "c"):
            queue.trigger(key)
        idle = asyncio.create_task(queue.wait_idle())
        # Both workers are busy (a positive signal that the queue has taken the keys) and
        # one key still waits: not idle.
        await eventually(lambda: len(started) == 2, DEADLINE, "two keys in reconcile")
        assert not idle.done()
        release.set()
        await asyncio.wait_for(idle, DEADLINE)
        assert sorted(done) == ["a", "b", "c"]
    finally:
        await queue.stop()
