"""Which SFU pods to create, cordon, uncordon, drain or delete: scaling and rolling updates
for operator-owned pods.

The operator owns SFU pods directly (no StatefulSet) so it can remove *chosen* pods. On
scale-down it never deletes a pod that holds a room: it cordons the emptiest (no new rooms;
nobody is moved) and deletes each once its last room has ended; a cordoned pod needed
again is uncordoned, not replaced. An image roll goes one pod at a time, draining it, with
one surge pod so the region never drops below its desired count of ready pods. Pods whose
SFU crashed are replaced after a back-off, and so are pods whose SFU started but never
became Ready within its start-up grace (they are not capacity); pods created but not yet
shown by the Pod watch are not created again.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Final

from switchboard_api.region import PlacementPolicy
from switchboard_operator.logic.backoff import Backoff
from switchboard_operator.logic.manifests.sfu import NOT_READY_GRACE_SECONDS
from switchboard_operator.logic.notices import Notice


@dataclass(frozen=True)
class SfuPodView:
    """What the decision needs to know about one SFU pod."""

    name: str
    template_hash: str
    ready: bool = False
    deleting: bool = False
    terminated: bool = False
    """Phase Failed or Succeeded: the SFU process ended (pods never restart it: a new
    incarnation must be a new pod, so its rooms are known to have moved)."""
    failed: bool = False
    """Terminated with phase Failed: the SFU crashed or was killed. A clean exit (Succeeded,
    e.g. after a drain or the eviction of an empty pod) is not a crash."""
    draining: bool = False
    cordoned: bool = False
    """Cordoned by the autoscaler (annotation): no new rooms; deleted once empty."""
    hosts_rooms: bool = False
    rooms: int = 0
    """Rooms placed on it (the capacity picture)."""
    used: float = 0.0
    """Units counted against it (the capacity picture)."""
    created: str = ""
    """Creation timestamp (RFC 3339 sorts as text): newest pods go first on scale-down."""
    exit_reason: str = ""
    """How its SFU process ended, e.g. "Error, exit code 1" (terminated pods)."""
    never_ready_since: float | None = None
    """Unix time its SFU container started, if it has not been Ready since (None: Ready
    once, or not started yet, e.g. its image is being pulled)."""

    def stalled(self, now: float | None) -> bool:
        """Started, never Ready for longer than a healthy SFU takes, holding no room: not
        capacity, so it stands in for no pod (and is replaced as a failed start)."""
        return (
            now is not None
            and not self.ready
            and not self.hosts_rooms
            and self.never_ready_since is not None
            and now - self.never_ready_since > NOT_READY_GRACE_SECONDS
        )


@dataclass(frozen=True)
class PodActions:
    create: int = 0
    cordon: list[str] = field(default_factory=list)
    uncordon: list[str] = field(default_factory=list)
    drain: list[str] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    crashed: list[str] = field(default_factory=list)
    """Terminated pods in `delete` whose SFU failed: each counts towards the CrashBackoff."""
    exited: list[str] = field(default_factory=list)
    """Terminated pods in `delete` whose SFU exited cleanly: replaced without back-off."""
    stalled: list[str] = field(default_factory=list)
    """Pods in `delete` that were never Ready within the start-up grace: each counts
    towards the CrashBackoff, as a crash does."""

    @property
    def empty(self) -> bool:
        return not (self.create or self.cordon or self.uncordon or self.drain or self.delete)


def plan_sfu_pods(
    pods: Sequence[SfuPodView],
    desired: int,
    current_hash: str,
    max_surge: int = 1,
    *,
    policy: PlacementPolicy = PlacementPolicy.LEAST_LOADED,
    rooms_known: bool = True,
    now: float | None = None,
) -> PodActions:
    """`rooms_known`: the capacity picture holds every placement (after a restart, once
    Room statuses are read); until then no cordoned pod counts as empty. `now`: the clock,
    to tell pods stalled before Ready (`SfuPodView.stalled`); None: no pod is stalled."""
    stalled = sorted(
        p.name
        for p in pods
        if p.stalled(now) and not (p.deleting or p.terminated or p.draining or p.cordoned)
    )
    live = [p for p in pods if not p.deleting and not p.terminated and p.name not in stalled]
    # A drained pod that no longer hosts rooms has finished draining; a terminated pod is
    # removed so that a new one replaces it.
    delete = sorted(p.name for p in live if p.draining and not p.hosts_rooms)
    ended = [p for p in pods if p.terminated and not p.deleting]
    delete += sorted(p.name for p in ended) + stalled
    crashed = sorted(p.name for p in ended if p.failed)
    exited = sorted(p.name for p in ended if not p.failed)
    cordoned = [p for p in live if p.cordoned and not p.draining]
    active = [p for p in live if not p.draining and not p.cordoned]
    current = [p for p in active if p.template_hash == current_hash]
    outdated = [p for p in active if p.template_hash != current_hash]
    leaving = len([p for p in live if p.draining])

    create = max(0, desired - len(current))
    # A cordoned pod that is needed again is uncordoned, not replaced: the warmest first.
    uncordon = [
        p.name for p in sorted(cordoned, key=_warmth) if p.template_hash == current_hash and p.ready
    ][:create]
    create -= len(uncordon)
    # Cordoned pods stay until their last room has ended; then they are deleted, and
    # nothing replaces them.
    delete += sorted(
        p.name for p in cordoned if p.name not in uncordon and not p.hosts_rooms and rooms_known
    )
    if outdated:
        # Surge: never more than desired + max_surge pods that are not on their way out.
        create = max(0, min(create, desired + max_surge - len(active)))
    drain: list[str] = []
    cordon: list[str] = []

    if outdated and not leaving:
        ready = sum(p.ready for p in active)
        victim = _victim(outdated)
        # Retire one outdated pod once the others can carry the desired count alone.
        if not victim.ready or ready - 1 >= desired:
            (drain if victim.hosts_rooms else delete).append(victim.name)
    elif not outdated and len(current) > desired:
        excess = len(current) - desired
        for victim in sorted(current, key=lambda p: _victim_order(p, policy))[:excess]:
            # A pod that never came up holds no room and takes none: it goes at once.
            # One that is up is cordoned first, so no room is placed on it meanwhile.
            (delete if not victim.ready and not victim.hosts_rooms else cordon).append(victim.name)
    return PodActions(
        create=create,
        cordon=sorted(cordon),
        uncordon=sorted(uncordon),
        drain=drain,
        delete=sorted(set(delete)),
        crashed=crashed,
        exited=exited,
        stalled=stalled,
    )


def _victim(pods: Sequence[SfuPodView]) -> SfuPodView:
    return sorted(pods, key=_scale_down_order)[0]


def _victim_order(pod: SfuPodView, policy: PlacementPolicy) -> tuple[object, ...]:
    """Scale-down victims: pods not up first, then the emptiest, then the newest.

    Packed keeps the fullest pods warm (victims by load: it fills pods one after another,
    so the least loaded are the next to be empty). LeastLoaded spreads rooms evenly, so
    after the empty pods its victims are the newest (the last to have taken rooms).
    """
    inverted_created = _inverted(pod.created)
    if policy == PlacementPolicy.PACKED:
        return (pod.ready, pod.hosts_rooms, pod.rooms, pod.used, inverted_created, pod.name)
    return (pod.ready, pod.hosts_rooms, inverted_created, pod.rooms, pod.name)


def _warmth(pod: SfuPodView) -> tuple[object, ...]:
    """Cordoned pods to take back first: most rooms, most load, oldest."""
    return (-pod.rooms, -pod.used, pod.created, pod.name)


def _inverted(text: str) -> str:
    return "".join(chr(0x10FFFF - ord(c)) for c in text)


def _scale_down_order(pod: SfuPodView) -> tuple[bool, bool, str, str]:
    # Not-ready before ready, empty before hosting rooms, newest first, then by name.
    return (pod.ready, pod.hosts_rooms, _inverted(pod.created), pod.name)


CRASH_BACKOFF: Final = Backoff(first_seconds=1.0, max_seconds=60.0)
CRASH_MEMORY_SECONDS: Final = 300.0
"""Failures further apart than this are not a crash loop: the count starts again."""
UNOBSERVED_POD_SECONDS: Final = 300.0
"""How long a created SFU pod the Pod watch has not shown yet stands in for itself: as
client-go's expectations, longer than a stalled watch takes to be noticed and restarted."""


@dataclass(frozen=True)
class CrashBackoff:
    """Consecutive SFU pod failures in a Region, and when a replacement may be created."""

    failures: int = 0
    last_failure: float = 0.0
    not_before: float = 0.0

    def failed(self, now: float) -> CrashBackoff:
        failures = self.failures + 1 if now - self.last_failure < CRASH_MEMORY_SECONDS else 1
        delay = CRASH_BACKOFF.delay(failures)
        return CrashBackoff(failures=failures, last_failure=now, not_before=now + delay)

    def waiting(self, now: float) -> float:
        """Seconds until a replacement may be created (0: now)."""
        return max(0.0, self.not_before - now)


@dataclass(frozen=True)
class SfuPodMemory:
    """What the Region reconciler remembers about a Region's SFU pods between passes."""

    crashes: CrashBackoff = field(default_factory=CrashBackoff)
    unobserved: Mapping[str, float] = field(default_factory=dict)
    """SFU pods created (name -> when) that the Pod watch has not shown yet. A pass that
    runs before the watch delivers them must not create them again (what ReplicaSet's
    controller calls expectations)."""

    def created(self, name: str, now: float) -> SfuPodMemory:
        return replace(self, unobserved={**self.unobserved, name: now})


@dataclass(frozen=True)
class SfuPodPlan:
    """One pass's changes to a Region's SFU pods, and the Events that go with them."""

    create: int
    cordon: list[str]
    uncordon: list[str]
    drain: list[str]
    delete: list[str]
    crashed: list[Notice]
    """A Warning per pod whose SFU failed, posted before anything changes."""
    deleted: dict[str, Notice]
    """The Event that goes with each deletion."""
    memory: SfuPodMemory
    retry_after: float | None
    """Seconds until a pass is due: replacements held back by the crash back-off may be
    created, or a starting pod passes its start-up grace."""


def plan_region_pods(
    pods: Sequence[SfuPodView],
    desired: int,
    current_hash: str,
    memory: SfuPodMemory,
    now: float,
    *,
    policy: PlacementPolicy = PlacementPolicy.LEAST_LOADED,
    rooms_known: bool = True,
) -> SfuPodPlan:
    """`plan_sfu_pods`, with crashed pods replaced after a back-off and pods created but
    not yet watched counted as there."""
    actions = plan_sfu_pods(
        pods, desired, current_hash, policy=policy, rooms_known=rooms_known, now=now
    )
    by_name = {p.name: p for p in pods}
    backoff = memory.crashes
    crashed = []
    for name in actions.crashed:
        backoff = backoff.failed(now)
        crashed.append(
            Notice(
                "Warning",
                "SfuPodFailed",
                f"SFU pod {name} ended ({by_name[name].exit_reason}); "
                f"replacing it in {backoff.waiting(now):.0f}s.",
            )
        )
    for name in actions.stalled:
        backoff = backoff.failed(now)
        crashed.append(
            Notice(
                "Warning",
                "SfuPodNeverReady",
                f"SFU pod {name} started over {NOT_READY_GRACE_SECONDS}s ago and never "
                "became Ready: it is not capacity; deleting it, replacing it in "
                f"{backoff.waiting(now):.0f}s.",
            )
        )
    unobserved = {
        name: at
        for name, at in memory.unobserved.items()
        if name not in by_name and now - at < UNOBSERVED_POD_SECONDS
    }
    create = max(0, actions.create - len(unobserved))
    retry_after = _next_stall(pods, now)
    if create and backoff.waiting(now) > 0:
        create = 0
        retry_after = min(backoff.waiting(now), retry_after or math.inf)
    deleted = {}
    for name in actions.delete:
        if name in actions.exited:
            # One Event, not two: a clean exit is routine (every drained pod ends so).
            deleted[name] = Notice(
                "Normal",
                "SfuPodExited",
                f"SFU pod {name} exited after draining ({by_name[name].exit_reason}); "
                "deleted it, a new pod replaces it.",
            )
        elif name in actions.stalled:
            deleted[name] = Notice("Normal", "Deleted", f"Deleted SFU pod {name}: never Ready.")
        elif by_name[name].cordoned:
            deleted[name] = Notice(
                "Normal",
                "Deleted",
                f"Deleted SFU pod {name}: cordoned for scale-down and its last room has "
                "ended; it is not replaced.",
            )
        else:
            deleted[name] = Notice("Normal", "Deleted", f"Deleted SFU pod {name}.")
    return SfuPodPlan(
        create=create,
        cordon=list(actions.cordon),
        uncordon=list(actions.uncordon),
        drain=list(actions.drain),
        delete=list(actions.delete),
        crashed=crashed,
        deleted=deleted,
        memory=SfuPodMemory(crashes=backoff, unobserved=unobserved),
        retry_after=retry_after,
    )


def _next_stall(pods: Sequence[SfuPodView], now: float) -> float | None:
    """Seconds until the next never-Ready pod passes the start-up grace (a pass must come
    then: nothing in the Pod watch changes when it does)."""
    waits = [
        p.never_ready_since + NOT_READY_GRACE_SECONDS - now
        for p in pods
        if not (p.ready or p.hosts_rooms or p.deleting or p.terminated or p.draining or p.cordoned)
        and p.never_ready_since is not None
    ]
    waits = [wait for wait in waits if wait >= 0]
    return min(waits) + 0.5 if waits else None


def created_notice(name: str) -> Notice:
    return Notice("Normal", "Created", f"Created SFU pod {name}.")


def draining_notice(name: str) -> Notice:
    return Notice("Normal", "Draining", f"Draining SFU pod {name} before removal.")


def cordoned_notice(name: str, rooms: int) -> Notice:
    return Notice(
        "Normal",
        "Cordoned",
        f"Cordoned SFU pod {name} for scale-down: it takes no new rooms and is deleted "
        f"once its {rooms} room(s) have ended; nobody is moved.",
    )


def uncordoned_notice(name: str) -> Notice:
    return Notice(
        "Normal", "Uncordoned", f"Uncordoned SFU pod {name}: needed again, it takes rooms."
    )
