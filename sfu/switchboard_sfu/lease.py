"""The SFU's lease from the control plane, and the decision a peer check leads to.

Pure: times are seconds on the process's monotonic clock, passed in. docs/contract.md
("Leases") argues why these rules keep one pod per room.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum

from switchboard_api.contract import NEWER_TERM_GRACE_SECONDS, LeasePeer, ReportResponse

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    """The acknowledged response this pod applied last."""

    sequence: int
    term: int | None
    sent_at: float
    """When the answered report left: the lease counts from here, never from the answer."""
    received_at: float
    lease_seconds: float | None
    peers: tuple[LeasePeer, ...]


class LeaseState:
    """What the last applied acknowledgement grants, and which responses may still apply."""

    def __init__(self, failover_timeout_seconds: float, started_at: float) -> None:
        self.failover_timeout_seconds = failover_timeout_seconds
        """Fencing timeout of a control plane that grants no lease (before the first
        response: the configured default)."""
        self.started_at = started_at
        self.last: Acknowledgement | None = None
        self.term: int | None = None
        """The newest term applied; responses of an older term are never applied."""
        self.fenced_at_sequence: int | None = None
        """While fenced: the newest report sent before fencing. Only an answer to a later
        report lifts the fence, so a late answer computed before cannot undo it."""
        self.carry_peers_until: float | None = None
        """Until when peers of the previous term stay listed beside the new term's (S3)."""
        self.newer_term_seen_at: float | None = None
        """When a peer's answer first showed the newest term seen that is newer than the
        applied one (None: none has since this pod applied its term). A new leader
        acknowledges pods one report interval apart: this pod's turn may simply be next
        (S3's grace), and so for each newer term again."""
        self.newer_term_seen: int | None = None

    def refuses(self, response: ReportResponse, sequence: int) -> str | None:
        """Why an acknowledged `response` to report `sequence` must not be applied, or None."""
        if response.term is not None and self.term is not None and response.term < self.term:
            return f"term {response.term} is older than the applied term {self.term}"
        if self.fenced_at_sequence is not None and sequence <= self.fenced_at_sequence:
            return f"it answers report {sequence}, sent before this pod fenced"
        return None

    def apply(self, response: ReportResponse, sequence: int, sent_at: float, now: float) -> None:
        """Record an acknowledged response that `refuses` let through."""
        previous = self.last
        if (
            previous is not None
            and response.term is not None
            and previous.term is not None
            and response.term > previous.term
        ):
            # A new leader lists only the pods it has heard from, and hears them one report
            # interval apart: its first answers would leave this pod without peers to ask.
            self.carry_peers_until = now + (response.lease_seconds or 0.0)
        peers = list(response.peers)
        if previous is not None and self.carry_peers_until is not None:
            if now < self.carry_peers_until:
                listed = {peer.pod for peer in peers}
                peers += [peer for peer in previous.peers if peer.pod not in listed]
            else:
                self.carry_peers_until = None
        if response.term is not None:
            if self.term is None or response.term > self.term:
                self.newer_term_seen = self.newer_term_seen_at = None
            self.term = response.term if self.term is None else max(self.term, response.term)
        self.failover_timeout_seconds = response.failover_timeout_seconds
        self.fenced_at_sequence = None
        self.last = Acknowledgement(
            sequence=sequence,
            term=response.term,
            sent_at=sent_at,
            received_at=now,
            lease_seconds=response.lease_seconds,
            peers=tuple(peers),
        )

    def saw_terms(self, answers: list[PeerAnswer], now: float) -> None:
        """Peers answered at `now`: remember when a newer term than ours first showed."""
        newer = [a.term for a in answers if a.term is not None and _newer(a.term, self.term)]
        if newer and (self.newer_term_seen is None or max(newer) > self.newer_term_seen):
            self.newer_term_seen = max(newer)
            self.newer_term_seen_at = now

    def fenced(self, newest_sent_sequence: int) -> None:
        """Remember that the pod fenced after sending report `newest_sent_sequence`."""
        self.fenced_at_sequence = newest_sent_sequence

    @property
    def leased(self) -> bool:
        """Whether the control plane speaks the lease protocol (it granted a lease)."""
        return self.last is not None and self.last.lease_seconds is not None

    @property
    def lease_end(self) -> float | None:
        last = self.last
        if last is None or last.lease_seconds is None:
            return None
        return last.sent_at + last.lease_seconds

    def unacknowledged_for(self, now: float) -> float:
        heard = self.last.received_at if self.last is not None else self.started_at
        return now - heard

    def ack_age(self, now: float) -> float | None:
        return None if self.last is None else max(0.0, now - self.last.received_at)

    def expired(self, now: float) -> bool:
        """Past the lease (lease protocol) or the failover timeout (without one)."""
        end = self.lease_end
        if end is not None:
            return now >= end
        return self.unacknowledged_for(now) > self.failover_timeout_seconds


@dataclass(frozen=True, slots=True)
class PeerAnswer:
    """A verified answer of one peer, placed on this pod's clock."""

    pod: str
    term: int | None
    acked_at: float | None
    """When the peer received its last acknowledgement, on this pod's monotonic clock
    (the answer's arrival minus its age: never earlier than the truth, so the estimate
    errs towards fencing)."""
    fenced: bool


class Verdict(StrEnum):
    SERVE = "serve"
    """Every peer reached is unacknowledged too: the control plane is away for all, and
    moves no room on silence. Keep every room."""
    FENCE = "fence"
    """A peer was acknowledged after this lease ended, or no peer answered: the control
    plane may be up and cut off from this pod alone, and may place its rooms elsewhere."""


@dataclass(frozen=True, slots=True)
class Judgement:
    verdict: Verdict
    reason: str


def _newer(peer_term: int | None, term: int | None) -> bool:
    return peer_term is not None and (term is None or peer_term > term)


def judge(
    answers: list[PeerAnswer],
    lease_end: float,
    term: int | None,
    newer_term_seen_at: float | None = None,
) -> Judgement:
    """The peer check's decision for a pod whose lease ended at `lease_end` (its last
    applied term `term`), from the answers of the peers it reached. An acknowledgement of a
    newer term counts only once it is more than the grace later than both this lease's end
    and when this pod first saw that term (`newer_term_seen_at`): after an outage longer
    than the lease, the new leader's first acknowledgements reach the pods one report
    interval apart, and the control plane gives a pod it has not heard from in its term
    the same grace after a lease from the term's start (C5)."""
    if not answers:
        return Judgement(Verdict.FENCE, "no peer answered")
    for answer in answers:
        if answer.acked_at is None:
            continue
        newer = _newer(answer.term, term)
        since = max(lease_end, newer_term_seen_at or lease_end) if newer else lease_end
        threshold = since + (NEWER_TERM_GRACE_SECONDS if newer else 0.0)
        if answer.acked_at > threshold:
            return Judgement(
                Verdict.FENCE,
                f"peer {answer.pod} was acknowledged (term {answer.term}) "
                f"{answer.acked_at - since:.1f}s after this lease ended or the term showed",
            )
    pods = ",".join(answer.pod for answer in answers)
    return Judgement(Verdict.SERVE, f"peers unacknowledged too: {pods}")
