"""A periodic job runs on its period, at once when woken, not while it should not, and goes
on after a failure."""

from __future__ import annotations

import asyncio

from fixtures.waiting import eventually
from switchboard_operator.kit.ticker import Periodic


async def test_a_woken_job_runs_at_once_and_a_failure_does_not_stop_it():
    runs: list[int] = []

    async def job() -> None:
        runs.append(len(runs))
        if len(runs) == 1:
            raise RuntimeError("the first run fails")

    periodic = Periodic("test", 3600, job)  # its period never comes: only wakes run it
    periodic.start()
    try:
        periodic.wake()
        await eventually(lambda: len(runs) == 1, 10, "the first run")
        periodic.wake()
        await eventually(lambda: len(runs) == 2, 10, "a run after the failed one")
    finally:
        await periodic.stop()


async def test_a_job_runs_on_its_period_only_while_it_may():
    allowed = asyncio.Event()
    turns: list[bool] = []
    runs: list[int] = []

    def may_run() -> bool:
        turns.append(allowed.is_set())
        return allowed.is_set()

    async def job() -> None:
        runs.append(len(turns))

    periodic = Periodic("test", 0.01, job, when=may_run)
    periodic.start()
    try:
        await eventually(lambda: len(turns) >= 3, 10, "three turns while it may not run")
        assert runs == []
        allowed.set()
        await eventually(lambda: len(runs) >= 3, 10, "three runs on the period")
    finally:
        await periodic.stop()
