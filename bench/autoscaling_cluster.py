"""The autoscaling benchmark's cluster run: a compressed trace played on its own local
stack, measured from the Room and SFU pod watches, printed beside the simulated policies.

Rooms' reservations are the demand: each trace room is a Room object (a 1:1 video call,
1.3 units) created at its arrival and deleted at its end, with no participants. The SFU
pods are real (node agent) and report their load; the reports only guard scale-down.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from autoscaling_bounds import print_bounds
from autoscaling_sim import (
    HPA_SYNC,
    HPA_WINDOW,
    RESERVATION,
    TARGET,
    Result,
    Shape,
    end_of,
    oracle_pod_seconds,
    simulate,
    trace,
)
from autoscaling_table import print_breakdown, print_table
from kubernetes_asyncio import client, config
from placement_e2e import (
    ROOMS_NS,
    TOPOLOGY_REGION,
    WATCHERS,
    ZONES,
    PodWatch,
    RoomWatch,
    prepare,
    room_body,
    wait_for,
)

from switchboard_api import labels
from switchboard_api.region import PlacementPolicy
from switchboard_api.resources import GROUP, ROOM, VERSION
from switchboard_dev.images import RUNTIME_ENV
from switchboard_dev.stack import LocalStack

CAPACITY_PER_POD = 10.0
"""Four calls per pod at the 60 % target, six below the 80 % admission limit."""
MIN_PODS, MAX_PODS = 1, 8
TAIL_MARGIN_SECONDS = 30
"""After the last room ends: the stabilisation window, then this, for the Region to shrink."""
READY_TIMEOUT = 300.0


@dataclass
class PodLife:
    seen: float
    ready: float | None = None
    gone: float | None = None
    cordoned: bool = False
    ended: bool = False


@dataclass
class Crossings:
    """Demand crossing the target share of the serving pods' capacity, and what followed:
    the next SFU pod created (decision time) and that pod Ready (time to capacity)."""

    capacity: float
    crossed_at: float | None = None
    decisions: list[float] = field(default_factory=list)
    to_capacity: list[float] = field(default_factory=list)
    waiting_for: dict[str, float] = field(default_factory=dict)
    """New pod -> the crossing it answered, until it is Ready."""

    def update(self, now: float, demand: float, serving: int) -> None:
        limit = self.capacity * TARGET * serving
        if self.crossed_at is None and demand > limit + 1e-9:
            self.crossed_at = now
        elif demand <= limit + 1e-9:
            self.crossed_at = None

    def created(self, pod: str, now: float) -> None:
        if self.crossed_at is not None:
            self.decisions.append(now - self.crossed_at)
            self.waiting_for[pod] = self.crossed_at
            self.crossed_at = None

    def ready(self, pod: str, now: float) -> None:
        crossed = self.waiting_for.pop(pod, None)
        if crossed is not None:
            self.to_capacity.append(now - crossed)


class ScalingWatch(PodWatch):
    """The bench Region's SFU pods through their lives, feeding the crossings."""

    def __init__(self, api: client.ApiClient, crossings: Crossings) -> None:
        super().__init__(api)
        self.crossings = crossings
        self.lives: dict[str, PodLife] = {}
        self.started: float | None = None
        """When the trace began: pods seen before are the Region's first, not decisions."""
        self.demand = 0.0

    def _seen(self, kind: str, pod: dict[str, Any], now: float) -> None:
        super()._seen(kind, pod, now)
        meta = pod["metadata"]
        name = meta["name"]
        life = self.lives.get(name)
        if life is None:
            life = self.lives[name] = PodLife(seen=now)
            if self.started is not None:
                self.crossings.created(name, now)
        ready = any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in (pod.get("status") or {}).get("conditions") or []
        )
        if ready and life.ready is None:
            life.ready = now
            self.crossings.ready(name, now)
        life.cordoned = bool((meta.get("annotations") or {}).get(labels.CORDONED))
        life.ended = (pod.get("status") or {}).get("phase") in ("Failed", "Succeeded")
        if (kind == "DELETED" or meta.get("deletionTimestamp")) and life.gone is None:
            life.gone = now
        self.check(now)

    def serving(self) -> int:
        return sum(
            not (life.cordoned or life.ended or life.gone is not None)
            for life in self.lives.values()
        )

    def check(self, now: float) -> None:
        self.crossings.update(now, self.demand, self.serving())


@dataclass
class Played:
    sent: dict[str, float] = field(default_factory=dict)
    deleted: dict[str, float] = field(default_factory=dict)


async def play(
    api: client.ApiClient, rooms: list[tuple[int, int]], start: float, pods: ScalingWatch
) -> Played:
    """Create and delete the trace's Rooms on time (monotonic `start` is second 0)."""
    objects = client.CustomObjectsApi(api)
    played = Played()
    steps = sorted(
        [(at, 1, f"r{i:04}") for i, (at, _) in enumerate(rooms)]
        + [(at + duration, 0, f"r{i:04}") for i, (at, duration) in enumerate(rooms)]
    )
    tasks = []
    for at, create, name in steps:
        delay = start + at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        now = time.monotonic()
        if create:
            played.sent[name] = now
            pods.demand += RESERVATION
            call = objects.create_namespaced_custom_object(
                GROUP, VERSION, ROOMS_NS, ROOM.plural, room_body(name)
            )
        else:
            played.deleted[name] = now
            pods.demand -= RESERVATION
            call = objects.delete_namespaced_custom_object(
                GROUP, VERSION, ROOMS_NS, ROOM.plural, name
            )
        pods.check(now)
        tasks.append(asyncio.create_task(call))
    await asyncio.gather(*tasks)
    return played


def measured(
    played: Played, room_watch: RoomWatch, pods: ScalingWatch, start: float, end: float
) -> Result:
    result = Result("built-in (cluster)")
    result.decision_times = pods.crossings.decisions
    result.capacity_times = pods.crossings.to_capacity
    for name, sent in played.sent.items():
        until = room_watch.first_scheduled(name) or played.deleted.get(name, end)
        result.waiting_room_seconds += max(0.0, min(until, played.deleted.get(name, end)) - sent)
        track = room_watch.rooms.get(name)
        on = {pod for _, pod in track.scheduled} if track else set()
        # Cut: moved to another pod, or its pod went away while the room was alive.
        lost = any(
            (life := pods.lives.get(pod)) is not None
            and life.gone is not None
            and life.gone < played.deleted.get(name, end)
            for pod in on
        )
        result.cut += len(on) > 1 or lost
    for life in pods.lives.values():
        result.pod_seconds += max(0.0, min(life.gone or end, end) - max(life.seen, start))
    result.creates = sum(life.seen >= start for life in pods.lives.values())
    result.deletes = sum(life.gone is not None for life in pods.lives.values())
    return result


def region_sfu(args: argparse.Namespace, window: int) -> dict[str, Any]:
    return {
        "minReplicas": MIN_PODS,
        "maxReplicas": MAX_PODS,
        "capacityPerPod": CAPACITY_PER_POD,
        "placementPolicy": args.placement,
        "autoscaling": {"scaleDownStabilizationSeconds": window},
    }


async def measure(
    stack: LocalStack, rooms: list[tuple[int, int]], shape: Shape
) -> tuple[Result, float | None]:
    await config.load_kube_config(config_file=str(stack.plane.kubeconfig))
    async with client.ApiClient() as api:
        room_watch = RoomWatch(api)
        pods = ScalingWatch(api, Crossings(shape.capacity))
        WATCHERS[:] = [asyncio.create_task(room_watch.run()), asyncio.create_task(pods.run())]
        try:
            await wait_for(lambda: len(pods.ready()) == MIN_PODS, READY_TIMEOUT, "the SFU pod")
            start = time.monotonic()
            pods.started = start
            end = start + end_of(rooms, shape)
            played = await play(api, rooms, start, pods)
            await asyncio.sleep(max(0.0, end - time.monotonic()))
        finally:
            for task in WATCHERS:
                task.cancel()
            await asyncio.gather(*WATCHERS, return_exceptions=True)
    startups = [
        life.ready - life.seen
        for life in pods.lives.values()
        if life.ready is not None and life.seen >= start
    ]
    startup = statistics.median(startups) if startups else None
    return measured(played, room_watch, pods, start, end), startup


def run(args: argparse.Namespace) -> None:
    window = args.window or max(1, round(HPA_WINDOW / args.compress))
    rooms = trace(args.seed, args.compress, args.load)
    shape = Shape(CAPACITY_PER_POD, MIN_PODS, MAX_PODS, tail=window + TAIL_MARGIN_SECONDS)
    end = end_of(rooms, shape)
    oracle = oracle_pod_seconds(rooms, end, shape)
    print(
        f"trace: {len(rooms)} Rooms (1:1 calls, {RESERVATION} units reserved each, no "
        f"participants) over {end / 60:.1f} min: ramp, plateau, spike, ramp down, "
        f"{args.compress:g}x compressed; {args.placement} placement, pods of "
        f"{CAPACITY_PER_POD:g} units, {MIN_PODS}-{MAX_PODS} pods; "
        f"oracle {oracle / 60:.1f} pod-minutes"
    )
    print(
        f"scale-down stabilisation shortened to {window} s (default 300 s) on the bench "
        f"Region and for the simulated HPA; HPA sync {HPA_SYNC} s and metrics "
        f"{args.metrics_lag} s old as in a real cluster"
    )
    # The operator and the SFU pods as local processes, as placement_e2e.py runs them.
    os.environ[RUNTIME_ENV] = "process"
    started = time.monotonic()
    with LocalStack(args.workdir) as stack:
        stack.start_node_agent({TOPOLOGY_REGION: ZONES})
        stack.install_switchboard()
        prepare(stack, MIN_PODS, sfu=region_sfu(args, window))
        cluster, startup = asyncio.run(measure(stack, rooms, shape))
    sim_startup = round(startup) if startup is not None else args.startup
    results = simulate(
        rooms,
        startup=sim_startup,
        window=window,
        metrics_lag=args.metrics_lag,
        placement=PlacementPolicy(args.placement),
        shape=shape,
        hpa_window=window,
    )
    for result in results:
        result.name += " (sim)"
    measured_startup = f"{startup:.1f} s" if startup is not None else "none created"
    print(
        f"\nSFU pod start-up on the cluster (created -> Ready, median): {measured_startup}; "
        f"the simulations use {sim_startup} s"
    )
    print_table([cluster, *results], oracle)
    print()
    print_breakdown(results, oracle)
    print_bounds(rooms, oracle, shape)
    print(f"\nbenchmark run took {time.monotonic() - started:.0f}s")
