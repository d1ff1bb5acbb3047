"""The capacity reporter's last report before fencing: a pod whose lease ended and whose
peer check shows a peer acknowledged since sends a report of its own first, and fences only
if that is not acknowledged. When the control plane comes back after an outage in the same
term, it acknowledges the pods one by one; the one whose turn is next must not fence (CI
saw a pod fence 3 ms before its own acknowledgement arrived)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from fixtures.sfu_harness import ReportReceiver
from fixtures.waiting import eventually
from switchboard_api.contract import CapacityReport, LeasePeer
from switchboard_sfu.lease import LeaseState, PeerAnswer
from switchboard_sfu.peers import PeerChecker
from switchboard_sfu.reporter import CapacityReporter

POD = "sfu-a"
PEER = LeasePeer(pod="sfu-b", podUID="uid-b", url="http://127.0.0.1:9/v1/lease", publicKey="unused")
LEASE_SECONDS = 0.5
REPORT_INTERVAL_SECONDS = 60.0
"""Longer than any test: every report after the first is one the lease check sent."""
WAIT_SECONDS = 30.0


class PeerJustAcknowledged(PeerChecker):
    """Every peer check reaches one peer, acknowledged a moment ago in the pod's own term."""

    def __init__(self) -> None:
        super().__init__(POD)

    async def ask(
        self, session: aiohttp.ClientSession, peers: Sequence[LeasePeer]
    ) -> list[PeerAnswer]:
        return [PeerAnswer(pod=PEER.pod, term=1, acked_at=time.monotonic(), fenced=False)]


def build_report(sequence: int, sent_at: datetime) -> CapacityReport:
    return CapacityReport(
        pod_name=POD,
        pod_uid="uid-a",
        namespace="media",
        region="eu",
        sequence=sequence,
        sent_at=sent_at,
        capacity=100,
        load=0,
        cpu_cores=0,
        participants=0,
        published_tracks=0,
        forwarded_tracks=0,
        bitrate_in_bps=0,
        bitrate_out_bps=0,
    )


@dataclass
class Pod:
    reporter: CapacityReporter
    fenced_at_report: list[int] = field(default_factory=list)
    """How many reports the receiver had when the pod fenced."""


@pytest.fixture
async def reporting_pod(receiver: ReportReceiver) -> AsyncIterator[Pod]:
    receiver.term = 1
    receiver.lease_seconds = LEASE_SECONDS
    receiver.peers_of = lambda pod: [PEER]  # type: ignore[method-assign]
    fenced = asyncio.Event()

    async def on_fenced() -> None:
        pod.fenced_at_report.append(len(receiver.reports))
        fenced.set()

    async def handle_response(*_: object) -> None:
        return None

    reporter = CapacityReporter(
        url=receiver.url,
        interval_seconds=REPORT_INTERVAL_SECONDS,
        token_file=None,
        lease=LeaseState(6.0, started_at=time.monotonic()),
        build_report=build_report,
        handle_response=handle_response,
        on_fenced=on_fenced,
        is_fenced=fenced.is_set,
        registry=CollectorRegistry(),
        peer_checker=PeerJustAcknowledged(),
    )
    pod = Pod(reporter)
    running = asyncio.ensure_future(reporter.run())
    try:
        yield pod
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


async def test_a_pod_whose_own_report_is_acknowledged_does_not_fence(
    reporting_pod: Pod, receiver: ReportReceiver
) -> None:
    pod = reporting_pod
    # Each time the lease ends, the peer check shows the peer acknowledged since: the pod
    # reports at once, is acknowledged, and keeps serving. Three such rounds, no fence.
    await eventually(lambda: len(receiver.reports) >= 4, WAIT_SECONDS, "three last reports")
    assert pod.fenced_at_report == []
    last = pod.reporter.lease.last
    assert last is not None and last.sequence >= 3  # the last reports renewed the lease


async def test_a_pod_whose_own_report_fails_fences(
    reporting_pod: Pod, receiver: ReportReceiver
) -> None:
    pod = reporting_pod
    await eventually(lambda: pod.reporter.lease.last is not None, WAIT_SECONDS, "a first lease")
    receiver.status = 503  # the control plane answers the peer, not this pod
    await eventually(lambda: pod.fenced_at_report, WAIT_SECONDS, "the pod to fence")
    # It fenced only after the report it sent once its lease had ended was refused.
    assert pod.fenced_at_report[0] >= 2
