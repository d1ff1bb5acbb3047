"""Which SFU pods to create, drain or delete: scaling and rolling updates for operator-owned pods.

The operator owns SFU pods directly (no StatefulSet) so it can remove *chosen* pods: never
one that hosts rooms without draining it first, and during an image roll one at a time,
with one surge pod so the region never drops below its desired count of ready pods.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


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
    hosts_rooms: bool = False
    created: str = ""
    """Creation timestamp (RFC 3339 sorts as text): newest pods go first on scale-down."""


@dataclass(frozen=True)
class PodActions:
    create: int = 0
    drain: list[str] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    crashed: list[str] = field(default_factory=list)
    """Terminated pods in `delete` whose SFU failed: each counts towards the CrashBackoff."""
    exited: list[str] = field(default_factory=list)
    """Terminated pods in `delete` whose SFU exited cleanly: replaced without back-off."""

    @property
    def empty(self) -> bool:
        return not (self.create or self.drain or self.delete)


def plan_sfu_pods(
    pods: Sequence[SfuPodView], desired: int, current_hash: str, max_surge: int = 1
) -> PodActions:
    live = [p for p in pods if not p.deleting and not p.terminated]
    # A drained pod that no longer hosts rooms has finished draining; a terminated pod is
    # removed so that a new one replaces it.
    delete = sorted(p.name for p in live if p.draining and not p.hosts_rooms)
    ended = [p for p in pods if p.terminated and not p.deleting]
    delete += sorted(p.name for p in ended)
    crashed = sorted(p.name for p in ended if p.failed)
    exited = sorted(p.name for p in ended if not p.failed)
    active = [p for p in live if not p.draining]
    current = [p for p in active if p.template_hash == current_hash]
    outdated = [p for p in active if p.template_hash != current_hash]
    leaving = len([p for p in live if p.draining])

    create = max(0, desired - len(current))
    if outdated:
        # Surge: never more than desired + max_surge pods that are not on their way out.
        create = max(0, min(create, desired + max_surge - len(active)))
    drain: list[str] = []

    if outdated and not leaving:
        ready = sum(p.ready for p in active)
        victim = _victim(outdated)
        # Retire one outdated pod once the others can carry the desired count alone.
        if not victim.ready or ready - 1 >= desired:
            (drain if victim.hosts_rooms else delete).append(victim.name)
    elif not outdated and len(current) > desired:
        excess = len(current) - desired
        for victim in sorted(current, key=_scale_down_order)[:excess]:
            (drain if victim.hosts_rooms else delete).append(victim.name)
    return PodActions(
        create=create, drain=drain, delete=sorted(set(delete)), crashed=crashed, exited=exited
    )


def _victim(pods: Sequence[SfuPodView]) -> SfuPodView:
    return sorted(pods, key=_scale_down_order)[0]


def _scale_down_order(pod: SfuPodView) -> tuple[bool, bool, str, str]:
    # Not-ready before ready, empty before hosting rooms, newest first, then by name.
    inverted_created = "".join(chr(0x10FFFF - ord(c)) for c in pod.created)
    return (pod.ready, pod.hosts_rooms, inverted_created, pod.name)


CRASH_BACKOFF_INITIAL_SECONDS = 1.0
CRASH_BACKOFF_MAX_SECONDS = 60.0
CRASH_MEMORY_SECONDS = 300.0
"""Failures further apart than this are not a crash loop: the count starts again."""


@dataclass(frozen=True)
class CrashBackoff:
    """Consecutive SFU pod failures in a Region, and when a replacement may be created."""

    failures: int = 0
    last_failure: float = 0.0
    not_before: float = 0.0

    def failed(self, now: float) -> CrashBackoff:
        failures = self.failures + 1 if now - self.last_failure < CRASH_MEMORY_SECONDS else 1
        delay = min(CRASH_BACKOFF_INITIAL_SECONDS * 2 ** (failures - 1), CRASH_BACKOFF_MAX_SECONDS)
        return CrashBackoff(failures=failures, last_failure=now, not_before=now + delay)

    def waiting(self, now: float) -> float:
        """Seconds until a replacement may be created (0: now)."""
        return max(0.0, self.not_before - now)
