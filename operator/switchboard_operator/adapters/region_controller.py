"""The Region reconciler: a Region becomes SFU pods, TURN, Services, PDBs, policies, kept in shape.

kopf indexes mirror the Region and every object it owns (watched, never polled); any event
on them triggers the Region's key in a coalescing work queue, and `reconcile` recomputes
the whole desired state from those indexes, writing only what differs. Drift repair is
therefore the same code path as creation.
"""

from __future__ import annotations

import logging
import secrets
import string
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf
import pydantic
from kubernetes_asyncio import client

from switchboard_api import labels as keys
from switchboard_api.region import Region
from switchboard_api.resources import GROUP, REGION, VERSION
from switchboard_operator.adapters import events, kube, objects
from switchboard_operator.adapters.joinapi.port import TurnAccess
from switchboard_operator.adapters.joinkeys import JoinKeys
from switchboard_operator.adapters.workqueue import Result, WorkQueue
from switchboard_operator.logic import manifests
from switchboard_operator.logic.drift import drifted_paths, is_subset
from switchboard_operator.logic.observation import status_patch
from switchboard_operator.logic.region_status import (
    Problem,
    RegionLoad,
    RegionObservation,
    region_status,
)
from switchboard_operator.logic.sfu_pods import CrashBackoff, SfuPodView, plan_sfu_pods
from switchboard_operator.logic.turn_rotation import ROTATE_ANNOTATION, step
from switchboard_turn.coturn import TurnSecrets

log = logging.getLogger(__name__)

MANAGED = {keys.APP_MANAGED_BY: keys.MANAGED_BY_VALUE}
SFU_PODS = {**MANAGED, keys.APP_COMPONENT: keys.COMPONENT_SFU}
OWNED_KINDS = (
    "serviceaccounts",
    "services",
    "deployments",
    "poddisruptionbudgets",
    "networkpolicies",
)
ROTATION_STARTED_AT = "switchboard.dev/turn-rotation-requested"
"""TURN Secret annotation: the rotation request value already acted upon."""
RECHECK_SECONDS = 300.0
"""Unwatched inputs (Secrets, the namespace, the keys ConfigMap) are re-read this often."""
PROBLEM_RETRY_SECONDS = 15.0
UNOBSERVED_POD_SECONDS = 300.0
"""How long a created SFU pod the Pod watch has not shown yet stands in for itself: as
client-go's expectations, longer than a stalled watch takes to be noticed and restarted."""


@dataclass
class RegionRuntime:
    """What the reconciler shares across calls; lives in kopf's memo."""

    api: client.ApiClient
    ctx: manifests.OperatorContext
    join_keys: JoinKeys
    propagation_seconds: float = 90.0
    queue: WorkQueue | None = None
    indexes: dict[str, kopf.Index[Any, Any]] = field(default_factory=dict)
    degraded: dict[str, str] = field(default_factory=dict)
    hosts_rooms: Callable[[str, str], bool] = lambda _pod, _uid: False
    """Whether the pod `<namespace>/<name>` with that UID has rooms placed on it (the
    scheduler's in-memory picture, which leads the pod's hosts-rooms label)."""
    region_load: Callable[[str], RegionLoad | None] = lambda _region: None
    """Rooms, capacity and load of a region from the scheduler's picture."""
    turn_access: dict[str, TurnAccess] = field(default_factory=dict)
    """Per Region: TURN URIs and the minting secret, for the join API (never logged)."""
    crashes: dict[str, CrashBackoff] = field(default_factory=dict)
    """Per Region: SFU pods that failed, so replacements back off instead of looping."""
    unobserved_pods: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per Region: SFU pods created (name -> when) that the Pod watch has not shown yet. A
    pass that runs before the watch delivers them must not create them again (what
    ReplicaSet's controller calls expectations)."""


def _runtime(memo: kopf.Memo) -> RegionRuntime:
    runtime: RegionRuntime = memo["regions"]
    return runtime


# -- indexes: the reconciler's view of the cluster ------------------------------------


@kopf.index(GROUP, VERSION, REGION.plural)
async def region_bodies(name: str, body: kopf.Body, **_: Any) -> dict[str, dict[str, Any]]:
    return {name: kube.snapshot(body)}


@kopf.index("pods", labels=SFU_PODS)
async def region_sfu_pods(labels: kopf.Labels, body: kopf.Body, **_: Any) -> dict[str, Any] | None:
    region = labels.get(keys.REGION)
    return {region: kube.snapshot(body)} if region else None


@kopf.index("pods", labels={**MANAGED, keys.APP_COMPONENT: keys.COMPONENT_TURN})
async def region_turn_pods(labels: kopf.Labels, body: kopf.Body, **_: Any) -> dict[str, Any] | None:
    region = labels.get(keys.REGION)
    return {region: kube.snapshot(body)} if region else None


def _owned_index(plural: str) -> None:
    async def index(labels: kopf.Labels, body: kopf.Body, **_: Any) -> dict[str, Any] | None:
        region = labels.get(keys.REGION)
        return {region: kube.snapshot(body)} if region else None

    index.__name__ = f"region_owned_{plural}"
    kopf.index(plural, labels=MANAGED, id=f"region_owned_{plural}")(index)


for _plural in OWNED_KINDS:
    _owned_index(_plural)

INDEX_NAMES = (
    "region_bodies",
    "region_sfu_pods",
    "region_turn_pods",
    *(f"region_owned_{p}" for p in OWNED_KINDS),
)


def _capture(runtime: RegionRuntime, kwargs: Mapping[str, Any]) -> None:
    if not runtime.indexes:
        runtime.indexes = {name: kwargs[name] for name in INDEX_NAMES}


# -- triggers: any event on a Region or what it owns ----------------------------------


@kopf.on.event(GROUP, VERSION, REGION.plural)
async def region_changed(name: str, memo: kopf.Memo, **kwargs: Any) -> None:
    runtime = _runtime(memo)
    _capture(runtime, kwargs)
    assert runtime.queue is not None
    runtime.queue.trigger(name)


def _owned_trigger(plural: str, selector: Mapping[str, str]) -> None:
    async def trigger(labels: kopf.Labels, memo: kopf.Memo, **kwargs: Any) -> None:
        runtime = _runtime(memo)
        _capture(runtime, kwargs)
        region = labels.get(keys.REGION)
        if region and runtime.queue is not None:
            runtime.queue.trigger(region)

    kopf.on.event(plural, labels=dict(selector), id=f"trigger_region_from_{plural}")(trigger)


for _plural in (*OWNED_KINDS, "pods"):
    _owned_trigger(_plural, MANAGED)


# -- reconcile -------------------------------------------------------------------------


def _values(index: kopf.Index[Any, Any], key: str) -> list[dict[str, Any]]:
    store = index.get(key)
    return list(store) if store is not None else []


async def reconcile(runtime: RegionRuntime, name: str) -> Result | None:
    bodies = _values(runtime.indexes["region_bodies"], name)
    if not bodies or bodies[0]["metadata"].get("deletionTimestamp"):
        return None  # Garbage collection removes what it owned.
    body = bodies[0]
    try:
        region = Region.model_validate(body)
    except pydantic.ValidationError as error:
        problem = Problem("InvalidSpec", f"The Region cannot be read: {error}")
        await _write_status(runtime, body, _observation(runtime, body, None, problem, []))
        return Result(requeue_after=PROBLEM_RETRY_SECONDS)
    reconciler = _RegionReconcile(runtime, body, region)
    return await reconciler.run()


class _RegionReconcile:
    """One pass over one Region (a fresh object per pass: no state survives between them)."""

    def __init__(self, runtime: RegionRuntime, body: dict[str, Any], region: Region) -> None:
        self.runtime = runtime
        self.api = runtime.api
        self.body = body
        self.region = region
        self.name = region.metadata.name or ""
        self.namespace = region.spec.namespace
        self.requeue: float = RECHECK_SECONDS

    def _owned(self) -> dict[tuple[str, str], dict[str, Any]]:
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for plural in OWNED_KINDS:
            for obj in _values(self.runtime.indexes[f"region_owned_{plural}"], self.name):
                found[(obj["kind"], obj["metadata"]["name"])] = obj
        return found

    async def run(self) -> Result:
        problem = await self._check_references()
        turn_uris: list[str] = []
        if problem is None:
            try:
                turn_uris = await self._converge_workloads()
            except manifests.ManifestError as error:
                problem = Problem(error.reason, str(error))
        await self._report(problem, turn_uris)
        return Result(requeue_after=PROBLEM_RETRY_SECONDS if problem else self.requeue)

    async def _check_references(self) -> Problem | None:
        if await objects.get(self.api, "Namespace", self.namespace) is None:
            return Problem(
                "NamespaceMissing",
                f"Namespace {self.namespace!r} (spec.namespace) does not exist; create it or "
                "change spec.namespace.",
            )
        spec = self.region.spec
        references = [("spec.sfu.tlsSecretName", spec.sfu.tls_secret_name)]
        if spec.turn.enabled:
            references.append(("spec.turn.tlsSecretName", spec.turn.tls_secret_name))
        for path, tls in references:
            if tls and await objects.get(self.api, "Secret", tls, self.namespace) is None:
                return Problem(
                    "TLSSecretMissing",
                    f"Secret {self.namespace}/{tls} ({path}) does not exist; "
                    "create a kubernetes.io/tls Secret with that name.",
                )
        return None

    async def _converge_workloads(self) -> list[str]:
        turn_secrets, rotated_at = await self._turn_secrets()
        desired = manifests.desired_objects(
            self.region,
            self.runtime.ctx,
            turn_secrets=turn_secrets,
            turn_secret_rotated_at=rotated_at,
        )
        owned = self._owned()
        wanted: set[tuple[str, str]] = set()
        for manifest in desired:
            key = (manifest["kind"], manifest["metadata"]["name"])
            wanted.add(key)
            observed = owned.get(key) if manifest["kind"] != "Secret" else self._turn_secret_body
            await self._converge(manifest, observed)
        for (kind, obj_name), obj in owned.items():
            if (kind, obj_name) not in wanted:
                await objects.delete(
                    self.api,
                    kind,
                    obj_name,
                    obj["metadata"]["namespace"],
                    uid=obj["metadata"]["uid"],
                )
                await self._event(
                    "Normal", "Removed", f"Deleted {kind} {obj_name}: no longer wanted."
                )
        await self._publish_join_keys()
        turn_uris = self._turn_uris()
        if turn_secrets is not None:
            self.runtime.turn_access[self.name] = TurnAccess(
                uris=tuple(turn_uris),
                secret=turn_secrets.minted.encode(),
                credential_ttl_seconds=self.region.spec.turn.credential_ttl_seconds,
            )
        else:
            self.runtime.turn_access.pop(self.name, None)
        await self._converge_sfu_pods(turn_uris)
        return turn_uris

    async def _converge(self, manifest: dict[str, Any], observed: dict[str, Any] | None) -> None:
        kind, obj_name = manifest["kind"], manifest["metadata"]["name"]
        if observed is None:
            await objects.apply(self.api, manifest)
            await self._event("Normal", "Created", f"Created {kind} {self.namespace}/{obj_name}.")
        elif not is_subset(manifest, observed):
            paths = drifted_paths(manifest, observed)
            await objects.apply(self.api, manifest)
            await self._event(
                "Normal",
                "DriftRepaired",
                f"Restored {kind} {self.namespace}/{obj_name}: {', '.join(paths)[:300]}.",
            )

    async def _turn_secrets(self) -> tuple[TurnSecrets | None, str | None]:
        self._turn_secret_body: dict[str, Any] | None = None
        if not self.region.spec.turn.enabled:
            return None, None
        name = manifests.turn_secret_name(self.region)
        existing = await objects.get(self.api, "Secret", name, self.namespace)
        self._turn_secret_body = existing
        if existing is None:
            return TurnSecrets(minted=_new_secret()), None
        current = manifests.turn_secrets_from_secret(existing)
        annotations = existing["metadata"].get("annotations") or {}
        rotated_at = annotations.get(manifests.TURN_SECRET_ROTATED_AT)
        requested_value = (self.region.metadata.annotations or {}).get(ROTATE_ANNOTATION)
        requested = bool(requested_value) and requested_value != annotations.get(
            ROTATION_STARTED_AT
        )
        started = kube.parse_time(rotated_at)
        result = step(
            current,
            requested=requested,
            new_secret=_new_secret(),
            phase_started_at=started,
            now=time.time(),
            propagation_seconds=self.runtime.propagation_seconds,
            credential_ttl_seconds=float(self.region.spec.turn.credential_ttl_seconds),
        )
        if result.requeue_after is not None:
            self.requeue = min(self.requeue, result.requeue_after)
        if result.event:
            await self._event("Normal", "TurnSecretRotation", result.event)
        new_rotated_at = (
            None if result.phase_started_at is None else kube.format_time(result.phase_started_at)
        )
        if requested and result.changed and requested_value:
            # Remember which request was served, so it is not served twice.
            await objects.patch_merge(
                self.api,
                "Secret",
                name,
                self.namespace,
                {"metadata": {"annotations": {ROTATION_STARTED_AT: requested_value}}},
            )
            existing["metadata"].setdefault("annotations", {})[ROTATION_STARTED_AT] = (
                requested_value
            )
        return result.secrets, new_rotated_at

    async def _publish_join_keys(self) -> None:
        name = self.runtime.ctx.join_public_keys_configmap
        desired = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                "labels": {**MANAGED, keys.REGION: self.name},
            },
            "data": self.runtime.join_keys.public_pems(),
        }
        observed = await objects.get(self.api, "ConfigMap", name, self.namespace)
        if observed is None or not is_subset(desired, observed):
            await objects.apply(self.api, desired)

    def _turn_uris(self) -> list[str]:
        if not self.region.spec.turn.enabled:
            return []
        service = self._owned().get(
            ("Service", manifests.workload_name(self.region, manifests.Component.TURN))
        )
        ingress = ((service or {}).get("status") or {}).get("loadBalancer", {}).get("ingress")
        if ingress:
            host = ingress[0].get("hostname") or ingress[0].get("ip")
        else:
            svc = manifests.workload_name(self.region, manifests.Component.TURN)
            host = f"{svc}.{self.namespace}.svc"
        return manifests.turn_uris(self.region, host)

    async def _converge_sfu_pods(self, turn_uris: list[str]) -> None:
        ctx = self.runtime.ctx
        current_hash = manifests.pod_template_hash(self.region, ctx, turn_uris=turn_uris)
        pods = _values(self.runtime.indexes["region_sfu_pods"], self.name)
        views = [_pod_view(p, self.runtime.hosts_rooms) for p in pods]
        sfu = self.region.spec.sfu
        desired = max(sfu.min_replicas, min(sfu.max_replicas, sfu.min_replicas))
        actions = plan_sfu_pods(views, desired, current_hash)
        now = time.time()
        backoff = self.runtime.crashes.get(self.name, CrashBackoff())
        for pod_name in actions.crashed:
            backoff = backoff.failed(now)
            await self._event(
                "Warning",
                "SfuPodFailed",
                f"SFU pod {pod_name} ended ({_exit_reason(by_name_of(pods, pod_name))}); "
                f"replacing it in {backoff.waiting(now):.0f}s.",
            )
        self.runtime.crashes[self.name] = backoff
        observed = {p["metadata"]["name"] for p in pods}
        unobserved = {
            name: at
            for name, at in self.runtime.unobserved_pods.get(self.name, {}).items()
            if name not in observed and now - at < UNOBSERVED_POD_SECONDS
        }
        self.runtime.unobserved_pods[self.name] = unobserved
        create = max(0, actions.create - len(unobserved))
        if create and backoff.waiting(now) > 0:
            self.requeue = min(self.requeue, backoff.waiting(now))
            create = 0
        for _ in range(create):
            pod = manifests.sfu_pod(self.region, ctx, _suffix(), turn_uris=turn_uris)
            await objects.create(self.api, pod)
            unobserved[pod["metadata"]["name"]] = now
            await self._event("Normal", "Created", f"Created SFU pod {pod['metadata']['name']}.")
        by_name = {p["metadata"]["name"]: p for p in pods}
        for pod_name in actions.drain:
            await objects.patch_merge(
                self.api,
                "Pod",
                pod_name,
                self.namespace,
                {"metadata": {"annotations": {keys.DRAIN: "true"}}},
            )
            await self._event("Normal", "Draining", f"Draining SFU pod {pod_name} before removal.")
        for pod_name in actions.delete:
            uid = by_name[pod_name]["metadata"]["uid"]
            await objects.delete(self.api, "Pod", pod_name, self.namespace, uid=uid)
            if pod_name in actions.exited:
                # One Event, not two: a clean exit is routine (every drained pod ends so).
                await self._event(
                    "Normal",
                    "SfuPodExited",
                    f"SFU pod {pod_name} exited after draining "
                    f"({_exit_reason(by_name[pod_name])}); deleted it, a new pod replaces it.",
                )
            else:
                await self._event("Normal", "Deleted", f"Deleted SFU pod {pod_name}.")

    async def _report(self, problem: Problem | None, turn_uris: list[str]) -> None:
        previous = self.runtime.degraded.get(self.name)
        if problem is not None and previous != problem.reason:
            await self._event("Warning", problem.reason, problem.message)
        if problem is None and previous is not None:
            await self._event("Normal", "Recovered", "The Region's references are valid again.")
        if problem is None:
            self.runtime.degraded.pop(self.name, None)
        else:
            self.runtime.degraded[self.name] = problem.reason
        observation = _observation(self.runtime, self.body, self.region, problem, turn_uris)
        await _write_status(self.runtime, self.body, observation)

    async def _event(self, type_: str, reason: str, message: str) -> None:
        log.info("region event region=%s reason=%s message=%s", self.name, reason, message)
        await events.post(self.api, self.body, type_, reason, message)


def _observation(
    runtime: RegionRuntime,
    body: Mapping[str, Any],
    region: Region | None,
    problem: Problem | None,
    turn_uris: list[str],
) -> RegionObservation:
    name = body["metadata"]["name"]
    pods = [
        _pod_view(p, runtime.hosts_rooms) for p in _values(runtime.indexes["region_sfu_pods"], name)
    ]
    live = [p for p in pods if not p.deleting and not p.terminated]
    current_hash = ""
    if region is not None and problem is None:
        current_hash = manifests.pod_template_hash(region, runtime.ctx, turn_uris=turn_uris)
    turn_pods = _values(runtime.indexes["region_turn_pods"], name)
    turn_enabled = bool(region and region.spec.turn.enabled)
    return RegionObservation(
        generation=body["metadata"].get("generation"),
        sfu_desired=region.spec.sfu.min_replicas if region else 0,
        sfu_ready=sum(p.ready and not p.draining for p in live),
        sfu_draining=sum(p.draining for p in live),
        sfu_outdated=sum(p.template_hash != current_hash for p in live) if current_hash else 0,
        turn_enabled=turn_enabled,
        turn_desired=region.spec.turn.replicas if region and turn_enabled else 0,
        turn_ready=sum(
            kube.pod_ready(p) for p in turn_pods if not p["metadata"].get("deletionTimestamp")
        ),
        turn_uris=turn_uris,
        problem=problem,
        totals=runtime.region_load(name),
    )


async def _write_status(
    runtime: RegionRuntime, body: Mapping[str, Any], observation: RegionObservation
) -> None:
    current = body.get("status") or {}
    desired = region_status(observation, current.get("conditions") or [], kube.now_rfc3339())
    patch = status_patch(current, desired)
    if patch:
        await kube.patch_region_status(runtime.api, body["metadata"]["name"], patch)


def _pod_view(pod: Mapping[str, Any], hosts_rooms: Callable[[str, str], bool]) -> SfuPodView:
    meta = pod["metadata"]
    pod_labels = meta.get("labels") or {}
    phase = (pod.get("status") or {}).get("phase")
    return SfuPodView(
        name=meta["name"],
        template_hash=pod_labels.get(manifests.POD_TEMPLATE_HASH, ""),
        ready=kube.pod_ready(pod),
        deleting=bool(meta.get("deletionTimestamp")),
        terminated=phase in ("Failed", "Succeeded"),
        failed=kube.pod_failed(pod),
        draining=(meta.get("annotations") or {}).get(keys.DRAIN) == "true",
        hosts_rooms=pod_labels.get(manifests.HOSTS_ROOMS) == manifests.HOSTS_ROOMS_VALUE
        or hosts_rooms(f"{meta['namespace']}/{meta['name']}", meta["uid"]),
        created=meta.get("creationTimestamp") or "",
    )


def by_name_of(pods: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next((p for p in pods if p["metadata"]["name"] == name), {})


def _exit_reason(pod: Mapping[str, Any]) -> str:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        terminated = (status.get("state") or {}).get("terminated")
        if terminated:
            return (
                f"{terminated.get('reason', 'Terminated')}, exit code {terminated.get('exitCode')}"
            )
    status = pod.get("status") or {}
    return status.get("reason") or (status.get("phase") or "failed").lower()


def _suffix() -> str:
    alphabet = manifests.SFU_POD_SUFFIX_ALPHABET
    return "".join(secrets.choice(alphabet) for _ in range(manifests.SFU_POD_SUFFIX_LENGTH))


def _new_secret() -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(48))
