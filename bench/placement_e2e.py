"""Room placement end to end on the local control plane: Room create -> status.phase=Scheduled.

Brings up its own stack (kube-apiserver + etcd, the operator, a node agent running real SFU
pods) and measures, with no thresholds:

- p50/p99 create -> Scheduled latency at sustained creation rates, stepping up until one is
  not sustained: as the creating client sees it (request sent -> watch event) and as the
  API server saw it (create committed -> status write committed, from the audit log);
- the highest rate sustained without backlog, and placements/s for a burst created at once;
- the API writes each placement costs, and the CPU each component spends per placement;
- re-placement of every room of a pod whose SFU process is SIGKILLed, from the kill and
  from detection (the Pod seen Failed or deleted).

Ratios are against baselines measured in the same run: one API write round trip (a
ConfigMap patch) and the first rate step.

    PATH=$PWD/.venv/bin:$PATH tools/in-netns.sh .venv/bin/python bench/placement_e2e.py \
        [--pods 4] [--seconds 5] [--rates 25,50,100] [--burst 1000] [--workdir DIR] \
        [--split-cores]

`--split-cores` runs the control plane on half of the CPUs and everything else on the
other half (bench/cores.py), as a cluster's control-plane nodes are apart from its workers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import signal
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import cores
from api_ceiling import SHADOW_GROUP, SHADOW_PLURAL, Ceiling, create_and_place, move, shadow_crd
from kubernetes_asyncio import client, config, watch

from switchboard_api import labels
from switchboard_api.contract import SfuEnv
from switchboard_api.resources import GROUP, REGION, ROOM, VERSION
from switchboard_dev.images import RUNTIME_ENV
from switchboard_dev.operator_process import OPERATOR_USER
from switchboard_dev.stack import LocalStack
from switchboard_localcluster.controlplane import ADMIN_USER, AuditEvent, ControlPlane

REGION_NAME = "bench-eu"
TOPOLOGY_REGION = "eu-west"
ZONES = [f"{TOPOLOGY_REGION}-a", f"{TOPOLOGY_REGION}-b"]
MEDIA_NS = "bench-media"
ROOMS_NS = "bench-rooms"
SFU_SELECTOR = f"{labels.APP_COMPONENT}={labels.COMPONENT_SFU}"
# A 1:1 call (1.3 units); pods are sized so that capacity never limits the benchmark.
ROOM_SPEC = {
    "region": REGION_NAME,
    "maxParticipants": 2,
    "mediaProfile": {"videoPublishers": 1, "audioPublishers": 1},
    "emptyTimeoutSeconds": 3600,
}
CAPACITY_PER_POD = 20000
CREATE_CONCURRENCY = 64
BASELINE_SAMPLES = 200
SETTLE_TIMEOUT = 120.0
AUDIT_TIMEOUT = 20.0
WATCH_SECONDS = 240
WATCH_RETRY_SECONDS = 0.2
SUSTAINED_SHARE = 0.95
"""A rate is sustained if rooms were both created and placed at this share of it or more:
placements/s run from the first create to the last placement, so rooms still waiting when
the creator stops (a backlog) lower it - by 5 % for 0.4 s worth of them in an 8 s step."""
CPU_COMPONENTS = (
    "operator",
    "apiserver",
    "etcd",
    "controllers",
    "node agent",
    "sfu pods",
    "bench",
)


# -- observing rooms and pods -------------------------------------------------------------

Seen = Callable[[str, dict[str, Any], float], None]
"""Called with (event type, object, monotonic time) for every object a watch reports."""


async def follow(list_call: Callable[..., Any], *args: Any, seen: Seen, **kwargs: Any) -> None:
    """List, then watch from there, forever; a refused or expired watch starts over from a
    fresh list (relisted objects are reported as "ADDED")."""
    while True:
        response = await list_call(*args, _preload_content=False, **kwargs)
        if response.status != 200:
            # e.g. 429 "storage is (re)initializing" while a new resource's watch cache
            # fills: lists are served from it (etcd 3.6 and later).
            print(f"list answered {response.status}, again", file=sys.stderr)
            await asyncio.sleep(WATCH_RETRY_SECONDS)
            continue
        listing = json.loads(await response.read())
        now = time.monotonic()
        for item in listing["items"]:
            seen("ADDED", item, now)
        stream = watch.Watch().stream(
            list_call,
            *args,
            resource_version=listing["metadata"]["resourceVersion"],
            allow_watch_bookmarks=True,
            timeout_seconds=WATCH_SECONDS,
            **kwargs,
        )
        try:
            async with stream:
                async for event in stream:
                    if event["type"] != "BOOKMARK":
                        seen(event["type"], event["raw_object"], time.monotonic())
        except (client.ApiException, aiohttp.ClientError, TimeoutError):
            # e.g. 504 "Too large resource version" while the API server's watch cache
            # catches up with etcd, or 410 Gone.
            await asyncio.sleep(WATCH_RETRY_SECONDS)


@dataclass
class RoomTrack:
    """What the watch saw of one room: its current placement and when it was Scheduled."""

    phase: str | None = None
    pod: str | None = None
    scheduled: list[tuple[float, str]] = field(default_factory=list)
    """(monotonic time, pod) each time the room turned Scheduled on a pod."""


class RoomWatch:
    """The benchmark's Rooms, with the time each placement arrived."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.rooms: dict[str, RoomTrack] = {}

    async def run(self) -> None:
        api = client.CustomObjectsApi(self.api)
        await follow(
            api.list_namespaced_custom_object,
            GROUP,
            VERSION,
            ROOMS_NS,
            ROOM.plural,
            seen=self._seen,
        )

    def _seen(self, _: str, room: dict[str, Any], now: float) -> None:
        track = self.rooms.setdefault(room["metadata"]["name"], RoomTrack())
        status = room.get("status") or {}
        phase, pod = status.get("phase"), status.get("pod")
        if phase == "Scheduled" and (track.phase != "Scheduled" or track.pod != pod):
            track.scheduled.append((now, pod))
        track.phase, track.pod = phase, pod

    def first_scheduled(self, name: str) -> float | None:
        track = self.rooms.get(name)
        return track.scheduled[0][0] if track and track.scheduled else None

    def all_scheduled(self, names: Iterable[str]) -> bool:
        return all(self.first_scheduled(name) is not None for name in names)


class PodWatch:
    """The region's SFU pods, and when each was first seen Failed or deleted."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.pods: dict[str, dict[str, Any]] = {}
        self.failed_at: dict[str, float] = {}
        self.deleted_at: dict[str, float] = {}

    async def run(self) -> None:
        core = client.CoreV1Api(self.api)
        await follow(
            core.list_namespaced_pod, MEDIA_NS, label_selector=SFU_SELECTOR, seen=self._seen
        )

    def _seen(self, kind: str, pod: dict[str, Any], now: float) -> None:
        uid = pod["metadata"]["uid"]
        self.pods[uid] = pod
        if (pod.get("status") or {}).get("phase") == "Failed":
            self.failed_at.setdefault(uid, now)
        if kind == "DELETED" or pod["metadata"].get("deletionTimestamp"):
            self.deleted_at.setdefault(uid, now)
        if kind == "DELETED":
            del self.pods[uid]

    def ready(self) -> list[dict[str, Any]]:
        return [
            p
            for p in self.pods.values()
            if not p["metadata"].get("deletionTimestamp")
            and any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in (p.get("status") or {}).get("conditions") or []
            )
        ]


WATCHERS: list[asyncio.Task[None]] = []
"""The running watches: a wait ends with their error if one of them fails."""


async def wait_for(
    predicate: Callable[[], object],
    timeout: float,  # noqa: ASYNC109 - a deadline for a condition, not for one call
    what: str,
    interval: float = 0.02,
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        for task in WATCHERS:
            if task.done():
                error = None if task.cancelled() else task.exception()
                raise RuntimeError(f"a watch ended while waiting for {what}") from error
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(interval)


# -- CPU spent by each component ----------------------------------------------------------

CLOCK_TICK = os.sysconf("SC_CLK_TCK")


def _component(pid: int, cmdline: bytes, environ: bytes, workdir: bytes) -> str | None:
    if pid == os.getpid():
        return "bench"
    if f"{SfuEnv.POD_NAMESPACE.value}={MEDIA_NS}".encode() in environ.split(b"\0"):
        return "sfu pods"
    if workdir not in cmdline and workdir not in environ:
        return None
    # The program, or the script an interpreter runs (console scripts, `python -m`).
    argv = cmdline.split(b"\0")[:3]
    for needle, name in (
        (b"kube-apiserver", "apiserver"),
        (b"etcd", "etcd"),
        (b"kube-controller-manager", "controllers"),
        (b"kube-scheduler", "controllers"),
        (b"switchboard-operator", "operator"),
        (b"switchboard_operator", "operator"),
        (b"switchboard_localcluster.nodeagent", "node agent"),
    ):
        if any(arg.endswith(needle) for arg in argv):
            return name
    return None


@dataclass(frozen=True)
class CpuSample:
    processes: dict[int, tuple[str, float]]
    """pid -> (component, CPU seconds so far)."""
    machine_busy: float
    """CPU seconds the whole machine has spent busy (all cores)."""
    at: float


def cpu_sample(workdir: Path) -> CpuSample:
    processes = {}
    needle = str(workdir).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            pid = int(entry.name)
            cmdline = (entry / "cmdline").read_bytes()
            component = _component(pid, cmdline, (entry / "environ").read_bytes(), needle)
            if component is not None:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                processes[pid] = (component, (int(fields[11]) + int(fields[12])) / CLOCK_TICK)
    ticks = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    busy = (sum(ticks[:8]) - ticks[3] - ticks[4]) / CLOCK_TICK  # all but idle and iowait
    return CpuSample(processes, busy, time.monotonic())


@dataclass(frozen=True)
class CpuUse:
    by_component: dict[str, float]
    machine_busy: float
    seconds: float
    started: dict[str, float]
    """The part of `by_component` spent by processes that started in between (a replacement
    SFU pod's start-up, for one)."""

    @classmethod
    def between(cls, start: CpuSample, end: CpuSample) -> CpuUse:
        used: Counter[str] = Counter()
        started: Counter[str] = Counter()
        for pid, (component, seconds) in end.processes.items():
            _, before = start.processes.get(pid, (component, 0.0))
            used[component] += seconds - before
            if pid not in start.processes:
                started[component] += seconds
        return cls(
            dict(used), end.machine_busy - start.machine_busy, end.at - start.at, dict(started)
        )

    @property
    def others(self) -> float:
        """CPU seconds spent by processes that are not part of this benchmark."""
        return max(0.0, self.machine_busy - sum(self.by_component.values()))


# -- creating rooms -----------------------------------------------------------------------


def room_body(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": ROOM.kind,
        "metadata": {"name": name, "namespace": ROOMS_NS},
        "spec": ROOM_SPEC,
    }


async def create_rooms(
    api: client.ApiClient, names: Sequence[str], rate: float | None
) -> dict[str, float]:
    """Create `names` open loop at `rate` rooms/s (None: all at once), at most
    CREATE_CONCURRENCY requests in flight. Returns when each create request was sent."""
    rooms = client.CustomObjectsApi(api)
    slots = asyncio.Semaphore(CREATE_CONCURRENCY)
    sent: dict[str, float] = {}

    async def create(name: str) -> None:
        try:
            await rooms.create_namespaced_custom_object(
                GROUP, VERSION, ROOMS_NS, ROOM.plural, room_body(name)
            )
        finally:
            slots.release()

    tasks = []
    start = time.monotonic()
    for i, name in enumerate(names):
        if rate is not None:
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        await slots.acquire()
        sent[name] = time.monotonic()
        tasks.append(asyncio.create_task(create(name)))
    await asyncio.gather(*tasks)
    return sent


# -- the audit log ------------------------------------------------------------------------


def audit_time(event: AuditEvent) -> float:
    return datetime.fromisoformat(str(event.raw["stageTimestamp"])).timestamp()


@dataclass(frozen=True)
class WriteCost:
    status_writes: Counter[str]
    """Operator writes to each Room's status."""
    other_writes: int
    """Every other operator write meanwhile (Events, Pod labels, ...)."""
    server_latency: list[float]
    """Per room created meanwhile: create committed -> first status write committed."""

    def covers(self, names: Iterable[str]) -> bool:
        return all(self.status_writes[name] for name in names)


def write_cost(plane: ControlPlane, since: int, names: set[str]) -> WriteCost:
    status_writes: Counter[str] = Counter()
    created: dict[str, float] = {}
    placed: dict[str, float] = {}
    other = 0
    for event in plane.audit_log.writes(since=since):
        is_room = event.resource == ROOM.plural and event.name in names
        if event.user == ADMIN_USER and is_room and event.verb == "create":
            created[event.name] = audit_time(event)
        elif event.user != OPERATOR_USER:
            continue
        elif is_room and event.subresource == "status":
            status_writes[event.name] += 1
            placed.setdefault(event.name, audit_time(event))
        else:
            other += 1
    latency = [placed[n] - created[n] for n in names if n in placed and n in created]
    return WriteCost(status_writes, other, latency)


async def audited_write_cost(plane: ControlPlane, since: int, names: set[str]) -> WriteCost:
    """The write cost once the audit log holds a status write for every room: a watch can
    deliver a change before the API server has logged the request that made it. A room
    still without one after AUDIT_TIMEOUT shows in the figures as less than one write."""
    deadline = time.monotonic() + AUDIT_TIMEOUT
    while True:
        cost = write_cost(plane, since, names)
        if cost.covers(names) or time.monotonic() > deadline:
            return cost
        await asyncio.sleep(0.2)


# -- rate steps ---------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1)]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


@dataclass(frozen=True)
class Step:
    label: str
    offered: float | None
    achieved: float
    placements_per_second: float
    client: list[float]
    server: list[float]
    drift: float
    writes: WriteCost
    cpu: CpuUse
    rooms: int

    @property
    def sustained(self) -> bool | None:
        if self.offered is None:
            return None
        target = SUSTAINED_SHARE * self.offered
        return self.achieved >= target and self.placements_per_second >= target


async def run_step(
    stack: LocalStack,
    api: client.ApiClient,
    rooms: RoomWatch,
    label: str,
    *,
    count: int,
    rate: float | None,
) -> Step:
    prefix = "burst" if rate is None else f"rate{round(rate * 1000)}m"
    names = [f"{prefix}-{i:05}" for i in range(count)]
    mark = stack.plane.audit_log.mark()
    cpu_before = cpu_sample(stack.workdir)
    sent = await create_rooms(api, names, rate)
    await wait_for(lambda: rooms.all_scheduled(names), SETTLE_TIMEOUT, f"{label} Scheduled")
    cpu = CpuUse.between(cpu_before, cpu_sample(stack.workdir))
    scheduled = {n: rooms.first_scheduled(n) or 0.0 for n in names}
    latency = [scheduled[n] - sent[n] for n in names]
    quarter = max(1, count // 4)
    sending = max(sent.values()) - min(sent.values())
    writes = await audited_write_cost(stack.plane, mark, set(names))
    return Step(
        label=label,
        offered=rate,
        achieved=(count - 1) / sending if sending > 0 else math.inf,
        placements_per_second=count / (max(scheduled.values()) - min(sent.values())),
        client=latency,
        server=writes.server_latency,
        drift=statistics.median(latency[-quarter:]) / statistics.median(latency[:quarter]),
        writes=writes,
        cpu=cpu,
        rooms=count,
    )


def print_steps(steps: Sequence[Step], baseline_p50: float) -> None:
    first = steps[0]
    print(
        f"{'step':<7} {'offered/s':>9} {'created/s':>9} {'placed/s':>8} {'client p50':>10} "
        f"{'p99':>7} {'server p50':>10} {'p99':>7} {'drift':>6} {'p50/write':>9} "
        f"{'p99/1st':>8} {'status w/room':>13} {'other w':>7} {'sustained':>9}"
    )
    for step in steps:
        per_room = sum(step.writes.status_writes.values()) / step.rooms
        sustained = {None: "-", True: "yes", False: "NO"}[step.sustained]
        print(
            f"{step.label:<7} {step.offered or 0:>9.0f} {step.achieved:>9.0f} "
            f"{step.placements_per_second:>8.0f} {ms(percentile(step.client, 50)):>10} "
            f"{ms(percentile(step.client, 99)):>7} {ms(percentile(step.server, 50)):>10} "
            f"{ms(percentile(step.server, 99)):>7} {step.drift:>6.2f} "
            f"{percentile(step.client, 50) / baseline_p50:>8.1f}x "
            f"{percentile(step.client, 99) / percentile(first.client, 99):>7.2f}x "
            f"{per_room:>13.3f} {step.writes.other_writes:>7} {sustained:>9}"
        )
    print(
        "latencies in ms. client: create sent -> Scheduled seen by a watch; server: create\n"
        "committed -> status write committed (audit log); drift: median latency of the last\n"
        "quarter of the step over the first; p50/write: client p50 over one API write round\n"
        "trip; status w/room: operator Room status writes per room; other w: all other\n"
        "operator writes during the step."
    )
    print(
        f"\nCPU ms per placement, and the machine's load ({os.cpu_count()} cores) during the step:"
    )
    print(
        f"{'step':<7} "
        + " ".join(f"{name:>11}" for name in CPU_COMPONENTS)
        + f" {'not ours':>9} {'machine busy':>12}"
    )
    for step in steps:
        cpu = step.cpu
        busy = cpu.machine_busy / (cpu.seconds * (os.cpu_count() or 1))
        print(
            f"{step.label:<7} "
            + " ".join(
                f"{1000 * cpu.by_component.get(name, 0.0) / step.rooms:>11.2f}"
                for name in CPU_COMPONENTS
            )
            + f" {1000 * cpu.others / step.rooms:>9.2f} {busy:>11.0%}"
        )


# -- baseline and failover ----------------------------------------------------------------


async def write_round_trips(api: client.ApiClient, samples: int) -> list[float]:
    """Sequential round trips of one API write (a ConfigMap merge patch): a placement's floor."""
    core = client.CoreV1Api(api)
    name = "bench-baseline"
    await core.create_namespaced_config_map(ROOMS_NS, {"metadata": {"name": name}, "data": {}})
    times = []
    for i in range(samples):
        started = time.monotonic()
        await core.patch_namespaced_config_map(name, ROOMS_NS, {"data": {"i": str(i)}})
        times.append(time.monotonic() - started)
    return times


def sfu_pid(pod_uid: str) -> int:
    """The local SFU process of a pod incarnation (the node agent's child running the image)."""
    needle = f"{SfuEnv.POD_UID.value}={pod_uid}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            environ = (entry / "environ").read_bytes().split(b"\0")
            if needle in environ and b"switchboard-sfu" in (entry / "cmdline").read_bytes():
                return int(entry.name)
    raise LookupError(f"no SFU process for pod uid {pod_uid}")


async def failover(
    stack: LocalStack,
    api: client.ApiClient,
    rooms: RoomWatch,
    pods: PodWatch,
    moves_ceiling: Ceiling,
) -> Ceiling | None:
    """Kill the SFU holding the most rooms and time their re-placement; returns the moves
    from detection to the last (None if the pod's loss was not seen)."""
    victim = max(
        pods.ready(),
        key=lambda p: sum(t.pod == p["metadata"]["name"] for t in rooms.rooms.values()),
    )
    name, uid = victim["metadata"]["name"], victim["metadata"]["uid"]
    moving = [n for n, t in rooms.rooms.items() if t.pod == name]
    mark = stack.plane.audit_log.mark()
    cpu_before = cpu_sample(stack.workdir)
    killed = time.monotonic()
    os.kill(sfu_pid(uid), signal.SIGKILL)

    def replaced_at(room: str) -> float | None:
        return next(
            (t for t, pod in rooms.rooms[room].scheduled if t > killed and pod != name), None
        )

    await wait_for(
        lambda: all(replaced_at(r) is not None for r in moving), SETTLE_TIMEOUT, "re-placement"
    )
    cpu = CpuUse.between(cpu_before, cpu_sample(stack.workdir))
    done = [replaced_at(r) or 0.0 for r in moving]
    failed, deleted = pods.failed_at.get(uid), pods.deleted_at.get(uid)
    seen = [t for t in (failed, deleted) if t is not None]
    detected = min(seen) if seen else None
    cost = await audited_write_cost(stack.plane, mark, set(moving))
    reason = await migration_reason(api)

    print(f"\nfailover: SIGKILL the SFU process of {name}, which held {len(moving)} rooms")
    for label, at in (("Pod seen Failed", failed), ("Pod seen deleted", deleted)):
        print(f"  kill -> {label:<25} {ms(at - killed) if at else 'not seen':>9} ms")
    print(f"  kill -> first room re-placed    {ms(min(done) - killed):>9} ms")
    print(f"  kill -> all rooms re-placed     {ms(max(done) - killed):>9} ms")
    if detected is not None:
        rate = len(moving) / (max(done) - detected)
        print(
            f"  detection -> all re-placed      {ms(max(done) - detected):>9} ms "
            f"(p50 {ms(percentile(done, 50) - detected)} ms, {rate:.0f} rooms/s, "
            f"{rate / moves_ceiling.per_second:.0%} of the API server's status-write ceiling)"
        )
    first, last = min(done), max(done)
    if last > first:
        moves = len(moving) / (last - first)
        print(
            f"  first -> last re-placed         {ms(last - first):>9} ms "
            f"({moves:.0f} rooms/s, {moves / moves_ceiling.per_second:.0%} of the ceiling: "
            "the moves alone, without the time to see the pod lost)"
        )
    print(f"  the operator's reason: {reason}")
    per = 1000 / len(moving)
    parts = ", ".join(
        f"{component} {seconds * per:.2f}"
        for component, seconds in sorted(cpu.by_component.items(), key=lambda kv: -kv[1])
    )
    print(
        f"  CPU ms per moved room, kill -> last move: {parts}, processes outside the "
        f"bench {cpu.others * per:.2f}; the machine busy {cpu.machine_busy * per:.2f} of "
        f"{cpu.seconds * per * (os.cpu_count() or 1):.2f}"
    )
    if cpu.started:
        new = ", ".join(f"{c} {seconds * per:.2f}" for c, seconds in sorted(cpu.started.items()))
        print(f"    of which processes started meanwhile (a replacement pod's start-up): {new}")
    writes = sum(cost.status_writes.values())
    print(
        f"  per moved room: {writes / len(moving):.3f} Room status writes, "
        f"{cost.other_writes / len(moving):.3f} other operator writes until the last move "
        "(the Migrating Events follow the moves), "
        f"{1000 * cpu.by_component.get('operator', 0.0) / len(moving):.2f} ms operator CPU"
    )
    return None if detected is None else Ceiling(len(moving), max(done) - detected)


async def migration_reason(api: client.ApiClient) -> str:
    """The message of a Migrating Event (they follow the moves' status writes)."""
    deadline = time.monotonic() + AUDIT_TIMEOUT
    while True:
        events = await client.CoreV1Api(api).list_namespaced_event(
            ROOMS_NS, field_selector="reason=Migrating", limit=1
        )
        if events.items:
            return str(events.items[0].message)
        if time.monotonic() > deadline:
            return "no Migrating event"
        await asyncio.sleep(0.2)


# -- the API server's ceiling ------------------------------------------------------------


SHADOW_WATCHES = 2
"""Rooms are watched twice while the operator moves them (its informer, and this
benchmark's watch that times the moves), so the shadow Rooms are watched twice too: the
watchers' CPU shares the cores in both measurements."""


def _shadow_watches(api: client.ApiClient) -> list[asyncio.Task[None]]:
    """The shadow Rooms watched as the Rooms are."""
    return [
        asyncio.create_task(
            follow(
                client.CustomObjectsApi(api).list_namespaced_custom_object,
                SHADOW_GROUP,
                VERSION,
                ROOMS_NS,
                SHADOW_PLURAL,
                seen=lambda _kind, _obj, _now: None,
            )
        )
        for _ in range(SHADOW_WATCHES)
    ]


async def _stop(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def ceiling_names(count: int) -> list[str]:
    return [f"ceiling-{i:05}" for i in range(count)]


async def api_ceiling(
    stack: LocalStack, api: client.ApiClient, count: int
) -> tuple[float, Ceiling]:
    """The API server alone doing a burst's writes (create + status) and a failover's
    (status only) on a shadow Room CRD the operator does not watch, watched like Rooms.
    Returns its CPU ms per create+status pair, and the status-write ceiling."""
    stack.plane.kubectl("apply", "-f", "-", input=json.dumps(shadow_crd()))
    crd = f"crd/{SHADOW_PLURAL}.{SHADOW_GROUP}"
    stack.plane.kubectl("wait", "--for=condition=Established", "--timeout=60s", crd)
    watchers = _shadow_watches(api)
    names = ceiling_names(count)
    try:
        before = cpu_sample(stack.workdir)
        pairs = await create_and_place(api, ROOMS_NS, names, ROOM_SPEC, CREATE_CONCURRENCY)
        pair_cpu = CpuUse.between(before, cpu_sample(stack.workdir))
        before = cpu_sample(stack.workdir)
        moves = await move(api, ROOMS_NS, names, CREATE_CONCURRENCY)
        move_cpu = CpuUse.between(before, cpu_sample(stack.workdir))
    finally:
        await _stop(watchers)
    print(
        f"\nAPI server alone (no operator; shadow Room CRD, {CREATE_CONCURRENCY} requests in "
        "flight, same run):"
    )
    for label, ceiling, cpu in (
        ("create + status write", pairs, pair_cpu),
        ("status write only", moves, move_cpu),
    ):
        per = 1000 / ceiling.objects
        print(
            f"  {label:<22} {ceiling.per_second:>6.0f}/s   CPU ms each: apiserver "
            f"{cpu.by_component.get('apiserver', 0.0) * per:.2f}, etcd "
            f"{cpu.by_component.get('etcd', 0.0) * per:.2f}, client "
            f"{cpu.by_component.get('bench', 0.0) * per:.2f}"
        )
    return 1000 * pair_cpu.by_component.get("apiserver", 0.0) / pairs.objects, moves


async def ceiling_again(
    api: client.ApiClient, count: int, before: Ceiling, failover: Ceiling | None
) -> None:
    """The status-write ceiling measured once more, after the failover: one short
    measurement varies by a third from run to run on a shared machine, so the failover
    is also put against the mean of the two."""
    watchers = _shadow_watches(api)
    try:
        after = await move(
            api, ROOMS_NS, ceiling_names(count), CREATE_CONCURRENCY, to_pod="bench-pod-c"
        )
    finally:
        await _stop(watchers)
    mean = (before.per_second + after.per_second) / 2
    print(f"\nstatus-write ceiling again, after the failover: {after.per_second:.0f}/s")
    if failover is not None:
        print(
            f"  failover (detection -> all) at {failover.per_second:.0f} rooms/s: "
            f"{failover.per_second / before.per_second:.0%} of the ceiling before, "
            f"{failover.per_second / after.per_second:.0%} of the one after, "
            f"{failover.per_second / mean:.0%} of their mean"
        )


def print_cpu_bound(burst: Step, pair_apiserver_ms: float, cores: int) -> None:
    """Placements are CPU-bound on a small machine: what the API server's `cores` allow,
    from its own cost of a placement's writes and from what the burst really cost."""
    machine_ms = 1000 * burst.cpu.machine_busy / burst.rooms
    operator_ms = 1000 * burst.cpu.by_component.get("operator", 0.0) / burst.rooms
    print(
        f"CPU bound on {cores} cores: the API server's own {pair_apiserver_ms:.2f} ms per "
        f"create+status caps placements at {1000 * cores / pair_apiserver_ms:.0f}/s even if "
        f"operator, etcd and client cost nothing;\n  in the burst each placement cost "
        f"{machine_ms:.2f} ms of machine CPU (operator {operator_ms:.2f} ms): at most "
        f"{1000 * cores / machine_ms:.0f}/s, {burst.placements_per_second:.0f}/s measured"
    )


# -- the run ------------------------------------------------------------------------------


def prepare(stack: LocalStack, pods: int, sfu: dict[str, Any] | None = None) -> None:
    """The namespaces and the bench Region: `pods` SFU pods, or the `sfu` spec given."""
    plane = stack.plane
    plane.kubectl("create", "namespace", MEDIA_NS)
    plane.kubectl("label", "namespace", MEDIA_NS, "pod-security.kubernetes.io/enforce=restricted")
    plane.kubectl("create", "namespace", ROOMS_NS)
    region = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": REGION.kind,
        "metadata": {"name": REGION_NAME},
        "spec": {
            "namespace": MEDIA_NS,
            "topologyRegion": TOPOLOGY_REGION,
            "location": {"latitude": 50.1, "longitude": 8.7},
            "sfu": sfu
            or {"minReplicas": pods, "maxReplicas": pods, "capacityPerPod": CAPACITY_PER_POD},
            "turn": {"enabled": False},
        },
    }
    plane.kubectl("apply", "-f", "-", input=json.dumps(region))


async def measure(stack: LocalStack, args: argparse.Namespace) -> None:
    await config.load_kube_config(config_file=str(stack.plane.kubeconfig))
    async with client.ApiClient() as api:
        # The load generator shares the 2 cores with what it measures: keep it lean (no
        # ~/.netrc and proxy lookups per request, as the operator's client does).
        api.rest_client.pool_manager._trust_env = False
        rooms, pods = RoomWatch(api), PodWatch(api)
        WATCHERS[:] = [asyncio.create_task(rooms.run()), asyncio.create_task(pods.run())]
        try:
            await wait_for(lambda: len(pods.ready()) == args.pods, 300, "ready SFU pods", 0.2)
            baseline = await write_round_trips(api, BASELINE_SAMPLES)
            base_p50 = percentile(baseline, 50)
            print(
                f"baseline: one API write round trip p50 {ms(base_p50)} ms, "
                f"p99 {ms(percentile(baseline, 99))} ms ({BASELINE_SAMPLES} sequential patches)\n"
            )
            steps = []
            for rate in args.rates:
                count = int(rate * args.seconds)
                steps.append(
                    await run_step(stack, api, rooms, f"{rate:g}/s", count=count, rate=rate)
                )
                if not steps[-1].sustained:
                    break
            steps.append(await run_step(stack, api, rooms, "burst", count=args.burst, rate=None))
            print_steps(steps, base_p50)
            sustained = [s.offered for s in steps if s.offered and s.sustained]
            highest = f"{max(sustained):.0f} rooms/s" if sustained else "none of the rates"
            print(f"\nhighest rate sustained without backlog: {highest}")
            print(
                f"burst of {args.burst} rooms created at once: "
                f"{steps[-1].placements_per_second:.0f} placements/s "
                "(first create sent -> last Scheduled seen)"
            )
            pair_apiserver_ms, moves = await api_ceiling(stack, api, args.burst)
            print_cpu_bound(steps[-1], pair_apiserver_ms, args.control_plane_cores)
            moved = await failover(stack, api, rooms, pods, moves)
            await ceiling_again(api, args.burst, moves, moved)
        finally:
            await _stop(WATCHERS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=4, help="SFU pods in the region")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each rate step")
    parser.add_argument(
        "--rates",
        type=lambda s: [float(r) for r in s.split(",")],
        default=[25.0, 50.0, 100.0, 150.0, 200.0, 300.0, 400.0],
        help="creation rates to step through (rooms/s), until one is not sustained",
    )
    parser.add_argument("--burst", type=int, default=1000, help="rooms created at once")
    parser.add_argument("--workdir", type=Path, help="keep the stack's files and logs here")
    parser.add_argument(
        "--split-cores",
        action="store_true",
        help="run the control plane on half of the CPUs, everything else on the other half",
    )
    args = parser.parse_args()
    control, others = cores.halves() if args.split_cores else (set(), set())
    args.control_plane_cores = len(control) or os.cpu_count() or 1
    if args.split_cores:
        cores.pin_self(others)  # the stack's processes inherit it; the control plane moves

    # The operator and the SFU pods run as local processes: the CPU table tells components
    # apart by process, and the write counts know the operator by its user (installed by
    # the chart, it would write as its ServiceAccount).
    os.environ[RUNTIME_ENV] = "process"
    started = time.monotonic()
    with LocalStack(args.workdir) as stack:
        for pid in stack.plane.pids if args.split_cores else ():
            cores.pin_process(pid, control)
        stack.start_node_agent({TOPOLOGY_REGION: ZONES})
        stack.install_switchboard()
        prepare(stack, args.pods)
        print(
            f"placement end to end: {args.pods} SFU pods, {os.cpu_count()} cores, "
            f"load average {os.getloadavg()[0]:.1f} before the run"
        )
        if args.split_cores:
            print(
                f"control plane on CPUs {cores.describe(control)}, everything else on "
                f"{cores.describe(others)}"
            )
        asyncio.run(measure(stack, args))
    print(f"\nbenchmark run took {time.monotonic() - started:.0f}s")


if __name__ == "__main__":
    main()
