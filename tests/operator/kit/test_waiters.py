"""Callers waiting for a key are all answered at once, time out on their own, and leave
nothing behind."""

from __future__ import annotations

import asyncio

import pytest

from switchboard_operator.kit.waiters import Waiters


async def test_everyone_waiting_for_a_key_hears_the_answer():
    waiters: Waiters[str] = Waiters()
    first = asyncio.create_task(waiters.wait("room", 5))
    second = asyncio.create_task(waiters.wait("room", 5))
    other = asyncio.create_task(waiters.wait("elsewhere", 5))
    await asyncio.sleep(0)  # the three waits are registered
    waiters.answer("room", "placed")
    assert await first == "placed" and await second == "placed"
    assert not other.done()
    waiters.answer("elsewhere", "gone")
    assert await other == "gone"


async def test_the_answer_the_wait_causes_is_not_missed():
    waiters: Waiters[str] = Waiters()
    answered = await waiters.wait("room", 5, then=lambda: waiters.answer("room", "at once"))
    assert answered == "at once"


async def test_a_wait_times_out_and_an_answer_after_it_reaches_nobody():
    waiters: Waiters[str] = Waiters()
    with pytest.raises(TimeoutError):
        await waiters.wait("room", 0.01)
    waiters.answer("room", "late")  # nobody waits: nothing happens
    assert await waiters.wait("room", 5, then=lambda: waiters.answer("room", "next")) == "next"
