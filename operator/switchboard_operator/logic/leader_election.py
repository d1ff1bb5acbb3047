"""Leader election's decisions (docs/contract.md, "Leases", rule C1), pure: the clock is
each replica's own monotonic clock, passed in, and never compared with another machine's.

- A leader *acts* (acknowledges reports, issues join tokens, writes) only while it is within
  `renew_deadline` of the start of its last successful renewal.
- A candidate treats another holder's lease as expired only once it has seen the same
  record, unchanged, for a whole `lease_duration`.
Since `renew_deadline < lease_duration`, a leader stops acting before any candidate can
take over, however slowly its API calls fail.
- The Lease is renewed from a thread of its own, for the event loop the leader acts on, and
  only while that loop shows it runs (`LoopHeartbeat`): a slow loop keeps its lease, a
  wedged one lets it go.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class LeaderTiming:
    lease_duration_seconds: float = 4.0
    """A standby takes over at most this long (plus one retry) after the last renewal."""
    renew_deadline_seconds: float = 3.0
    """A leader acts for at most this long after the start of its last successful renewal:
    it rides out shorter API blips and stops before anyone else may take over."""
    retry_seconds: float = 1.0
    """Renewal period, and how often a standby looks at the lease."""
    call_timeout_seconds: float = 1.0
    """Deadline of every Lease call: a black-holed API server cannot hold a renewal up."""
    loop_stall_seconds: float = 4.0
    """The Lease is held for an event loop that ran within this long: one stalled longer
    (wedged, not merely slow) is renewed for no more, and a standby takes over."""

    @property
    def heartbeat_seconds(self) -> float:
        """How often the event loop shows that it runs: well within the stall bound."""
        return min(self.retry_seconds, self.loop_stall_seconds) / 4

    def __post_init__(self) -> None:
        if not self.renew_deadline_seconds < self.lease_duration_seconds:
            raise ValueError("the renew deadline must be shorter than the lease duration")
        if not self.call_timeout_seconds <= self.renew_deadline_seconds:
            raise ValueError("a Lease call must time out within the renew deadline")
        if not self.loop_stall_seconds > 0:
            raise ValueError("the loop stall bound must be positive")


class ActingWindow:
    """Until when this replica may act as leader."""

    def __init__(self, renew_deadline_seconds: float) -> None:
        self._renew_deadline = renew_deadline_seconds
        self._until: float | None = None

    def renewed(self, attempt_started_at: float) -> None:
        """A renewal that started at `attempt_started_at` succeeded."""
        until = attempt_started_at + self._renew_deadline
        self._until = until if self._until is None else max(self._until, until)

    def acting(self, now: float) -> bool:
        return self._until is not None and now < self._until

    def remaining(self, now: float) -> float:
        return 0.0 if self._until is None else max(0.0, self._until - now)

    def close(self) -> None:
        """Stop acting now, whatever the last renewal allowed (a newer term exists)."""
        self._until = None


class LoopHeartbeat:
    """When the event loop a leader acts on last ran, as the thread that renews its Lease
    sees it: the Lease is touched (taken, renewed) only for a loop that runs."""

    def __init__(self) -> None:
        self._last: float | None = None

    def beat(self, now: float) -> None:
        """The loop ran at `now`."""
        self._last = now if self._last is None else max(self._last, now)

    def fresh(self, now: float, stall_seconds: float) -> bool:
        """Whether the loop ran within `stall_seconds` of `now`: renew for it (a slow loop)
        or not (a wedged one, or one that never ran)."""
        return self._last is not None and now - self._last <= stall_seconds

    def stalled_for(self, now: float) -> float | None:
        """Seconds since the loop last ran (None: never)."""
        return None if self._last is None else max(0.0, now - self._last)


class Leadership(Protocol):
    """What the parts that act for the leader need of leader election (C1)."""

    @property
    def term(self) -> int | None:
        """This replica's term while it leads."""
        ...

    def acting(self) -> bool:
        """Whether this replica may act now (acknowledge, issue tokens, write)."""
        ...

    def remaining(self) -> float:
        """Seconds left in the acting window (0 when not acting)."""
        ...

    def saw_term(self, term: int) -> None:
        """An SFU reported having applied `term` (the next term starts above it)."""
        ...

    def step_down(self, reason: str) -> None:
        """Stop acting at once: another replica leads a newer term."""
        ...


class RecordObserver:
    """A candidate's view of the lease record another replica holds."""

    def __init__(self) -> None:
        self._record: Hashable | None = None
        self._since: float | None = None

    def observe(self, record: Hashable, now: float) -> None:
        """The record read at `now` (holder, renew time, transitions...): a change restarts
        the wait."""
        if record != self._record or self._since is None:
            self._record = record
            self._since = now

    def expired(self, now: float, lease_duration_seconds: float) -> bool:
        return self._since is not None and now - self._since >= lease_duration_seconds

    @property
    def seen(self) -> bool:
        """Whether any record has been observed."""
        return self._since is not None

    def may_create(self, now: float, lease_duration_seconds: float) -> bool:
        """The Lease is missing at `now`: whether to create it. At once if this candidate
        never saw a record (it starts with the installation: nobody acts yet). Otherwise
        the Lease was deleted under a leader that may still act, and that leader recreates
        it within one retry: the absence is a record like any other, waited out whole."""
        if not self.seen:
            return True
        self.observe(_ABSENT, now)
        return self.expired(now, lease_duration_seconds)


_ABSENT = ("absent",)


def next_term(lease_transitions: int | None, highest_reported: int | None = None) -> int:
    """The term of a replica that takes the lease: one past the Lease's transitions, and past
    any term an SFU reported (a deleted and recreated Lease starts counting again)."""
    return max(lease_transitions or 0, highest_reported or 0) + 1


def released_transitions(lease_transitions: int | None, highest_reported: int | None) -> int:
    """The transitions a leader leaves in the Lease it releases: at least every term an SFU
    reported, so that whoever takes it next starts above them all. A leader whose Lease was
    reset below the SFUs' terms (deleted and recreated while no leader ran) is refused by
    every SFU; it steps down, and this is how the next term gets past theirs."""
    return max(lease_transitions or 0, highest_reported or 0)
