"""Capacity reporter: POSTs the pod's CapacityReport to the control plane on a fixed
interval, hands each acknowledged ReportResponse to the SFU, and fences the pod when
reports stay unacknowledged for longer than the control plane's failover timeout.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pydantic
from prometheus_client import CollectorRegistry

from switchboard_api import metrics as m
from switchboard_api.contract import CapacityReport, ReportResponse

log = logging.getLogger(__name__)

BuildReport = Callable[[int, datetime], CapacityReport]
"""(sequence, sent_at) -> the report to send."""
HandleResponse = Callable[[ReportResponse, float], Awaitable[None]]
"""(acknowledged response, monotonic time its report was sent) -> applied."""


class CapacityReporter:
    """The report loop and the fencing watchdog that depends on its acknowledgements."""

    def __init__(
        self,
        *,
        url: str,
        interval_seconds: float,
        token_file: Path | None,
        failover_timeout_seconds: float,
        build_report: BuildReport,
        handle_response: HandleResponse,
        on_fenced: Callable[[], Awaitable[None]],
        registry: CollectorRegistry,
    ) -> None:
        self._url = url
        self._interval = interval_seconds
        self._token_file = token_file
        self.failover_timeout_seconds = failover_timeout_seconds
        self._build_report = build_report
        self._handle_response = handle_response
        self._on_fenced = on_fenced
        self._sequence = 0
        # Counting from start: a pod that never reaches its control plane fences too.
        self.last_acknowledged_at = time.monotonic()
        self._reports = m.counter(m.SFU_CAPACITY_REPORTS, registry)
        for outcome in ("acknowledged", "rejected", "failed"):
            self._reports.labels(outcome)
        # A timestamp, not an age (Prometheus practice): `time() - x` is the age.
        self._last_ack = m.gauge(m.SFU_CAPACITY_REPORT_LAST_ACK, registry)
        self._last_ack.set_to_current_time()

    @property
    def unacknowledged_for(self) -> float:
        return time.monotonic() - self.last_acknowledged_at

    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self._interval)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            next_at = time.monotonic()
            while True:
                await self._report_once(session)
                await self._check_fence()
                next_at = max(next_at + self._interval, time.monotonic())
                await asyncio.sleep(next_at - time.monotonic())

    async def _report_once(self, session: aiohttp.ClientSession) -> None:
        sequence = self._sequence
        self._sequence += 1
        sent_at = time.monotonic()
        report = self._build_report(sequence, datetime.now(UTC))
        headers = {}
        token = self._read_token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            async with session.post(self._url, json=report.to_wire(), headers=headers) as reply:
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
                response = ReportResponse.model_validate(await reply.json())
        except (aiohttp.ClientError, TimeoutError, ValueError, pydantic.ValidationError) as error:
            log.warning("capacity report failed sequence=%d error=%r", sequence, error)
            self._reports.labels("failed").inc()
            return
        if not response.acknowledged:
            log.warning("capacity report not acknowledged sequence=%d", sequence)
            self._reports.labels("rejected").inc()
            return
        self._reports.labels("acknowledged").inc()
        self.last_acknowledged_at = time.monotonic()
        self._last_ack.set_to_current_time()
        self.failover_timeout_seconds = response.failover_timeout_seconds
        await self._handle_response(response, sent_at)

    async def _check_fence(self) -> None:
        if self.unacknowledged_for > self.failover_timeout_seconds:
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
