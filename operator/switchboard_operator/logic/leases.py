"""The control plane's side of the lease protocol (docs/contract.md, "Leases", rules C3 and
C5/C6): what it records of the acknowledgements it sends, and when an SFU pod's silence
alone may move its rooms. Pure: times are seconds on the leader's own clock, passed in.

Silence moves a lease-capable pod's rooms only when that pod has certainly fenced: its lease
has ended, and every other lease-capable pod of its Region confirmed an acknowledgement sent
after that, long enough ago for the silent pod's peer check to have seen it. With two pods
silent, or no witness at all (a new leader that has heard from nobody, a control plane cut
off from every SFU), silence moves nothing.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from switchboard_api import defaults
from switchboard_api.contract import NEWER_TERM_GRACE_SECONDS, SILENCE_MARGIN_SECONDS

_REMEMBERED_ACKS: Final = 64
"""Acknowledgements remembered per pod: a confirmation names one sent seconds ago."""
_REMEMBERED_CONFIRMATIONS: Final = 64


@dataclass(frozen=True, slots=True)
class LeaseTiming:
    lease_seconds: float = defaults.LEASE_SECONDS
    failover_timeout_seconds: float = defaults.FAILOVER_TIMEOUT_SECONDS
    newer_term_grace_seconds: float = NEWER_TERM_GRACE_SECONDS
    silence_margin_seconds: float = SILENCE_MARGIN_SECONDS


@dataclass(frozen=True, slots=True)
class Confirmation:
    arrived_at: float
    """When the report that confirmed it arrived."""
    acked_at: float
    """When this leader sent the acknowledgement the report says arrived."""


@dataclass(slots=True)
class AckLedger:
    """What this leader sent one pod incarnation, and what the pod confirmed receiving."""

    lease_capable: bool = False
    """The pod announces a peer endpoint: it follows the lease protocol."""
    heard_at: float | None = None
    """When this leader received the last report it acknowledged (None: never)."""
    _sent: OrderedDict[int, float] = field(default_factory=OrderedDict)
    _confirmations: deque[Confirmation] = field(
        default_factory=lambda: deque(maxlen=_REMEMBERED_CONFIRMATIONS)
    )

    def on_report(
        self, acked_sequence: int | None, term: int | None, current_term: int, now: float
    ) -> None:
        """A report arrived saying which acknowledgement the pod applied last."""
        if acked_sequence is None or term != current_term:
            return
        acked_at = self._sent.get(acked_sequence)
        if acked_at is not None:
            self._confirmations.append(Confirmation(arrived_at=now, acked_at=acked_at))

    def acknowledged(self, sequence: int, now: float) -> None:
        """This leader acknowledged report `sequence`, received at `now`."""
        self.heard_at = now
        self._sent[sequence] = now
        while len(self._sent) > _REMEMBERED_ACKS:
            self._sent.popitem(last=False)

    def witnesses_after(self, instant: float, known_by: float) -> bool:
        """Whether the pod confirmed an acknowledgement sent after `instant`, and the
        confirmation had arrived by `known_by`."""
        return any(c.acked_at > instant and c.arrived_at <= known_by for c in self._confirmations)


@dataclass(frozen=True, slots=True)
class Silence:
    """A pod whose silence alone means it no longer serves its rooms."""

    pod: str
    reason: str


def silent_and_fenced(
    ledgers: Mapping[str, AckLedger],
    term_start: float,
    now: float,
    timing: LeaseTiming = LeaseTiming(),
) -> list[Silence]:
    """The pods of one Region (`ledgers`: every current incarnation, by pod key) whose
    silence moves their rooms now (rules C5 and C6), ordered by key.

    `term_start` is when this leader began acting: no pod's lease from an earlier term can
    outlast `term_start + lease`, since earlier terms stopped acting before it.
    """
    lost: list[Silence] = []
    for pod in sorted(ledgers):
        ledger = ledgers[pod]
        heard = term_start if ledger.heard_at is None else max(ledger.heard_at, term_start)
        if not ledger.lease_capable:
            if now - heard > timing.failover_timeout_seconds + timing.silence_margin_seconds:
                lost.append(Silence(pod, "failover timeout (no lease)"))
            continue
        lease_end = heard + timing.lease_seconds
        if now < lease_end:
            continue
        # A pod this term never acknowledged holds an older term's lease: its peers' newer
        # acknowledgements count against it only after the grace (S3).
        threshold = lease_end + (
            timing.newer_term_grace_seconds if ledger.heard_at is None else 0.0
        )
        witnesses = [w for key, w in ledgers.items() if key != pod and w.lease_capable]
        known_by = now - timing.silence_margin_seconds
        if witnesses and all(w.witnesses_after(threshold, known_by) for w in witnesses):
            lost.append(Silence(pod, "lease ended; every peer acknowledged since"))
    return lost
