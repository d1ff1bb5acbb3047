"""Capacity reporter: POSTs the pod's CapacityReport to the control plane on a fixed
interval, hands each acknowledged ReportResponse to the SFU, and watches the lease those
acknowledgements grant.

A control plane that grants leases (`leaseSeconds`) is obeyed by the lease protocol: when
the lease ends the pod asks its peers, fences if the control plane is evidently up without
it, and otherwise keeps every room (docs/contract.md, "Leases"). Without a lease the pod
fences once reports stay unacknowledged beyond `failoverTimeoutSeconds`, as before.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pydantic
from prometheus_client import CollectorRegistry

from switchboard_api import metrics as m
from switchboard_api.contract import (
    LAST_REPORT_WAIT_SECONDS,
    PEER_CHECK_INTERVAL_SECONDS,
    CapacityReport,
    PeerEndpoint,
    ReportResponse,
)
from switchboard_sfu.lease import LeaseState, Verdict, judge
from switchboard_sfu.peers import PeerChecker
from switchboard_sfu.report_trust import ReportTrust

log = logging.getLogger(__name__)

BuildReport = Callable[[int, datetime], CapacityReport]
"""(sequence, sent_at) -> the report to send."""
HandleResponse = Callable[[ReportResponse, float], Awaitable[None]]
"""(acknowledged response, monotonic time its report was sent) -> applied."""


class CapacityReporter:
    """The report loop, and the lease watchdog that depends on its acknowledgements."""

    def __init__(
        self,
        *,
        url: str,
        interval_seconds: float,
        token_file: Path | None,
        lease: LeaseState,
        build_report: BuildReport,
        handle_response: HandleResponse,
        on_fenced: Callable[[], Awaitable[None]],
        is_fenced: Callable[[], bool],
        registry: CollectorRegistry,
        peer: PeerEndpoint | None = None,
        peer_checker: PeerChecker | None = None,
        source_address: str | None = None,
        ca_file: Path | None = None,
        previous_contract: bool = False,
    ) -> None:
        """`source_address` (the pod IP) is the address reports and lease checks leave
        from: a pod's only address in a cluster, and one of many on a machine that runs
        pods as local processes. `ca_file`: the CA the control plane's certificate must
        chain to (the one it publishes), re-read when it changes; None: the trust store.
        `previous_contract` (tests only): speak the contract as before the lease protocol,
        which had none of its fields: old SFU pods in a mixed-version rolling update."""
        self._url = url
        self._interval = interval_seconds
        self._token_file = token_file
        self.lease = lease
        self._build_report = build_report
        self._handle_response = handle_response
        self._on_fenced = on_fenced
        self._is_fenced = is_fenced
        self._peer = peer
        self._checker = peer_checker
        self._source = source_address
        self._trust = ReportTrust(ca_file) if ca_file is not None else None
        self._previous_contract = previous_contract
        self._sequence = 0
        self._settled_through = -1
        """Every report up to this sequence has had its answer, or failed."""
        self._settled = asyncio.Event()
        self._report_now = asyncio.Event()
        """Set by the lease check: send the next report at once, not at its time."""
        self._holding_over = False
        self._reports = m.counter(m.SFU_CAPACITY_REPORTS, registry)
        for outcome in ("acknowledged", "rejected", "failed"):
            self._reports.labels(outcome)
        self._checks = m.counter(m.SFU_PEER_CHECKS, registry)
        for verdict in Verdict:
            self._checks.labels(str(verdict))
        # A timestamp, not an age (Prometheus practice): `time() - x` is the age. Counting
        # from start: a pod that never reaches its control plane shows it too.
        self._last_ack = m.gauge(m.SFU_CAPACITY_REPORT_LAST_ACK, registry)
        self._last_ack.set_to_current_time()

    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self._interval)
        local = (self._source, 0) if self._source else None
        # No DNS cache: the report URL names the control plane's Service, which follows
        # the leader; a cached address would send reports to a former leader for seconds.
        connector = aiohttp.TCPConnector(local_addr=local, use_dns_cache=False)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            watchdog = asyncio.ensure_future(self._watch(session))
            try:
                next_at = time.monotonic()
                while True:
                    await self._report_once(session)
                    next_at = max(next_at + self._interval, time.monotonic())
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(
                            self._report_now.wait(), max(0.0, next_at - time.monotonic())
                        )
                    if self._report_now.is_set():
                        self._report_now.clear()
                        next_at = time.monotonic()
            finally:
                watchdog.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watchdog

    async def _report_once(self, session: aiohttp.ClientSession) -> None:
        sequence = self._sequence
        self._sequence += 1
        try:
            await self._send_report(session, sequence)
        finally:
            self._settled_through = max(self._settled_through, sequence)
            self._settled.set()

    async def _send_report(self, session: aiohttp.ClientSession, sequence: int) -> None:
        sent_at = time.monotonic()
        report = self._build_report(sequence, datetime.now(UTC))
        if not self._previous_contract:
            report = report.model_copy(
                update={
                    "term": self.lease.term,
                    "acked_sequence": self.lease.last.sequence if self.lease.last else None,
                    "peer": self._peer,
                }
            )
        headers = {"Content-Type": "application/json"}
        token = self._read_token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            tls = True if self._trust is None else self._trust.context()
            async with session.post(
                self._url, data=report.to_wire_json(), headers=headers, ssl=tls
            ) as reply:
                if reply.status != 200:
                    body = (await reply.text())[:200]
                    log.warning(
                        "capacity report refused sequence=%d status=%d body=%r",
                        sequence,
                        reply.status,
                        body,
                    )
                    self._reports.labels("failed").inc()
                    return
                response = ReportResponse.model_validate_json(await reply.read())
                if self._previous_contract:
                    # Fields an SFU of that version does not know: it ignores them.
                    response = response.model_copy(
                        update={"term": None, "lease_seconds": None, "peers": []}
                    )
        except (
            aiohttp.ClientError,
            TimeoutError,
            ValueError,
            OSError,
            pydantic.ValidationError,
        ) as error:
            log.warning("capacity report failed sequence=%d error=%r", sequence, error)
            self._reports.labels("failed").inc()
            return
        if not response.acknowledged:
            log.warning("capacity report not acknowledged sequence=%d", sequence)
            self._reports.labels("rejected").inc()
            return
        refusal = self.lease.refuses(response, sequence)
        if refusal is not None:
            log.warning("acknowledgement not applied sequence=%d reason=%s", sequence, refusal)
            self._reports.labels("rejected").inc()
            return
        self._reports.labels("acknowledged").inc()
        self.lease.apply(response, sequence, sent_at, time.monotonic())
        self._last_ack.set_to_current_time()
        if self._holding_over:
            log.info("lease renewed: the control plane is back term=%s", response.term)
            self._holding_over = False
        await self._handle_response(response, sent_at)

    async def _watch(self, session: aiohttp.ClientSession) -> None:
        # Checks start at a fixed rate, however long one takes (at most the query
        # timeout): the control plane's silence margin counts on it.
        period = min(self._interval, PEER_CHECK_INTERVAL_SECONDS)
        next_at = time.monotonic()
        while True:
            next_at = max(next_at + period, time.monotonic())
            await asyncio.sleep(next_at - time.monotonic())
            try:
                await self.check_lease(session)
            except Exception:  # the watchdog must outlive any one check
                log.exception("lease check failed")

    async def check_lease(self, session: aiohttp.ClientSession) -> None:
        """Fence, or keep serving, according to the lease (see the module docstring)."""
        now = time.monotonic()
        lease = self.lease
        if self._is_fenced() or not lease.expired(now):
            return
        lease_end = lease.lease_end
        if lease_end is None or lease.last is None:
            await self._fence("reports unacknowledged beyond the failover timeout")
            return
        answers = []
        if self._checker is not None and lease.last.peers:
            answers = await self._checker.ask(session, lease.last.peers)
        if self._is_fenced() or not lease.expired(time.monotonic()):
            return  # an acknowledgement arrived while the peers were asked
        lease.saw_terms(answers, time.monotonic())
        judgement = judge(answers, lease_end, lease.term, lease.newer_term_seen_at)
        if judgement.verdict is Verdict.FENCE:
            await self._own_last_report()
            if self._is_fenced() or not lease.expired(time.monotonic()):
                return  # its own report was acknowledged meanwhile
        self._checks.labels(str(judgement.verdict)).inc()
        if judgement.verdict is Verdict.FENCE:
            await self._fence(f"lease ended and {judgement.reason}")
        elif not self._holding_over:
            self._holding_over = True
            log.warning(
                "lease ended; serving on: %s unacknowledged_seconds=%.1f",
                judgement.reason,
                lease.unacknowledged_for(now),
            )

    @property
    def _in_flight(self) -> int | None:
        """The sequence of the report on its way, if one is (one at a time, in order)."""
        newest = self._sequence - 1
        return newest if self._settled_through < newest else None

    async def _own_last_report(self) -> None:
        """Before fencing: wait up to LAST_REPORT_WAIT_SECONDS for a report of this pod's
        own to be acknowledged: the one on its way, and if that one fails, one sent at once
        (at most those two). When the control plane comes back after an outage (in the same
        term: it was away for everyone), it acknowledges the pods one by one as their
        reports arrive; a peer acknowledged just before this pod's turn is no sign that this
        pod alone is cut off, and fencing on it would end every call on the pod for nothing.
        The control plane's silence margin holds this wait (docs/contract.md, S3)."""
        deadline = time.monotonic() + LAST_REPORT_WAIT_SECONDS
        awaited = self._in_flight
        for _ in range(2):
            if awaited is None:
                awaited = self._sequence
                self._report_now.set()
            while self._settled_through < awaited and (left := deadline - time.monotonic()) > 0:
                self._settled.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._settled.wait(), left)
            if not self.lease.expired(time.monotonic()) or time.monotonic() >= deadline:
                return
            awaited = None

    async def _fence(self, reason: str) -> None:
        log.warning("fencing: %s", reason)
        self._holding_over = False
        self.lease.fenced(self._sequence - 1)
        await self._on_fenced()

    def _read_token(self) -> str | None:
        # Re-read every time: the kubelet rotates projected ServiceAccount tokens.
        if self._token_file is None:
            return None
        try:
            return self._token_file.read_text().strip() or None
        except OSError as error:
            log.warning("report token unreadable path=%s error=%s", self._token_file, error)
            return None
