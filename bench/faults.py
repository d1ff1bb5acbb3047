"""Control-plane faults against live calls: for each scenario of the fault suite, on its own
local stack (control plane, node agent with three SFU pods, two operator replicas, N rooms
each with an aiortc publisher and subscriber streaming), print how long recovery took, how
many rooms were cut, and how long the join API was unavailable.

A room is *cut* when one of its participants was told to migrate or lost its connection, or
its subscriber went `--stall` seconds without a frame. A room *on two pods at once* is one
that two SFU pods held at the same instant, from the pods' own logs. Recovery is from the
end of the fault until the join API placed a new room. Join API unavailability sums the
intervals in which joins, tried every half second from the start of the fault, failed.
The rolling update is not a fault but a change: every pod is replaced, and each retired
pod's calls are told to migrate (`draining`) and join again; those are counted apart, as
rooms moved by drain, and a call that joined again is watched from its own first frame;
its recovery time includes the roll back.
The suite's node agent case is not here: it needs pods that outlive the agent (container
images under podman), not this stack's process pods.

Run inside the loopback-only network namespace, as the tests do:
    PATH=$PWD/.venv/bin:$PATH tools/in-netns.sh .venv/bin/python bench/faults.py \
        [--rooms 3] [--scenarios apiserver-5s,leader-frozen-20s] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the suite's stack

from fixtures.fault_stack import (
    PREVIOUS_SFU_IMAGE,
    FaultStack,
    StreamingRoom,
    off_loop,
    overlaps,
    reopen_broken,
)
from fixtures.rolling import Roll, live_sfu_pods, sfu_image
from switchboard_dev.faults import CpuHog, ProxyMode

JOIN_PROBE_SECONDS = 0.5


@dataclass(frozen=True)
class Scenario:
    name: str
    seconds: float
    start: Callable[[FaultStack, list[StreamingRoom]], Awaitable[list[str]]]
    """Begins the fault; returns the SFU pods it partitions (their rooms may move)."""
    end: Callable[[FaultStack, list[StreamingRoom]], Awaitable[None]]


def _kill(*components: str, operators: bool = False) -> Callable[..., Awaitable[list[str]]]:
    async def start(stack: FaultStack, _: list[StreamingRoom]) -> list[str]:
        if operators:
            for replica in stack.replicas:
                replica.kill(restart=False)
        for name in components:
            await off_loop(lambda name=name: stack.plane.kill(name))
        return []

    return start


def _revive(*components: str, operators: bool = False) -> Callable[..., Awaitable[None]]:
    async def end(stack: FaultStack, _: list[StreamingRoom]) -> None:
        for name in components:
            await off_loop(lambda name=name: stack.plane.revive(name))
        if operators:
            for replica in stack.replicas:
                await off_loop(lambda replica=replica: replica.start(wait=False))

    return end


_frozen: dict[str, object] = {}


async def _freeze_apiserver(stack: FaultStack, _: list[StreamingRoom]) -> list[str]:
    stack.plane.component("kube-apiserver").freeze()
    return []


async def _thaw_apiserver(stack: FaultStack, _: list[StreamingRoom]) -> None:
    stack.plane.component("kube-apiserver").thaw()


async def _freeze_leader(stack: FaultStack, _: list[StreamingRoom]) -> list[str]:
    leader = await off_loop(stack.leader)
    assert leader is not None and leader.process is not None
    leader.process.freeze()
    _frozen["leader"] = leader.process
    return []


async def _thaw_leader(*_: object) -> None:
    process = _frozen.pop("leader")
    process.thaw()  # type: ignore[attr-defined]


async def _cut_leader(stack: FaultStack, _: list[StreamingRoom]) -> list[str]:
    leader = await off_loop(stack.leader)
    assert leader is not None
    proxy = stack.api_proxies[stack.replicas.index(leader)]
    proxy.set_mode(ProxyMode.BLACKHOLE)
    _frozen["proxy"] = proxy
    return []


async def _heal_leader(*_: object) -> None:
    _frozen.pop("proxy").set_mode(ProxyMode.PASS)  # type: ignore[attr-defined]


def _cut_reports(count: int, mode: ProxyMode) -> Callable[..., Awaitable[list[str]]]:
    async def start(stack: FaultStack, rooms: list[StreamingRoom]) -> list[str]:
        assert stack.service is not None
        pods = sorted({room.pod for room in rooms})[:count]
        for pod in pods:
            stack.service.set_mode(mode, source=stack.sfu_ips[pod])
        return pods

    return start


async def _heal_reports(stack: FaultStack, _: list[StreamingRoom]) -> None:
    assert stack.service is not None
    for ip in list(stack.service.source_modes):
        stack.service.set_mode(ProxyMode.PASS, source=ip)


_hog: list[CpuHog] = []


async def _start_hog(stack: FaultStack, _: list[StreamingRoom]) -> list[str]:
    hog = CpuHog(stack.workdir, cores=2)
    hog.__enter__()
    _hog.append(hog)
    return []


async def _stop_hog(*_: object) -> None:
    _hog.pop().__exit__()


_rolled_from: list[str] = []


async def _roll_to_previous(stack: FaultStack, rooms: list[StreamingRoom]) -> list[str]:
    """Every SFU pod rolled to the previous contract version, one at a time, old and new side
    by side; a retired pod's calls follow `draining` and join again (re-opened in `rooms`)."""
    _rolled_from.append(await off_loop(lambda: sfu_image(live_sfu_pods(stack)[0])))
    await Roll(stack, rooms, PREVIOUS_SFU_IMAGE).run()
    return []


async def _roll_back(stack: FaultStack, rooms: list[StreamingRoom]) -> None:
    await Roll(stack, rooms, _rolled_from.pop()).run()


SCENARIOS = [
    Scenario("apiserver-5s", 5, _kill("kube-apiserver"), _revive("kube-apiserver")),
    Scenario("apiserver-30s", 30, _kill("kube-apiserver"), _revive("kube-apiserver")),
    Scenario("apiserver-120s", 120, _kill("kube-apiserver"), _revive("kube-apiserver")),
    Scenario("apiserver-frozen-30s", 30, _freeze_apiserver, _thaw_apiserver),
    Scenario("etcd-30s", 30, _kill("etcd"), _revive("etcd")),
    Scenario("operators-60s", 60, _kill(operators=True), _revive(operators=True)),
    Scenario(
        "everything-300s",
        300,
        _kill("kube-apiserver", "etcd", operators=True),
        _revive("etcd", "kube-apiserver", operators=True),
    ),
    Scenario("leader-frozen-20s", 20, _freeze_leader, _thaw_leader),
    Scenario("leader-cut-from-apiserver-20s", 20, _cut_leader, _heal_leader),
    Scenario("one-report-path-cut", 20, _cut_reports(1, ProxyMode.BLACKHOLE), _heal_reports),
    Scenario("two-report-paths-cut", 20, _cut_reports(2, ProxyMode.BLACKHOLE), _heal_reports),
    Scenario("responses-dropped", 20, _cut_reports(1, ProxyMode.DROP_RESPONSES), _heal_reports),
    Scenario("cpu-hog-60s", 60, _start_hog, _stop_hog),
    Scenario("rolling-update-mixed-versions", 0, _roll_to_previous, _roll_back),
]


@dataclass
class Outcome:
    scenario: str
    recovery_seconds: float | None
    rooms_cut: int
    partitioned_rooms: int
    rejoined: int
    """Rooms whose calls were told to migrate (`draining`, by a roll) and joined again."""
    join_unavailable_seconds: float
    splits: int
    """Rooms that were on two SFU pods at one instant during the scenario (pods' own logs)."""


class JoinProbe:
    """Tries a join every half second; sums the time joins failed."""

    def __init__(self, stack: FaultStack, scenario: str) -> None:
        self._stack = stack
        self._scenario = scenario
        self.unavailable = 0.0
        self.last_success: float | None = None

    async def run(self, until: asyncio.Event) -> None:
        attempt = 0
        while not until.is_set():
            started = time.monotonic()
            attempt += 1
            try:
                await self._stack.join(f"probe-{self._scenario}", f"probe-{attempt}", timeout=5)
                self.last_success = time.monotonic()
            except Exception:  # any failure is unavailability
                self.unavailable += max(JOIN_PROBE_SECONDS, time.monotonic() - started)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    until.wait(), max(0.0, JOIN_PROBE_SECONDS - (time.monotonic() - started))
                )


async def run_scenario(
    stack: FaultStack, rooms: list[StreamingRoom], scenario: Scenario, stall: float
) -> Outcome:
    stop_probe = asyncio.Event()
    probe = JoinProbe(stack, scenario.name)
    probing = asyncio.ensure_future(probe.run(stop_probe))
    stalled: set[int] = set()
    opened = {room.name: id(room) for room in rooms}
    # By call (a room's current publisher and subscriber): a call that followed `migrate`
    # and joined again is a new call, watched from its own first frame.
    frames = {id(room): (room.frames(), time.monotonic()) for room in rooms}

    def watch() -> None:
        now = time.monotonic()
        for room in rooms:
            count, since = frames.setdefault(id(room), (room.frames(), now))
            if room.frames() > count:
                frames[id(room)] = (room.frames(), now)
            elif now - since > stall:
                stalled.add(id(room))

    split_before = set(await off_loop(lambda: overlaps(stack)))
    partitioned = await scenario.start(stack, rooms)
    until = time.monotonic() + scenario.seconds
    while time.monotonic() < until:
        watch()
        await asyncio.sleep(0.25)
    ended = time.monotonic()
    await scenario.end(stack, rooms)
    recovery = None
    while time.monotonic() - ended < 180:
        watch()
        if probe.last_success is not None and probe.last_success > ended:
            recovery = probe.last_success - ended
            break
        await asyncio.sleep(0.25)
    # A few more seconds of media after recovery count too.
    settle_until = time.monotonic() + 5
    while time.monotonic() < settle_until:
        watch()
        await asyncio.sleep(0.25)
    stop_probe.set()
    await probing
    cut = {room.name for room in rooms if id(room) in stalled or not room.intact}
    moved = {room.name for room in rooms if room.pod in partitioned}
    rejoined = sum(opened[room.name] != id(room) for room in rooms)
    await reopen_broken(stack, rooms)
    splits = set(await off_loop(lambda: overlaps(stack))) - split_before
    return Outcome(
        scenario.name,
        recovery,
        len(cut - moved),
        len(cut & moved),
        rejoined,
        probe.unavailable,
        len(splits),
    )


async def main_async(args: argparse.Namespace) -> None:
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="switchboard-faults-"))
    chosen = [s for s in SCENARIOS if not args.scenarios or s.name in args.scenarios]
    stack = await off_loop(lambda: FaultStack(workdir).start())
    rooms: list[StreamingRoom] = []
    outcomes = []
    try:
        for index in range(args.rooms):
            rooms.append(await StreamingRoom.open(stack, f"bench-{index}"))
        for scenario in chosen:
            print(f"running {scenario.name} ({scenario.seconds:g} s)...", flush=True)
            outcomes.append(await run_scenario(stack, rooms, scenario, args.stall))
    finally:
        for room in rooms:
            await room.close()
        await off_loop(stack.stop)
    print(f"\n{args.rooms} rooms of live media, logs in {workdir}\n")
    print(
        "| scenario | recovery (s) | rooms cut | partitioned rooms cut | rooms moved by drain "
        "| join API unavailable (s) | rooms on two pods at once |"
    )
    print("|---|---|---|---|---|---|---|")
    for o in outcomes:
        recovery = "no recovery" if o.recovery_seconds is None else f"{o.recovery_seconds:.1f}"
        print(
            f"| {o.scenario} | {recovery} | {o.rooms_cut} | {o.partitioned_rooms} | {o.rejoined} "
            f"| {o.join_unavailable_seconds:.1f} | {o.splits} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rooms", type=int, default=3)
    parser.add_argument(
        "--scenarios",
        type=lambda text: set(text.split(",")),
        default=None,
        help="comma-separated names; all by default: " + ",".join(s.name for s in SCENARIOS),
    )
    parser.add_argument("--stall", type=float, default=3.0, help="seconds without frames = cut")
    parser.add_argument("--workdir")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
