"""The Region reconciler's loop: any event on a Region or what it owns triggers the Region's
key in a coalescing work queue, and a pass (`workloads.RegionPass`) recomputes the whole
desired state from the cache, writing only what differs; drift repair is the same code
path as creation. The Region's status follows its workloads and, every two seconds at
most, the capacity its SFU pods report.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import pydantic
from kubernetes_asyncio import client

from switchboard_api.region import Region
from switchboard_operator.cache import ClusterCache
from switchboard_operator.kit.ticker import Periodic
from switchboard_operator.kit.workqueue import Result, WorkQueue
from switchboard_operator.kube import bodies, events
from switchboard_operator.kube.client import patch_region_status
from switchboard_operator.logic import manifests
from switchboard_operator.logic.autoscaling import ScalingDecision, scale_down_held_message
from switchboard_operator.logic.capacity import CapacityPicture
from switchboard_operator.logic.join_key_ring import JoinKeyRing
from switchboard_operator.logic.observation import status_patch
from switchboard_operator.logic.region_namespaces import namespace_refusal
from switchboard_operator.logic.region_status import (
    Problem,
    RegionLoad,
    RegionObservation,
    Scaling,
    region_status,
)
from switchboard_operator.logic.sfu_pod_plan import SfuPodMemory
from switchboard_operator.logic.timestamps import format_time
from switchboard_operator.logic.turn_rotation import TurnAccess
from switchboard_operator.metrics import OperatorMetrics
from switchboard_operator.reconcilers.regions.pod_views import pod_view
from switchboard_operator.reconcilers.regions.sfu_trust import (
    confirm_missing_sfu_pods,
    sfu_pod_records,
)
from switchboard_operator.reconcilers.regions.workloads import RegionPass

log = logging.getLogger(__name__)

PROBLEM_RETRY_SECONDS = 15.0
LOAD_CHECK_SECONDS = 2.0
"""How often the capacity SFU pods report is summed per Region: a change (after rounding)
re-reconciles the Region, so its status follows the reports without a write per report."""


class RegionReconciler:
    def __init__(
        self,
        api: client.ApiClient,
        cache: ClusterCache,
        picture: CapacityPicture,
        *,
        context: manifests.OperatorContext,
        join_keys: JoinKeyRing,
        propagation_seconds: float,
        ready: Callable[[], bool],
        metrics: OperatorMetrics | None = None,
        scaling: Callable[[str], ScalingDecision | None] = lambda _: None,
        report_ca: Callable[[], str] = lambda: "",
        region_namespaces: frozenset[str] = frozenset(),
    ) -> None:
        """`report_ca`: the report receiver's CA certificate (PEM), published to SFU pods
        when the context names its ConfigMap. `region_namespaces`: the only namespaces
        Regions may use (empty: any)."""
        self._api = api
        self._cache = cache
        self._picture = picture
        self._context = context
        self._join_keys = join_keys
        self._propagation_seconds = propagation_seconds
        self._ready = ready
        self._scaling = scaling
        self._report_ca = report_ca
        self._region_namespaces = region_namespaces
        self._desired: dict[str, int] = {}
        metrics = metrics or OperatorMetrics()
        self._queue = WorkQueue(self.reconcile, "regions", observe=metrics.reconciles("Region"))
        self._degraded: dict[str, str] = {}
        self._turn_access: dict[str, TurnAccess] = {}
        self._sfu_pods: dict[str, SfuPodMemory] = {}
        self._loads: dict[str, RegionLoad] = {}
        self._load_check = Periodic(
            "region-loads", LOAD_CHECK_SECONDS, self.publish_loads, when=ready
        )

    def start(self) -> None:
        self._queue.start()
        self._load_check.start()

    async def stop(self) -> None:
        await self._load_check.stop()
        await self._queue.stop()

    def trigger(self, name: str) -> None:
        self._queue.trigger(name)

    def trigger_all(self) -> None:
        """Every Region, e.g. when the join-token keys they publish change."""
        for name in self._cache.regions():
            self._queue.trigger(name)

    def turn_access(self, region: str) -> TurnAccess | None:
        """TURN URIs and the minting secret of a Region, for the join API (never logged)."""
        return self._turn_access.get(region)

    async def publish_loads(self) -> None:
        """Recompute per-region aggregates; a change (after rounding) re-reconciles the
        Region."""
        now = time.time()
        for name in self._cache.regions():
            totals = self._picture.region_totals(name, now)
            if not totals.pods:
                continue
            # Capacity of the pods that are up (ready, not draining) — not of those with a
            # fresh report this instant, which flickers and would cost a write per flicker.
            capacity = sum(p.capacity for p in self._picture.region_pods(name) if p.open)
            load = RegionLoad(
                rooms=totals.rooms, capacity=round(capacity, 1), load=round(totals.load, 1)
            )
            if self._loads.get(name) != load:
                self._loads[name] = load
                self.trigger(name)

    async def reconcile(self, key: Any) -> Result | None:
        """One pass over one Region (the work queue calls it; never two at once for a key)."""
        name = str(key)
        body = self._cache.region_body(name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return None  # Garbage collection removes what it owned.
        try:
            region = Region.model_validate(body)
        except pydantic.ValidationError as error:
            problem = Problem("InvalidSpec", f"The Region cannot be read: {error}")
            await self._write_status(body, self._observation(body, None, problem, []))
            return Result(requeue_after=PROBLEM_RETRY_SECONDS)
        refused = namespace_refusal(region.spec.namespace, self._region_namespaces)
        if refused is not None:
            # Before any call in that namespace: the operator's RBAC does not reach it.
            await self._report(body, region, refused, [])
            return None  # only a spec change (a watch event) can lift it
        scaling = self._scaling(name)
        one = RegionPass(
            self._api,
            self._cache,
            body,
            region,
            context=self._context,
            join_keys=self._join_keys,
            hosts_rooms=self._picture.hosts_rooms,
            propagation_seconds=self._propagation_seconds,
            sfu_pods=self._sfu_pods.get(name, SfuPodMemory()),
            desired=None if scaling is None else scaling.desired,
            occupancy=self._picture.occupancy,
            cordon=self._picture.cordon,
            rooms_known=self._ready(),
            report_ca=self._report_ca,
        )
        try:
            problem, turn_uris = await one.run()
        finally:
            if one.desired is not None:
                self._desired[name] = one.desired
            # Even a pass that failed half-way leaves what it did: the pods it created,
            # the crashes it counted, the TURN access it converged.
            self._sfu_pods[name] = one.sfu_pods
            if one.turn_converged and one.turn_access is not None:
                self._turn_access[name] = one.turn_access
            elif one.turn_converged:
                self._turn_access.pop(name, None)
        await self._report(body, region, problem, turn_uris)
        return Result(requeue_after=PROBLEM_RETRY_SECONDS if problem else one.requeue)

    async def _report(
        self, body: Mapping[str, Any], region: Region, problem: Problem | None, turn_uris: list[str]
    ) -> None:
        name = body["metadata"]["name"]
        previous = self._degraded.get(name)
        if problem is not None and previous != problem.reason:
            await self._event(body, "Warning", problem.reason, problem.message)
        if problem is None and previous is not None:
            await self._event(
                body, "Normal", "Recovered", "The Region's references are valid again."
            )
        if problem is None:
            self._degraded.pop(name, None)
        else:
            self._degraded[name] = problem.reason
        await confirm_missing_sfu_pods(self._api, self._cache, name, region.spec.namespace)
        await self._write_status(body, self._observation(body, region, problem, turn_uris))

    async def _event(self, body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        name = body["metadata"]["name"]
        log.info("region event region=%s reason=%s message=%s", name, reason, message)
        await events.post(self._api, body, type_, reason, message)

    def _observation(
        self,
        body: Mapping[str, Any],
        region: Region | None,
        problem: Problem | None,
        turn_uris: list[str],
    ) -> RegionObservation:
        name = body["metadata"]["name"]
        pods = [pod_view(p, self._picture.hosts_rooms) for p in self._cache.sfu_pods(name)]
        live = [p for p in pods if not p.deleting and not p.terminated]
        serving = [p for p in live if not p.draining and not p.cordoned]
        scaling = self._scaling(name) if region is not None else None
        desired = self._desired.get(name, region.spec.sfu.min_replicas if region else 0)
        current_hash = ""
        if region is not None and problem is None:
            current_hash = manifests.pod_template_hash(region, self._context, turn_uris=turn_uris)
        turn_enabled = bool(region and region.spec.turn.enabled)
        turn_pods = self._cache.turn_pods(name)
        return RegionObservation(
            generation=body["metadata"].get("generation"),
            sfu_desired=desired,
            sfu_current=len(serving),
            sfu_ready=sum(p.ready for p in serving),
            sfu_draining=sum(p.draining or p.cordoned for p in live),
            sfu_outdated=sum(p.template_hash != current_hash for p in live) if current_hash else 0,
            turn_enabled=turn_enabled,
            turn_desired=region.spec.turn.replicas if region and turn_enabled else 0,
            turn_ready=sum(
                bodies.pod_ready(p) for p in turn_pods if not p["metadata"].get("deletionTimestamp")
            ),
            turn_uris=turn_uris,
            problem=problem,
            totals=self._loads.get(name),
            sfu_pods=sfu_pod_records(self._cache, name, time.time()),
            scaling=None
            if scaling is None or region is None or not region.spec.sfu.autoscaling.enabled
            else Scaling(
                at_max=scaling.at_max,
                needed=scaling.needed,
                max_replicas=region.spec.sfu.max_replicas,
                last_scale_time=None
                if scaling.memory.last_scale_time is None
                else format_time(scaling.memory.last_scale_time),
                last_scale_reason=scaling.memory.last_scale_reason,
                held_by_reports=scale_down_held_message(scaling)
                if scaling.held_by_reports
                else None,
            ),
        )

    async def _write_status(self, body: Mapping[str, Any], observation: RegionObservation) -> None:
        current = body.get("status") or {}
        desired = region_status(
            observation, current.get("conditions") or [], format_time(time.time())
        )
        patch = status_patch(current, desired)
        if patch:
            await patch_region_status(self._api, body["metadata"]["name"], patch)
