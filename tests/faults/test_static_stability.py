"""The fault suite: a real control plane, real SFU pods and aiortc participants streaming
throughout, and one fault per case. Every case asserts the four things of the static
stability issue (see fixtures/fault_stack.py, Observation): no participant of a healthy pod
was told to migrate or lost its connection; media kept flowing during and after; at no
instant was a room on two pods, and every room is on exactly one afterwards; the operator
converged without a hand on it. Recovery times are printed (bench/faults.py tabulates them).

One stack serves the module's cases in order, each leaving it healthy. The two long holds
(the API server down for two minutes; everything down for five) run on a second stack of
their own, in the background from the module's start, so they add their length to the
module's time only once, not once each after the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from fixtures.fault_cases import hold, running, settle, streaming_calls
from fixtures.fault_stack import (
    PREVIOUS_SFU_IMAGE,
    SECOND_POD_ADDRESSES,
    SETTLE_SECONDS,
    FaultStack,
    Observation,
    StreamingRoom,
    eventually,
    off_loop,
    open_calls,
    reopen_broken,
)
from fixtures.rolling import Roll, answers_lease_checks, live_sfu_pods, sfu_image
from switchboard_dev.faults import CpuHog, ProxyMode

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.nodeagent,
    pytest.mark.slow,
    pytest.mark.asyncio(loop_scope="module"),
]

REPORT_PATH_BOUND_SECONDS = 15.0
"""The rooms of an SFU whose report path alone is cut move within this long."""

FENCED = "switchboard_sfu_fenced"
API_SERVER_LONG = "apiserver-down-120s"
EVERYTHING_DOWN = "everything-down-300s"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultStack]:
    with running(FaultStack(Path(tmp_path_factory.mktemp("fault-stack")))) as fault_stack:
        yield fault_stack


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def calls(stack: FaultStack) -> AsyncIterator[list[StreamingRoom]]:
    """A streaming room on every SFU pod."""
    async with streaming_calls(stack) as opened:
        yield opened


@pytest_asyncio.fixture(loop_scope="module")
async def rooms(stack: FaultStack, calls: list[StreamingRoom]) -> list[StreamingRoom]:
    """The module's calls, each intact when the case starts."""
    await reopen_broken(stack, calls)
    return calls


async def api_server_down(stack: FaultStack, rooms: list[StreamingRoom], seconds: float) -> None:
    observation = Observation(stack, rooms, healthy_pods=set(stack.sfu_ips))
    await off_loop(lambda: stack.plane.kill("kube-apiserver"))
    try:
        await hold(seconds, observation)
    finally:  # a failed case leaves the stack whole for the next
        await off_loop(lambda: stack.plane.revive("kube-apiserver"))
    await settle(observation, f"apiserver-down-{seconds:g}s")


async def everything_down(stack: FaultStack, rooms: list[StreamingRoom], seconds: float) -> None:
    observation = Observation(stack, rooms, healthy_pods=set(stack.sfu_ips))
    for replica in stack.replicas:
        replica.kill(restart=False)
    await off_loop(lambda: stack.plane.kill("kube-apiserver"))
    await off_loop(lambda: stack.plane.kill("etcd"))
    try:
        await hold(seconds, observation)
    finally:
        await off_loop(lambda: stack.plane.revive("etcd"))
        await off_loop(lambda: stack.plane.revive("kube-apiserver"))
        for replica in stack.replicas:
            await off_loop(lambda replica=replica: replica.start(wait=False))
    await settle(observation, f"everything-down-{seconds:g}s")


class LongHolds:
    """The long holds, one after the other on a second stack, in the background."""

    def __init__(self, workdir: Path, wanted: set[str]) -> None:
        self._workdir = workdir
        loop = asyncio.get_running_loop()
        self._results: dict[str, asyncio.Future[None]] = {n: loop.create_future() for n in wanted}
        self._task = asyncio.create_task(self._run(), name="long-holds")

    async def result(self, name: str) -> None:
        await asyncio.shield(self._results[name])

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        cases: dict[str, Callable[[FaultStack, list[StreamingRoom]], Awaitable[None]]] = {
            API_SERVER_LONG: lambda stack, rooms: api_server_down(stack, rooms, 120),
            EVERYTHING_DOWN: lambda stack, rooms: everything_down(stack, rooms, 300),
        }
        second = FaultStack(self._workdir, pod_addresses=SECOND_POD_ADDRESSES)
        rooms: list[StreamingRoom] = []
        try:
            await off_loop(second.start)
            rooms = await open_calls(second)
            for name, case in cases.items():
                if name in self._results:
                    await reopen_broken(second, rooms)
                    try:
                        self._results[name].set_result(await case(second, rooms))
                    except Exception as error:
                        self._results[name].set_exception(error)
        except Exception as error:
            for future in self._results.values():
                if not future.done():
                    future.set_exception(error)
        finally:
            for room in rooms:
                with contextlib.suppress(Exception):
                    await room.close()
            await off_loop(second.stop)


@pytest_asyncio.fixture(scope="module", loop_scope="module", autouse=True)
async def long_holds(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[LongHolds | None]:
    """Started with the module when a long-hold case is selected, so that it runs while
    the other cases do."""
    selected = " ".join(item.name for item in request.session.items)
    wanted = {
        name
        for name, test in (
            (API_SERVER_LONG, "test_api_server_down_for_two_minutes"),
            (EVERYTHING_DOWN, "test_everything_down_for_five_minutes"),
        )
        if test in selected
    }
    if not wanted:
        yield None
        return
    holds = LongHolds(Path(tmp_path_factory.mktemp("fault-stack-long")), wanted)
    try:
        yield holds
    finally:
        await holds.stop()


@pytest.mark.parametrize("seconds", [5, 30])
async def test_api_server_killed_and_restarted(stack, rooms, seconds) -> None:
    await api_server_down(stack, rooms, seconds)


async def test_api_server_frozen(stack, rooms) -> None:
    observation = Observation(stack, rooms, healthy_pods=set(stack.sfu_ips))
    apiserver = stack.plane.component("kube-apiserver")
    apiserver.freeze()
    try:
        await hold(30, observation)
    finally:
        apiserver.thaw()
    await settle(observation, "apiserver-frozen-30s")


async def test_etcd_killed_and_restarted(stack, rooms) -> None:
    observation = Observation(stack, rooms, healthy_pods=set(stack.sfu_ips))
    await off_loop(lambda: stack.plane.kill("etcd"))
    try:
        await hold(30, observation)
    finally:
        await off_loop(lambda: stack.plane.revive("etcd"))
    await settle(observation, "etcd-down-30s")


async def test_every_operator_replica_killed(stack, rooms) -> None:
    observation = Observation(stack, rooms, healthy_pods=set(stack.sfu_ips))
    for replica in stack.replicas:
        replica.kill(restart=False)
    try:
        await hold(60, observation)
    finally:
        for replica in stack.replicas:
            await off_loop(lambda replica=replica: replica.start(wait=False))
    await settle(observation, "operators-down-60s")


async def test_leader_frozen(stack, rooms) -> None:
    observation = Observation(stack, rooms, healthy_pods=set(stack.sfu_ips))
    leader = await off_loop(stack.leader)
    assert leader is not None and leader.process is not None
    restarts = leader.restarts
    leader.process.freeze()
    try:
        await hold(20, observation)
    finally:
        leader.process.thaw()
    # Thawed, it finds its acting window long closed and steps down (to stand by again).

    async def stepped_down() -> bool:
        return leader.restarts > restarts

    await eventually(stepped_down, SETTLE_SECONDS, "the thawed leader to step down")
    await settle(observation, "leader-frozen-20s")


async def test_leader_cut_off_from_the_api_server(stack, rooms) -> None:
    observation = Observation(stack, rooms, healthy_pods=set(stack.sfu_ips))
    leader = await off_loop(stack.leader)
    assert leader is not None
    proxy = stack.api_proxies[stack.replicas.index(leader)]
    restarts = leader.restarts
    proxy.set_mode(ProxyMode.BLACKHOLE)
    try:
        await hold(20, observation)
        # It stepped down (and exited to stand by) instead of hanging on its renewal.
        assert leader.restarts > restarts, "the cut-off leader never stepped down"
    finally:
        proxy.set_mode(ProxyMode.PASS)
    await settle(observation, "leader-cut-from-apiserver-20s")


async def report_path_cut(
    stack: FaultStack,
    rooms: list[StreamingRoom],
    cut: list[str],
    mode: ProxyMode,
    *,
    heal_once_fenced: bool = False,
) -> float:
    """Cut the report path of the pods in `cut`; returns when their rooms had all moved.
    With `heal_once_fenced`, the path heals once every cut pod has fenced (silence alone
    moves no room when more than one pod is silent: their fenced reports do)."""
    assert stack.service is not None
    observation = Observation(stack, rooms, healthy_pods=set(stack.sfu_ips) - set(cut))
    placed_before = await off_loop(stack.room_pods)
    moving = {room for room, pod in placed_before.items() if pod in cut}
    started = time.monotonic()
    for pod in cut:
        stack.service.set_mode(mode, source=stack.sfu_ips[pod])

    async def moved() -> bool:
        placed = await off_loop(stack.room_pods)
        return all(placed.get(room) not in (*cut, "") for room in moving)

    async def fenced() -> bool:
        fences = [await off_loop(lambda p=pod: stack.sfu_metric(p, FENCED)) for pod in cut]
        return all(value == 1 for value in fences)

    try:
        if heal_once_fenced:
            await eventually(fenced, SETTLE_SECONDS, f"{cut} to fence", interval=0.25)
            placed = await off_loop(stack.room_pods)
            assert all(placed.get(room) == placed_before[room] for room in moving), (
                "rooms moved on the silence of two pods"
            )
            for pod in cut:
                stack.service.set_mode(ProxyMode.PASS, source=stack.sfu_ips[pod])
        await eventually(moved, SETTLE_SECONDS, f"the rooms of {cut} to move", interval=0.25)
        moved_after = time.monotonic() - started
    finally:
        for pod in cut:
            stack.service.set_mode(ProxyMode.PASS, source=stack.sfu_ips[pod])
    await settle(observation, f"report-path-{mode}-{len(cut)}-pods")
    print(f"fault rooms_moved_after={moved_after:.1f}s rooms={len(moving)}")
    return moved_after


async def test_one_sfu_report_path_black_holed(stack, rooms) -> None:
    moved_after = await report_path_cut(stack, rooms, [rooms[0].pod], ProxyMode.BLACKHOLE)
    assert moved_after < REPORT_PATH_BOUND_SECONDS


async def test_two_sfu_report_paths_black_holed(stack, rooms) -> None:
    await report_path_cut(
        stack,
        rooms,
        sorted({room.pod for room in rooms})[:2],
        ProxyMode.BLACKHOLE,
        heal_once_fenced=True,
    )


async def test_report_responses_dropped(stack, rooms) -> None:
    await report_path_cut(stack, rooms, [rooms[0].pod], ProxyMode.DROP_RESPONSES)


async def test_both_cores_saturated_for_a_minute(stack, rooms, tmp_path) -> None:
    observation = Observation(stack, rooms, healthy_pods=set(stack.sfu_ips))
    leader = await off_loop(stack.leader)
    with CpuHog(tmp_path, cores=2):
        await hold(60, observation)
    assert await off_loop(stack.leader) is leader, "leadership changed under load"
    for pod in stack.sfu_ips:
        assert await off_loop(lambda pod=pod: stack.sfu_metric(pod, FENCED)) == 0
    await settle(observation, "cpu-hog-60s")


async def test_rolling_update_with_old_and_new_sfu_versions_mixed(stack, rooms) -> None:
    """The Region's pods roll to the previous contract version (no leases) and back, one
    at a time, old and new pods side by side: only the retired pods' calls are moved (told
    `draining`, never `fenced` or `room-moved`), and no room is on two pods at any instant.
    With every pod old, one's report path is cut: it fences on the failover timeout, and
    its rooms move only after that and the margin."""
    current = await off_loop(lambda: sfu_image(live_sfu_pods(stack)[0]))
    for image, label in ((PREVIOUS_SFU_IMAGE, "old"), (current, "new")):
        roll = Roll(stack, rooms, image)
        seconds = await roll.run()
        assert roll.mixed, f"old and new pods never ran side by side rolling to {image}"
        for ip in stack.sfu_ips.values():
            assert await answers_lease_checks(ip) == (label == "new"), f"{ip} runs {label}"
        await settle(Observation(stack, rooms, healthy_pods=set(stack.sfu_ips)), f"roll-{label}")
        print(f"fault roll_to={label} seconds={seconds:.1f} calls_moved={roll.rejoined}")
        if label == "old":
            # Pods without leases fence on the failover timeout, and their silence moves
            # their rooms only after it and the margin (C6): still one pod per room.
            await report_path_cut(stack, rooms, [rooms[0].pod], ProxyMode.BLACKHOLE)
            await reopen_broken(stack, rooms)


async def test_api_server_down_for_two_minutes(long_holds: LongHolds) -> None:
    """On the second stack, in the background since the module started."""
    await long_holds.result(API_SERVER_LONG)


async def test_everything_down_for_five_minutes(long_holds: LongHolds) -> None:
    """The API server, etcd and every operator replica; on the second stack."""
    await long_holds.result(EVERYTHING_DOWN)
