"""The autoscaler: each Region's desired SFU pod count, from its demand in the capacity
picture, decided again on every change of that demand or capacity (no fixed poll).

It writes no pod itself: a changed decision triggers the Region reconciler, whose pass
creates, cordons, uncordons and deletes the pods (`logic/sfu_pod_plan.py`). A decision
that changes nothing costs nothing: capacity reports and idle Regions make no API write.
What must survive a restart is in the cluster (the pods and their cordon annotations).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import pydantic
from kubernetes_asyncio import client

from switchboard_api import labels as keys
from switchboard_api.region import Region
from switchboard_operator.cache import ClusterCache
from switchboard_operator.kit.workqueue import Result, WorkQueue
from switchboard_operator.kube import events
from switchboard_operator.logic.autoscaling import (
    Direction,
    ScalingDecision,
    ScalingMemory,
    ScalingSpec,
    decide,
    hold_started,
    scale_down_held_message,
    shown_differently,
)
from switchboard_operator.logic.capacity import CapacityPicture, unreported_pods
from switchboard_operator.metrics import OperatorMetrics

log = logging.getLogger(__name__)

NOT_RESTORED_RETRY_SECONDS = 1.0
"""Before placements are restored, demand is not known: look again this soon."""


class Autoscaler:
    def __init__(
        self,
        api: client.ApiClient,
        cache: ClusterCache,
        picture: CapacityPicture,
        *,
        region_changed: Callable[[str], None],
        ready: Callable[[], bool],
        metrics: OperatorMetrics | None = None,
    ) -> None:
        self._api = api
        self._cache = cache
        self._picture = picture
        self._region_changed = region_changed
        self._ready = ready
        self._metrics = metrics or OperatorMetrics()
        self._queue = WorkQueue(
            self.reconcile, "autoscaler", workers=1, observe=self._metrics.reconciles("Autoscaler")
        )
        self._memory: dict[str, ScalingMemory] = {}
        self._decisions: dict[str, ScalingDecision] = {}

    def start(self) -> None:
        self._queue.start()

    async def stop(self) -> None:
        await self._queue.stop()

    def demand_changed(self, region: str) -> None:
        """The Region's demand or capacity may have changed, or its spec did."""
        self._queue.trigger(region)

    def target(self, region: str) -> ScalingDecision | None:
        """The Region's latest decision (None until the first one)."""
        return self._decisions.get(region)

    async def reconcile(self, key: Any) -> Result | None:
        name = str(key)
        body = self._cache.region_body(name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            self._memory.pop(name, None)
            self._decisions.pop(name, None)
            return None
        if not self._ready():
            return Result(requeue_after=NOT_RESTORED_RETRY_SECONDS)
        try:
            region = Region.model_validate(body)
        except pydantic.ValidationError:
            return None  # The Region reconciler reports it.
        now = time.time()
        spec = ScalingSpec.of(region)
        previous = self._decisions.get(name)
        decision = decide(
            self._picture.region_demand(name),
            spec,
            self._memory.get(name, ScalingMemory()),
            now,
            current=self._serving(name),
            unreported=unreported_pods(self._picture, name, now),
        )
        self._memory[name] = decision.memory
        self._decisions[name] = decision
        self._metrics.region_at_max_replicas(name, decision.at_max)
        self._metrics.region_scale_down_held(name, decision.held_by_reports)
        log.debug(
            "autoscaler region=%s desired=%d needed=%d held_by_reports=%s",
            name,
            decision.desired,
            decision.needed,
            decision.held_by_reports,
        )
        if decision.direction is not None:
            reason = "ScaledUp" if decision.direction == Direction.UP else "ScaledDown"
            message = (
                f"SFU pods {previous.desired if previous else '?'} -> {decision.desired}: "
                f"{decision.reason}."
            )
            log.info("region scaled region=%s reason=%s message=%s", name, reason, message)
            self._metrics.scaled(name, decision.direction.value)
            await events.post(self._api, body, "Normal", reason, message)
        if decision.at_max and not (previous is not None and previous.at_max):
            await events.post(
                self._api,
                body,
                "Warning",
                "AtMaxReplicas",
                f"Demand needs {decision.needed} SFU pods, more than maxReplicas "
                f"{spec.max_replicas}: rooms may wait or go to farther Regions.",
            )
        if hold_started(previous, decision):
            message = scale_down_held_message(decision)
            log.info("region scale-down held region=%s message=%s", name, message)
            await events.post(self._api, body, "Warning", "ScaleDownHeld", message)
        if shown_differently(previous, decision):
            self._region_changed(name)
        if decision.recheck_at is not None:
            return Result(requeue_after=max(0.0, decision.recheck_at - now))
        return None

    def _serving(self, region: str) -> int:
        """SFU pods that exist and are not on their way out (cordoned, drained, deleted)."""
        count = 0
        for pod in self._cache.sfu_pods(region):
            meta = pod["metadata"]
            annotations = meta.get("annotations") or {}
            phase = (pod.get("status") or {}).get("phase")
            if (
                meta.get("deletionTimestamp")
                or phase in ("Failed", "Succeeded")
                or annotations.get(keys.CORDONED)
                or annotations.get(keys.DRAIN) == "true"
            ):
                continue
            count += 1
        return count
