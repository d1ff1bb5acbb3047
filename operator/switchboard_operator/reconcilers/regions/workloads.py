"""One pass over one Region: check what it references, converge every object it owns to
the pure manifests (server-side apply of what drifted), rotate its TURN secret, publish the
join-token public keys, and carry out the SFU pod plan. A fresh object per pass: what must
outlive a pass goes back to the reconciler (`sfu_pods`, `turn_access`).
"""

from __future__ import annotations

import logging
import secrets
import string
import time
from collections.abc import Callable
from typing import Any

from kubernetes_asyncio import client

from switchboard_api import labels as keys
from switchboard_api.contract import ReportTls
from switchboard_api.region import Region
from switchboard_operator.cache import ClusterCache
from switchboard_operator.kube import events, objects
from switchboard_operator.logic import manifests
from switchboard_operator.logic.drift import drifted_paths, is_subset
from switchboard_operator.logic.join_key_ring import JoinKeyRing
from switchboard_operator.logic.notices import Notice
from switchboard_operator.logic.region_status import Problem
from switchboard_operator.logic.sfu_pod_plan import (
    SfuPodMemory,
    cordoned_notice,
    created_notice,
    draining_notice,
    plan_region_pods,
    uncordoned_notice,
)
from switchboard_operator.logic.timestamps import format_time, parse_time
from switchboard_operator.logic.turn_rotation import ROTATE_ANNOTATION, TurnAccess, step
from switchboard_operator.reconcilers.regions.pod_views import HostsRooms, Occupancy, pod_view
from switchboard_operator.reconcilers.regions.published import publish_configmap
from switchboard_operator.reconcilers.regions.sfu_trust import (
    record_sfu_pods,
    reserve_sfu_pod_names,
    settle_reserved_sfu_pods,
    untrusted_pod_notices,
)
from switchboard_turn.coturn import TurnSecrets

log = logging.getLogger(__name__)

ROTATION_STARTED_AT = "switchboard.dev/turn-rotation-requested"
"""TURN Secret annotation: the rotation request value already acted upon."""
RECHECK_SECONDS = 300.0
"""Unwatched inputs (Secrets, the namespace, the keys ConfigMap) are re-read this often."""

Cordon = Callable[[str], bool]
"""Take no new room on the pod `<namespace>/<name>` from now on; True if it holds none."""


class RegionPass:
    def __init__(
        self,
        api: client.ApiClient,
        cache: ClusterCache,
        body: dict[str, Any],
        region: Region,
        *,
        context: manifests.OperatorContext,
        join_keys: JoinKeyRing,
        hosts_rooms: HostsRooms,
        propagation_seconds: float,
        sfu_pods: SfuPodMemory,
        desired: int | None = None,
        occupancy: Occupancy | None = None,
        cordon: Cordon | None = None,
        rooms_known: bool = True,
        report_ca: Callable[[], str] = lambda: "",
    ) -> None:
        self.api = api
        self.cache = cache
        self.body = body
        self.region = region
        self.context = context
        self.join_keys = join_keys
        self.hosts_rooms = hosts_rooms
        self.propagation_seconds = propagation_seconds
        self.name = region.metadata.name or ""
        self.namespace = region.spec.namespace
        self.requeue: float = RECHECK_SECONDS
        self.sfu_pods = sfu_pods
        """What the reconciler remembers of the Region's SFU pods, as this pass leaves it."""
        self.desired = desired
        """SFU pods the autoscaler wants (None: none decided yet, keep the pods serving
        within the bounds); the pass leaves the count it worked to."""
        self.occupancy = occupancy
        self.cordon = cordon
        self.rooms_known = rooms_known
        self.report_ca = report_ca
        """The report receiver's CA certificate (PEM) to publish."""
        self.turn_converged = False
        self.turn_access: TurnAccess | None = None
        """With `turn_converged`: the TURN access clients get now (None: no TURN)."""
        self._turn_secret_body: dict[str, Any] | None = None

    async def run(self) -> tuple[Problem | None, list[str]]:
        """Converge the Region; returns what stops it, if anything, and its TURN URIs."""
        problem = await self._check_references()
        turn_uris: list[str] = []
        if problem is None:
            try:
                turn_uris = await self._converge_workloads()
            except manifests.ManifestError as error:
                problem = Problem(error.reason, str(error))
        return problem, turn_uris

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
            self.context,
            turn_secrets=turn_secrets,
            turn_secret_rotated_at=rotated_at,
        )
        owned = self.cache.owned(self.name)
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
                    Notice("Normal", "Removed", f"Deleted {kind} {obj_name}: no longer wanted.")
                )
        await self._publish_join_keys()
        await self._publish_report_ca()
        turn_uris = self._turn_uris()
        self.turn_converged = True
        if turn_secrets is not None:
            self.turn_access = TurnAccess(
                uris=tuple(turn_uris),
                secret=turn_secrets.minted.encode(),
                credential_ttl_seconds=self.region.spec.turn.credential_ttl_seconds,
            )
        for notice in await settle_reserved_sfu_pods(
            self.api, self.cache, self.body, self.namespace
        ):
            await self._event(notice)
        for notice in untrusted_pod_notices(self.cache, self.name, self.namespace):
            await self._event(notice)
        await self._converge_sfu_pods(turn_uris)
        return turn_uris

    async def _converge(self, manifest: dict[str, Any], observed: dict[str, Any] | None) -> None:
        kind, obj_name = manifest["kind"], manifest["metadata"]["name"]
        where = f"{kind} {self.namespace}/{obj_name}"
        if observed is None:
            await objects.apply(self.api, manifest)
            await self._event(Notice("Normal", "Created", f"Created {where}."))
        elif not is_subset(manifest, observed):
            paths = drifted_paths(manifest, observed)
            await objects.apply(self.api, manifest)
            await self._event(
                Notice("Normal", "DriftRepaired", f"Restored {where}: {', '.join(paths)[:300]}.")
            )

    async def _turn_secrets(self) -> tuple[TurnSecrets | None, str | None]:
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
        result = step(
            current,
            requested=requested,
            new_secret=_new_secret(),
            phase_started_at=parse_time(rotated_at),
            now=time.time(),
            propagation_seconds=self.propagation_seconds,
            credential_ttl_seconds=float(self.region.spec.turn.credential_ttl_seconds),
        )
        if result.requeue_after is not None:
            self.requeue = min(self.requeue, result.requeue_after)
        if result.event:
            await self._event(Notice("Normal", "TurnSecretRotation", result.event))
        new_rotated_at = (
            None if result.phase_started_at is None else format_time(result.phase_started_at)
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
        """The join-token public keys SFU pods verify with: the signing Secret's, and a
        removed key's until every token it signed has expired (logic/join_key_ring.py)."""
        now = time.time()
        withdrawal = self.join_keys.next_withdrawal(now)
        if withdrawal is not None:
            self.requeue = min(self.requeue, max(withdrawal - now, 0.0) + 0.1)
        await publish_configmap(
            self.api,
            self.namespace,
            self.context.join_public_keys_configmap,
            self.name,
            self.join_keys.public_pems(now),
        )

    async def _publish_report_ca(self) -> None:
        """The CA certificate SFU pods verify the report receiver with (never its key)."""
        name = self.context.report_ca_configmap
        if name is not None:
            data = {ReportTls.CA_KEY: self.report_ca()}
            await publish_configmap(self.api, self.namespace, name, self.name, data)

    def _turn_uris(self) -> list[str]:
        if not self.region.spec.turn.enabled:
            return []
        service_name = manifests.workload_name(self.region, manifests.Component.TURN)
        service = self.cache.owned(self.name).get(("Service", service_name))
        ingress = ((service or {}).get("status") or {}).get("loadBalancer", {}).get("ingress")
        if ingress:
            host = ingress[0].get("hostname") or ingress[0].get("ip")
        else:
            host = f"{service_name}.{self.namespace}.svc"
        return manifests.turn_uris(self.region, host)

    async def _converge_sfu_pods(self, turn_uris: list[str]) -> None:
        current_hash = manifests.pod_template_hash(self.region, self.context, turn_uris=turn_uris)
        pods = self.cache.sfu_pods(self.name)
        views = [pod_view(p, self.hosts_rooms, self.occupancy) for p in pods]
        sfu = self.region.spec.sfu
        desired = self.desired
        if not sfu.autoscaling.enabled:
            desired = sfu.min_replicas
        elif desired is None:
            serving = sum(
                not (v.deleting or v.terminated or v.draining or v.cordoned) for v in views
            )
            desired = max(sfu.min_replicas, min(sfu.max_replicas, serving))
        self.desired = desired
        now = time.time()
        plan = plan_region_pods(
            views,
            desired,
            current_hash,
            self.sfu_pods,
            now,
            policy=sfu.placement_policy,
            rooms_known=self.rooms_known,
        )
        self.sfu_pods = plan.memory
        if plan.retry_after is not None:
            self.requeue = min(self.requeue, plan.retry_after)
        for notice in plan.crashed:
            await self._event(notice)
        by_name = {v.name: v for v in views}
        for pod_name in plan.uncordon:
            await self._annotate(pod_name, {keys.CORDONED: None})
            await self._event(uncordoned_notice(pod_name))
        await self._create_sfu_pods(plan.create, turn_uris, now)
        for pod_name in plan.cordon:
            # No room is placed on it from this step on, before the annotation is seen.
            if self.cordon is not None:
                self.cordon(f"{self.namespace}/{pod_name}")
            await self._annotate(pod_name, {keys.CORDONED: format_time(now)})
            await self._event(cordoned_notice(pod_name, by_name[pod_name].rooms))
        for pod_name in plan.drain:
            await self._annotate(pod_name, {keys.DRAIN: "true"})
            await self._event(draining_notice(pod_name))
        uids = {p["metadata"]["name"]: p["metadata"]["uid"] for p in pods}
        for pod_name in plan.delete:
            view = by_name[pod_name]
            if (
                view.cordoned
                and self.cordon is not None
                and not self.cordon(f"{self.namespace}/{pod_name}")
            ):
                continue  # A room was placed on it after all: it stays until that ends.
            await objects.delete(self.api, "Pod", pod_name, self.namespace, uid=uids[pod_name])
            await self._event(plan.deleted[pod_name])

    async def _create_sfu_pods(self, count: int, turn_uris: list[str], now: float) -> None:
        new_pods = [
            manifests.sfu_pod(self.region, self.context, _suffix(), turn_uris=turn_uris)
            for _ in range(count)
        ]
        reserved = [pod["metadata"]["name"] for pod in new_pods]
        if reserved:
            # Reserved before the create, so a stop before the UID is recorded leaves a
            # name the next pass settles (logic/sfu_trust.py).
            await reserve_sfu_pod_names(self.api, self.name, reserved)
        for pod in new_pods:
            pod_name = pod["metadata"]["name"]
            reserved.remove(pod_name)
            created = await objects.create(self.api, pod)
            if created is None:
                # The name was taken: not ours, so not trusted, and left alone.
                if not reserved:
                    await reserve_sfu_pod_names(self.api, self.name, [])
                continue
            # Trusted from the moment the API server names its UID, and recorded in the
            # Region's status at once, so a restart trusts it too (logic/sfu_trust.py).
            self.cache.sfu_ledger.created(self.name, pod_name, created["metadata"]["uid"], now)
            await record_sfu_pods(self.api, self.cache, self.name, reserved, now)
            self.sfu_pods = self.sfu_pods.created(pod_name, now)
            await self._event(created_notice(pod_name))

    async def _annotate(self, pod_name: str, annotations: dict[str, str | None]) -> None:
        await objects.patch_merge(
            self.api, "Pod", pod_name, self.namespace, {"metadata": {"annotations": annotations}}
        )

    async def _event(self, notice: Notice) -> None:
        log.info(
            "region event region=%s reason=%s message=%s", self.name, notice.reason, notice.message
        )
        await events.post(self.api, self.body, notice.type, notice.reason, notice.message)


def _suffix() -> str:
    alphabet = manifests.SFU_POD_SUFFIX_ALPHABET
    return "".join(secrets.choice(alphabet) for _ in range(manifests.SFU_POD_SUFFIX_LENGTH))


def _new_secret() -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(48))
