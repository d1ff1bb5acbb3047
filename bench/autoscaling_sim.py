"""The autoscaling benchmark's trace and its simulated policies (ramp up, plateau, spike,
ramp down), second by second.

The built-in autoscaler runs its real decision (`logic/autoscaling.decide`) and its real
victim choice (`logic/sfu_pod_plan.plan_sfu_pods`: cordon the emptiest, delete once
empty) on rooms arriving and ending, placed on pods up to their high-water mark; new pods
take `startup` seconds to come up. The two baselines:

- HPA-style: CPU target (the rooms' measured load, `metrics_lag` seconds old, against
  the share of capacity rooms at the reservation target measure), the 10 % tolerance, a 15 s
  sync, 300 s scale-down stabilisation, and an arbitrary victim: the rooms on a deleted
  pod are cut;
- the LiveKit-chart pattern: the same HPA, but a deleted pod terminates only once its
  rooms have ended (a 5-hour grace), so nothing is cut and the terminating pods are paid.

Per policy: decision time (demand crossing the target -> pod create), time to new
capacity accepting rooms (crossing -> that pod up), room-seconds waiting, pod-seconds,
rooms cut; and the oracle's pod-seconds (the fewest pods at the target, second by second).
Where each policy's pod-seconds go, second by second (`Result.spent`): pods the oracle
would run too, pods beyond them that the policy's own sizing asks for now (its buffer, its
view of demand), pods beyond that kept by the scale-down stabilisation, pods starting, and
pods on their way out (cordoned or terminating) that wait for their last rooms to end.
`bench/autoscaling.py` runs them (alone with `--simulate`, or beside a cluster run).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from switchboard_api.region import PlacementPolicy
from switchboard_operator.logic.autoscaling import ScalingMemory, ScalingSpec, decide, recommend
from switchboard_operator.logic.sfu_pod_plan import SfuPodView, plan_sfu_pods

CAPACITY = 100.0
HIGH_WATER_MARK = 0.8
TARGET = 0.6
RESERVATION = 1.3
"""A 1:1 video call."""
MEASURED_SHARE = 0.7
"""What a call measures against what it reserves (not every participant sends video)."""
MIN_PODS, MAX_PODS = 1, 40
TAIL_SECONDS = 600
"""The simulation runs on this long after the last room has ended (pods shrink back)."""
HPA_SYNC, HPA_WINDOW, LIVEKIT_GRACE = 15, 300, 5 * 3600
HPA_TARGET = TARGET * MEASURED_SHARE
"""The CPU target an HPA user would pick for the same point: what rooms at the
reservation target measure (a CPU target of 60 % would never fire before pods refuse
rooms at their 80 % admission limit)."""


@dataclass(frozen=True)
class Shape:
    """The Region the policies scale: its pods' capacity and its bounds."""

    capacity: float = CAPACITY
    min_pods: int = MIN_PODS
    max_pods: int = MAX_PODS
    tail: int = TAIL_SECONDS


def trace(seed: int, compress: float = 1.0, load: float = 1.0) -> list[tuple[int, int]]:
    """(arrival second, duration seconds) of every room: ramp up, plateau, spike, down.

    `compress` divides every length (phases, calls) and multiplies the rates by as much,
    so the same shape plays faster; `load` scales the number of rooms alive at once."""
    rng = random.Random(seed)
    phases = [(1800, 0.0, 0.6), (1800, 0.6, 0.6), (300, 2.0, 2.0), (1500, 0.6, 0.6)]
    phases += [(1800, 0.6, 0.0), (1200, 0.0, 0.0)]
    rooms, start = [], 0
    for full_length, first, last in phases:
        length = round(full_length / compress)
        for second in range(length):
            rate = (first + (last - first) * second / length) * compress * load
            for _ in range(_poisson(rng, rate)):
                duration = max(1, int((rng.expovariate(1 / 900) + 60) / compress))
                rooms.append((start + second, duration))
        start += length
    return rooms


def _poisson(rng: random.Random, rate: float) -> int:
    count, limit, product = 0, math.exp(-rate), rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


@dataclass
class Pod:
    name: str
    created: int
    ready_at: int
    rooms: dict[int, int] = field(default_factory=dict)
    """room -> end second"""
    cordoned: bool = False
    leaving_at: int | None = None
    """Set when deleted with a grace: terminating, takes no rooms."""

    @property
    def used(self) -> float:
        return RESERVATION * len(self.rooms)


SPENT = ("oracle's", "sizing", "stabilisation", "starting", "held by rooms")
"""Where pod-seconds go (`Sim._account`), in the order the breakdown prints them."""


@dataclass
class Result:
    name: str
    spent: dict[str, float] = field(default_factory=lambda: dict.fromkeys(SPENT, 0.0))
    held_after_arrivals: float = 0.0
    """The "held by rooms" pod-seconds after the trace's last arrival: pods kept only for
    the longest rooms, when the oracle needs minReplicas."""
    decision_times: list[float] = field(default_factory=list)
    capacity_times: list[float] = field(default_factory=list)
    waiting_room_seconds: float = 0.0
    pod_seconds: float = 0.0
    cut: int = 0
    creates: int = 0
    deletes: int = 0


Policy = Callable[["Sim", int], None]


class Sim:
    def __init__(
        self,
        rooms: list[tuple[int, int]],
        startup: int,
        name: str,
        placement: PlacementPolicy = PlacementPolicy.LEAST_LOADED,
        shape: Shape = Shape(),
    ) -> None:
        self.placement = placement
        self.shape = shape
        self.arrivals: dict[int, list[tuple[int, int]]] = {}
        for index, (at, duration) in enumerate(rooms):
            self.arrivals.setdefault(at, []).append((index, duration))
        self.end = end_of(rooms, shape)
        self.last_arrival = max(at for at, _ in rooms)
        self.startup = startup
        self.pods: list[Pod] = []
        self.waiting: dict[int, int] = {}  # room -> duration
        self.result = Result(name)
        self._counter = 0
        self._crossed_at: float | None = None
        self.history: list[float] = []  # measured load per second
        self.recommended = shape.min_pods
        """Serving pods the policy's sizing asks for now, before its stabilisation."""
        for _ in range(shape.min_pods):
            self.create(0, ready_now=True)

    def create(self, now: int, ready_now: bool = False) -> None:
        self._counter += 1
        ready = now if ready_now else now + self.startup
        self.pods.append(Pod(f"p{self._counter:03}", now, ready))
        if not ready_now:
            self.result.creates += 1
            if self._crossed_at is not None:
                self.result.decision_times.append(now - self._crossed_at)
                self.result.capacity_times.append(ready - self._crossed_at)
                self._crossed_at = None

    def serving(self) -> list[Pod]:
        return [p for p in self.pods if not p.cordoned and p.leaving_at is None]

    def demand(self) -> float:
        placed = sum(p.used for p in self.pods)
        return placed + RESERVATION * len(self.waiting)

    def step(self, now: int, policy: Policy) -> None:
        for pod in self.pods:
            for room in [r for r, end in pod.rooms.items() if end <= now]:
                del pod.rooms[room]
        for pod in [p for p in self.pods if p.leaving_at is not None]:
            if not pod.rooms or now >= pod.leaving_at:
                self.result.cut += len(pod.rooms)
                self.pods.remove(pod)
        for index, duration in self.arrivals.get(now, []):
            self.waiting[index] = duration
        # Threshold crossing: demand above the target share of the serving pods' capacity.
        capacity = self.shape.capacity * TARGET * len(self.serving())
        if self._crossed_at is None and self.demand() > capacity + 1e-9:
            self._crossed_at = now
        elif self.demand() <= capacity:
            self._crossed_at = None
        policy(self, now)
        self._place(now)
        self.history.append(sum(len(p.rooms) for p in self.pods) * RESERVATION * MEASURED_SHARE)
        self.result.waiting_room_seconds += len(self.waiting)
        self.result.pod_seconds += len(self.pods)
        self._account(now)

    def _account(self, now: int) -> None:
        alive = len(self.waiting) + sum(len(p.rooms) for p in self.pods)
        oracle = pods_at_target(alive, self.shape)
        up = len([p for p in self.serving() if p.ready_at <= now])
        spent = self.result.spent
        spent["oracle's"] += min(up, oracle)
        sized = min(max(0, up - oracle), max(0, self.recommended - oracle))
        spent["sizing"] += sized
        spent["stabilisation"] += max(0, up - oracle - sized)
        spent["starting"] += len([p for p in self.serving() if p.ready_at > now])
        spent["held by rooms"] += len(self.pods) - len(self.serving())
        if now > self.last_arrival:
            self.result.held_after_arrivals += len(self.pods) - len(self.serving())

    def _place(self, now: int) -> None:
        open_pods = [p for p in self.serving() if p.ready_at <= now]
        for room in sorted(self.waiting):
            fits = [p for p in open_pods if p.used + RESERVATION <= self.capacity_limit]
            if not fits:
                break
            if self.placement == PlacementPolicy.PACKED:
                pod = max(fits, key=lambda p: (p.used, p.name))
            else:
                pod = min(fits, key=lambda p: (p.used, p.name))
            pod.rooms[room] = now + self.waiting.pop(room)

    @property
    def capacity_limit(self) -> float:
        return self.shape.capacity * HIGH_WATER_MARK

    def delete(self, pod: Pod, now: int, grace: int = 0) -> None:
        self.result.deletes += 1
        if grace:
            pod.leaving_at = now + grace
        else:
            self.result.cut += len(pod.rooms)
            self.pods.remove(pod)

    def run(self, policy: Policy) -> Result:
        for now in range(self.end):
            self.step(now, policy)
        return self.result


def end_of(rooms: list[tuple[int, int]], shape: Shape) -> int:
    """The second the trace ends: the last room's end, then the tail."""
    return max(at + d for at, d in rooms) + shape.tail


def builtin(window: int, placement: PlacementPolicy, shape: Shape = Shape()) -> Policy:
    spec = ScalingSpec(
        min_replicas=shape.min_pods,
        max_replicas=shape.max_pods,
        capacity_per_pod=shape.capacity,
        target_utilization=TARGET,
        stabilization_seconds=float(window),
    )
    memory = ScalingMemory()

    def policy(sim: Sim, now: int) -> None:
        nonlocal memory
        decision = decide(
            sim.demand(), spec, memory, float(now), current=shape.min_pods, reports_fresh=True
        )
        memory = decision.memory
        sim.recommended = recommend(sim.demand(), spec)
        views = [
            SfuPodView(
                name=p.name,
                template_hash="t",
                ready=p.ready_at <= now,
                cordoned=p.cordoned,
                hosts_rooms=bool(p.rooms),
                rooms=len(p.rooms),
                used=p.used,
                created=f"{p.created:09d}",
            )
            for p in sim.pods
            if p.leaving_at is None
        ]
        actions = plan_sfu_pods(views, decision.desired, "t", policy=placement)
        by_name = {p.name: p for p in sim.pods}
        for name in actions.uncordon:
            by_name[name].cordoned = False
        for name in actions.cordon:
            by_name[name].cordoned = True
        for name in actions.delete:
            sim.delete(by_name[name], now)
        for _ in range(actions.create):
            sim.create(now)

    return policy


def hpa(metrics_lag: int, grace: int, window: int = HPA_WINDOW, sync: int = HPA_SYNC) -> Policy:
    recommendations: list[tuple[int, int]] = []
    rng = random.Random(7)

    def policy(sim: Sim, now: int) -> None:
        if now % sync:
            return
        serving = [p for p in sim.serving()]
        ready = [p for p in serving if p.ready_at <= now] or serving
        load = sim.history[max(0, now - metrics_lag)] if sim.history else 0.0
        utilization = load / (sim.shape.capacity * len(ready))
        # The HPA's 10 % tolerance, then desired = ceil(current * utilization / target).
        wanted = len(serving)
        if abs(utilization / HPA_TARGET - 1) > 0.1:
            wanted = math.ceil(len(ready) * utilization / HPA_TARGET)
        wanted = max(sim.shape.min_pods, min(sim.shape.max_pods, wanted))
        sim.recommended = wanted
        recommendations.append((now, wanted))
        recommendations[:] = [(t, r) for t, r in recommendations if t > now - window]
        desired = wanted if wanted > len(serving) else max(r for _, r in recommendations)
        desired = min(desired, len(serving)) if wanted <= len(serving) else desired
        for _ in range(desired - len(serving)):
            sim.create(now)
        for pod in rng.sample(serving, max(0, len(serving) - desired)):
            sim.delete(pod, now, grace)

    return policy


def pods_at_target(rooms: int, shape: Shape) -> int:
    """The oracle's count for `rooms` alive: the fewest pods at the target."""
    return max(shape.min_pods, math.ceil(rooms / (shape.capacity * TARGET / RESERVATION)))


def oracle_pod_seconds(rooms: list[tuple[int, int]], end: int, shape: Shape = Shape()) -> float:
    active = [0] * (end + 1)
    for at, duration in rooms:
        for second in range(at, min(end, at + duration)):
            active[second] += 1
    return float(sum(pods_at_target(n, shape) for n in active))


def simulate(
    rooms: list[tuple[int, int]],
    *,
    startup: int,
    window: int,
    metrics_lag: int,
    placement: PlacementPolicy,
    shape: Shape = Shape(),
    hpa_window: int = HPA_WINDOW,
) -> list[Result]:
    """The built-in autoscaler and the two baselines, each on its own copy of the trace."""

    def sim(name: str) -> Sim:
        return Sim(rooms, startup, name, placement, shape)

    return [
        sim("built-in").run(builtin(window, placement, shape)),
        sim("HPA-style").run(hpa(metrics_lag, 0, hpa_window)),
        sim("LiveKit chart").run(hpa(metrics_lag, LIVEKIT_GRACE, hpa_window)),
    ]
