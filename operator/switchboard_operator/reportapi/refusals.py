"""Refused capacity reports: counted by reason, and an Event on each untrusted pod.

A pod that is not one the operator created but reports anyway is either a mistake or an
attempt to steer rooms; whoever runs the cluster must learn of it without reading logs:
`switchboard_capacity_reports_refused_total{reason="untrusted_pod"}` and one Warning
Event `CapacityReportRefused` on the pod.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

from switchboard_operator.logic.reportauth import ReporterIdentity
from switchboard_operator.metrics import OperatorMetrics

log = logging.getLogger(__name__)

UNTRUSTED: Final = "untrusted_pod"
_ANNOUNCED_MEMORY: Final = 4096

EventPoster = Callable[[Mapping[str, Any], str, str, str], Awaitable[None]]
"""Posts an Event (object, type, reason, message); never raises."""


class ReportRefusals:
    def __init__(self, metrics: OperatorMetrics, post_event: EventPoster | None = None) -> None:
        self._metrics = metrics
        self._post_event = post_event
        self._announced: OrderedDict[str, None] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()

    def refused(self, reason: str) -> None:
        self._metrics.report_refused(reason)

    def untrusted(self, identity: ReporterIdentity, message: str) -> None:
        """A report from a pod the operator did not create (counted by `refused`); the
        first one of each pod becomes an Event on it."""
        if self._post_event is None or identity.pod_uid in self._announced:
            return
        self._announced[identity.pod_uid] = None
        while len(self._announced) > _ANNOUNCED_MEMORY:
            self._announced.popitem(last=False)
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": identity.pod_name,
                "namespace": identity.namespace,
                "uid": identity.pod_uid,
            },
        }
        task = asyncio.ensure_future(
            self._post_event(pod, "Warning", "CapacityReportRefused", message)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
