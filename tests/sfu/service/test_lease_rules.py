"""The lease rules on their own: what a peer check decides from its answers, and which
answers count (only those signed by the key the control plane listed for that pod)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from fixtures.sfu_harness import LOOPBACK, free_port
from switchboard_api.contract import (
    NEWER_TERM_GRACE_SECONDS,
    LeasePeer,
    LeaseStatus,
    ReportResponse,
)
from switchboard_sfu.lease import LeaseState, PeerAnswer, Verdict, judge
from switchboard_sfu.peers import PeerChecker, PeerKey, peer_app

LEASE_END = 100.0


def answer(acked_at: float | None, term: int | None = 3) -> PeerAnswer:
    return PeerAnswer(pod="peer", term=term, acked_at=acked_at, fenced=False)


def test_no_answer_fences() -> None:
    assert judge([], LEASE_END, 3).verdict is Verdict.FENCE


def test_peers_unacknowledged_since_before_the_lease_ended_keep_the_pod_serving() -> None:
    answers = [answer(LEASE_END - 7.5), answer(None), answer(LEASE_END - 0.1)]
    assert judge(answers, LEASE_END, 3).verdict is Verdict.SERVE


def test_a_peer_acknowledged_after_the_lease_ended_in_the_same_term_fences() -> None:
    answers = [answer(LEASE_END - 8), answer(LEASE_END + 0.2)]
    assert judge(answers, LEASE_END, 3).verdict is Verdict.FENCE


def test_a_newer_term_counts_only_after_its_grace() -> None:
    # A new leader acknowledges pods one report interval apart: this pod's turn may be next.
    soon = [answer(LEASE_END + NEWER_TERM_GRACE_SECONDS - 0.5, term=4)]
    late = [answer(LEASE_END + NEWER_TERM_GRACE_SECONDS + 0.5, term=4)]
    assert judge(soon, LEASE_END, 3).verdict is Verdict.SERVE
    assert judge(late, LEASE_END, 3).verdict is Verdict.FENCE


def test_after_a_long_outage_a_newer_term_counts_only_after_its_grace_from_when_it_showed():
    # The control plane was away far longer than the lease: its new term acknowledged a
    # peer first. This pod's turn is next; it fences only if it does not come in time.
    lease = LeaseState(10.0, started_at=0.0)
    lease.apply(response(3), sequence=1, sent_at=LEASE_END - 8.0, now=LEASE_END - 7.9)
    showed = LEASE_END + 300.0
    first = [answer(showed - 0.3, term=4)]
    lease.saw_terms(first, showed)
    assert judge(first, LEASE_END, 3, lease.newer_term_seen_at).verdict is Verdict.SERVE
    late = [answer(showed + NEWER_TERM_GRACE_SECONDS + 0.5, term=4)]
    lease.saw_terms(late, showed + NEWER_TERM_GRACE_SECONDS + 0.6)
    assert lease.newer_term_seen_at == showed
    assert judge(late, LEASE_END, 3, lease.newer_term_seen_at).verdict is Verdict.FENCE
    # A term newer still (this pod missed the one before) gets its grace from when it showed.
    newest = showed + 200.0
    lease.saw_terms([answer(newest - 0.2, term=5)], newest)
    assert judge([answer(newest - 0.2, term=5)], LEASE_END, 3, newest).verdict is Verdict.SERVE
    assert lease.newer_term_seen_at == newest
    # Once this pod applies the newer term, the next one starts the count again.
    lease.apply(response(4), sequence=2, sent_at=showed + 1, now=showed + 1.1)
    assert lease.newer_term_seen_at is None


def response(
    term: int | None, lease: float | None = 8.0, peers: tuple[str, ...] = ()
) -> ReportResponse:
    return ReportResponse(
        acknowledged=True,
        sequence=0,
        failover_timeout_seconds=10,
        term=term,
        lease_seconds=lease,
        peers=[
            LeasePeer(url=f"http://{p}/v1/lease", public_key="k" * 43, pod=p, pod_uid=f"uid-{p}")
            for p in peers
        ],
    )


def peer_names(lease: LeaseState) -> list[str]:
    assert lease.last is not None
    return sorted(peer.pod for peer in lease.last.peers)


def test_a_new_terms_first_answers_keep_the_previous_peers_for_a_lease():
    # The new leader has heard only from some pods yet: without the others, this pod's
    # lease could end with no peer to ask, and it would fence although nothing moved.
    lease = LeaseState(10.0, started_at=0.0)
    lease.apply(response(3, peers=("b", "c")), sequence=1, sent_at=10.0, now=10.1)
    lease.apply(response(4, peers=()), sequence=2, sent_at=20.0, now=20.1)
    assert peer_names(lease) == ["b", "c"]
    lease.apply(response(4, peers=("b",)), sequence=3, sent_at=21.0, now=21.1)
    assert peer_names(lease) == ["b", "c"]
    # A lease after the new term's first answer, it has heard from every live pod.
    lease.apply(response(4, peers=("b",)), sequence=4, sent_at=29.0, now=29.1)
    assert peer_names(lease) == ["b"]


def test_within_a_term_the_peers_are_the_control_planes_list():
    lease = LeaseState(10.0, started_at=0.0)
    lease.apply(response(3, peers=("b", "c")), sequence=1, sent_at=10.0, now=10.1)
    lease.apply(response(3, peers=("b",)), sequence=2, sent_at=11.0, now=11.1)
    assert peer_names(lease) == ["b"]


def test_the_lease_counts_from_when_the_report_was_sent() -> None:
    lease = LeaseState(10.0, started_at=0.0)
    lease.apply(response(1), sequence=4, sent_at=50.0, now=53.0)
    assert lease.lease_end == 58.0
    assert not lease.expired(57.9)
    assert lease.expired(58.0)


def test_without_a_lease_the_failover_timeout_applies() -> None:
    lease = LeaseState(10.0, started_at=0.0)
    lease.apply(response(None, lease=None), sequence=0, sent_at=1.0, now=2.0)
    assert not lease.leased
    assert not lease.expired(12.0)
    assert lease.expired(12.1)


def test_older_terms_and_answers_to_reports_sent_before_fencing_are_refused() -> None:
    lease = LeaseState(10.0, started_at=0.0)
    lease.apply(response(5), sequence=1, sent_at=1.0, now=1.1)
    assert lease.refuses(response(4), sequence=2)
    assert lease.refuses(response(5), sequence=2) is None
    lease.fenced(newest_sent_sequence=9)
    assert lease.refuses(response(5), sequence=9)
    assert lease.refuses(response(6), sequence=10) is None


@pytest.fixture
async def peer() -> AsyncIterator[tuple[PeerKey, str, dict[str, str]]]:
    """A peer answering lease checks; tests may make it lie (`tamper`)."""
    key = PeerKey()
    tamper: dict[str, str] = {}

    def status(nonce: str) -> LeaseStatus:
        return LeaseStatus(
            pod=tamper.get("pod", "sfu-b"),
            pod_uid="uid-b",
            nonce=tamper.get("nonce", nonce),
            term=3,
            ack_age_seconds=0.5,
        )

    runner = web.AppRunner(peer_app(key, status))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, LOOPBACK, port).start()
    yield key, f"http://{LOOPBACK}:{port}/v1/lease", tamper
    await runner.cleanup()


async def ask(url: str, public_key: str) -> list[PeerAnswer]:
    listed = LeasePeer(pod="sfu-b", pod_uid="uid-b", url=url, public_key=public_key)
    async with aiohttp.ClientSession() as session:
        return await PeerChecker("sfu-a").ask(session, [listed])


async def test_a_genuine_answer_is_placed_on_the_asking_pods_clock(peer) -> None:
    key, url, _ = peer
    [got] = await ask(url, key.public)
    assert got.pod == "sfu-b" and got.term == 3 and got.acked_at is not None


async def test_an_answer_under_another_key_counts_as_none(peer) -> None:
    _, url, _ = peer
    assert await ask(url, PeerKey().public) == []


@pytest.mark.parametrize("lie", [{"nonce": "replayed-nonce-0123456789"}, {"pod": "sfu-z"}])
async def test_a_replayed_or_misattributed_answer_counts_as_none(peer, lie) -> None:
    key, url, tamper = peer
    tamper.update(lie)
    assert await ask(url, key.public) == []


async def test_an_unreachable_peer_counts_as_none() -> None:
    assert await ask(f"http://{LOOPBACK}:{free_port()}/v1/lease", PeerKey().public) == []
