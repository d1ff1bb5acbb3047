"""The manager: builds the operator's parts and hands each exactly what it needs, starts
them in order once this replica leads, and stops them in reverse.

It is the one module that knows every part. Reconcilers never import each other: they
share the cluster cache and the capacity picture, and where one must ask another to look
at something again, the manager hands it that one callback.

    parts (start order)       reads                         writes / tells
    Region reconciler         cache, picture (pods' rooms)  Region workloads and status
    Room reconciler           cache, picture                Room status; join answers
    failover                  cache, picture                picture; Room reconciler
    live status               cache, picture                Pod labels; Room reconciler
    rebalance                 cache, picture                picture; Room reconciler
    autoscaler                cache, picture (demand)       desired counts; Region reconciler
    report TLS                its Secret                    the report listener's certificate
    API keys, HTTP servers    reports, joins                picture (capacity feed); Rooms
    kopf, Room informer       the API server                cache; every reconciler's queue
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from dataclasses import dataclass
from typing import Any

import kopf
from kubernetes_asyncio import client

from switchboard_api.contract import ReportTls
from switchboard_operator import watches
from switchboard_operator.cache import ROOMS, ClusterCache
from switchboard_operator.config import OperatorConfig
from switchboard_operator.health import HealthServer
from switchboard_operator.httpserver import HttpServer, public_app, report_app
from switchboard_operator.joinapi import signing_keys
from switchboard_operator.joinapi.apikey_watch import ApiKeyWatch
from switchboard_operator.joinapi.apikeys import SecretApiKeyStore
from switchboard_operator.joinapi.app import join_api_app
from switchboard_operator.joinapi.placements import ControlPlanePlacements
from switchboard_operator.kit.informer import Informer
from switchboard_operator.kit.leader_label import LeaderLabel
from switchboard_operator.kit.leadership import LeaderElector, LeadershipLost
from switchboard_operator.kit.waiters import Waiters
from switchboard_operator.kube import events
from switchboard_operator.kube import owners as ownership
from switchboard_operator.kube.client import load_client, writes_only_while
from switchboard_operator.logic.autoscaling import ScalingDecision
from switchboard_operator.logic.capacity import CapacityPicture
from switchboard_operator.logic.join_key_ring import JoinKeyRing
from switchboard_operator.logic.jointokens import JoinKeys
from switchboard_operator.logic.leader_election import Leadership
from switchboard_operator.logic.manifests import OperatorContext
from switchboard_operator.logic.ratelimit import RateLimiter
from switchboard_operator.logic.region_figures import ControlPlaneFigures, control_plane_figures
from switchboard_operator.logic.report_certs import serving_names
from switchboard_operator.logic.room_lifecycle import RoomAnswer
from switchboard_operator.logic.sfu_trust import SfuPodLedger
from switchboard_operator.metrics import OperatorMetrics, metrics_app
from switchboard_operator.reconcilers.autoscaler import Autoscaler
from switchboard_operator.reconcilers.capacity_feed import CapacityFeed
from switchboard_operator.reconcilers.failover import FailoverReconciler
from switchboard_operator.reconcilers.live_status import LiveStatusReconciler
from switchboard_operator.reconcilers.rebalance import RebalanceReconciler
from switchboard_operator.reconcilers.regions import RegionReconciler
from switchboard_operator.reconcilers.rooms import RoomReconciler
from switchboard_operator.reportapi.jwks import JwksCache
from switchboard_operator.reportapi.receiver import ReportReceiver
from switchboard_operator.reportapi.refusals import ReportRefusals
from switchboard_operator.reportapi.tls import ReportCertificates
from switchboard_tls import ReloadingCertificate

log = logging.getLogger(__name__)

LABEL_CLEAR_SECONDS = 2.0


@dataclass(frozen=True)
class Options:
    identity: str
    """This replica's name in the leader Lease."""
    liveness: str | None = None
    """kopf's liveness probe URL, e.g. http://0.0.0.0:8081/healthz."""


class Manager:
    def __init__(self, config: OperatorConfig, options: Options) -> None:
        self._config = config
        self._options = options

    async def run(self) -> int:
        """Wait to lead, then operate until kopf ends (0) or leadership is lost (1).

        Every replica serves /healthz from start to exit (readiness is health, not
        leadership), and its metrics on the internal port (a standby says it stands by);
        the leader labels its own pod, which the operator Service selects.
        """
        config = self._config
        metrics = OperatorMetrics()
        health = HealthServer(config.listen_host, config.health_port)
        exporter = None
        if config.metrics_port is not None:
            exporter = HttpServer(metrics_app(metrics), config.listen_host, config.metrics_port)
        # Leadership has a connection of its own: a burst of status writes must never
        # hold up a lease renewal.
        leases = await load_client()
        try:
            await health.start()
            if exporter is not None:
                await exporter.start()
            owners = await ownership.owner_references(
                leases, config.namespace, config.service_account
            )
            label = (
                LeaderLabel(leases, config.namespace, config.pod_name) if config.pod_name else None
            )
            if label is not None:
                # A restarted container keeps its pod, and so the label of a past term.
                await label.clear()
            elector = LeaderElector(
                leases,
                config.namespace,
                self._options.identity,
                owners=[ownership.as_reference(owner) for owner in owners],
            )
            await elector.acquire()
            # Every write of the leader's parts goes through this client, and is refused
            # outside the acting window (C1): one guard, not a check per call site.
            api = writes_only_while(await load_client(), elector.acting, elector.remaining)
            metrics.set_leader(True)
            try:
                return await self._lead(api, elector, owners, label, metrics)
            finally:
                metrics.watch_figures(lambda: None)  # the figures were the leader's
                metrics.set_leader(False)
                await api.close()
        finally:
            if exporter is not None:
                await exporter.stop()
            await health.stop()
            await leases.close()

    async def _lead(
        self,
        api: client.ApiClient,
        elector: LeaderElector,
        owners: list[dict[str, Any]],
        label: LeaderLabel | None,
        metrics: OperatorMetrics,
    ) -> int:
        operator = await Operator.build(api, self._config, owners, metrics, leadership=elector)
        tasks: list[asyncio.Task[None]] = []
        try:
            await operator.start()
            kopf_task = asyncio.create_task(
                kopf.operator(
                    registry=operator.registry,
                    settings=watches.settings(),
                    clusterwide=True,
                    standalone=True,
                    liveness_endpoint=self._options.liveness,
                ),
                name="kopf",
            )
            holding = asyncio.create_task(elector.hold(), name="leadership")
            tasks = [kopf_task, holding]
            if label is not None:
                tasks.append(asyncio.create_task(label.mark(), name="leader-label"))
            done, _ = await asyncio.wait([kopf_task, holding], return_when=asyncio.FIRST_COMPLETED)
        finally:
            # Every write stops before the lease is released or lost.
            await operator.stop()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await _clear(label)
        if holding in done:
            if not isinstance(holding.exception(), LeadershipLost):
                holding.result()
            if elector.outranked:
                # An SFU applied a newer term: release, so that the next starts past it.
                await elector.release()
            log.error("leadership lost: exiting so that a standby takes over")
            return 1
        await elector.release()
        kopf_task.result()
        return 0


class Operator:
    """Every part of the operator, wired. Built only by a replica that leads."""

    def __init__(
        self,
        api: client.ApiClient,
        config: OperatorConfig,
        *,
        join_keys: JoinKeys,
        leadership: Leadership,
        report_certs: ReportCertificates,
        metrics: OperatorMetrics | None = None,
    ) -> None:
        """`leadership`: this replica's acting window and term."""
        picture = CapacityPicture(config.capacity_model())
        metrics = metrics or OperatorMetrics()
        ring = JoinKeyRing(join_keys)
        rooms_informer = Informer(api, ROOMS)
        self.cache = cache = ClusterCache(rooms_informer, SfuPodLedger())
        answers: Waiters[RoomAnswer] = Waiters()
        self.rooms = rooms = RoomReconciler(api, cache, picture, answers, metrics)
        rooms_informer.subscribe(on_change=rooms.room_changed, on_synced=rooms.restore)
        restored = rooms.restored.is_set
        metrics.watch_figures(lambda: _figures(cache, picture) if restored() else None)

        self.regions = RegionReconciler(
            api,
            cache,
            picture,
            context=OperatorContext(
                report_url=config.report_url,
                join_api_url=config.join_api_public_url,
                default_sfu_image=config.sfu_image,
                turn_image=config.turn_image,
                image_pull_policy=config.image_pull_policy,
                turn_image_prometheus=config.turn_image_prometheus,
                control_plane_namespace=config.namespace,
                report_ca_configmap=ReportTls.CA_CONFIGMAP,
            ),
            join_keys=ring,
            region_namespaces=config.region_namespaces,
            propagation_seconds=config.turn_propagation_seconds,
            ready=restored,
            metrics=metrics,
            scaling=self._scaling,
            report_ca=lambda: report_certs.ca_pem,
        )
        report_certs.ca_changed = self.regions.trigger_all
        self.report_certs = report_certs
        self.autoscaler = autoscaler = Autoscaler(
            api,
            cache,
            picture,
            region_changed=self.regions.trigger,
            ready=restored,
            metrics=metrics,
        )
        # Every change of a Region's demand or capacity is looked at (no fixed poll).
        picture.subscribe(autoscaler.demand_changed)
        self.failover = failover = FailoverReconciler(
            api,
            cache,
            picture,
            trigger_room=rooms.trigger,
            room_writes_idle=rooms.wait_idle,
            ready=lambda: restored() and leadership.acting(),
            term_start=lambda: feed.first_acknowledged_at,
            metrics=metrics,
        )
        self.live_status = LiveStatusReconciler(
            api, cache, picture, trigger_room=rooms.trigger, ready=restored
        )
        self.rebalance = RebalanceReconciler(
            api, cache, picture, trigger_room=rooms.trigger, ready=restored, metrics=metrics
        )
        feed = CapacityFeed(
            cache,
            picture,
            capacity_appeared=rooms.retry_pending,
            pod_lost=failover.pod_lost,
            ready=restored,
            leadership=leadership,
        )

        self.signing_keys = signing_keys.SigningKeyWatch(
            api, config.namespace, ring, changed=self.regions.trigger_all
        )
        self.jwks = JwksCache(api)
        store, limiter = SecretApiKeyStore(), RateLimiter()
        self.api_keys = ApiKeyWatch(api, config.namespace, store, limiter)
        placements = ControlPlanePlacements(
            api,
            cache,
            picture,
            answers,
            trigger_room=rooms.trigger,
            restored=rooms.restored,
            turn_access=self.regions.turn_access,
            join_keys=ring,
            leadership=leadership,
        )
        tls = None if config.tls is None else ReloadingCertificate(config.tls, name="control-plane")
        self.refusals = ReportRefusals(metrics, functools.partial(events.post, api))
        self.http = HttpServer(
            public_app(join_api_app(placements, store, limiter=limiter, metrics=metrics)),
            config.listen_host,
            config.listen_port,
            tls,
        )
        self.report_http = HttpServer(
            report_app(ReportReceiver(self.jwks, feed, self.refusals, metrics)),
            config.listen_host,
            config.report_port,
            ReloadingCertificate(report_certs.files, name="reports"),
        )
        self.registry = watches.registry(
            cache,
            region_changed=self._region_changed,
            sfu_pod_changed=feed.on_pod,
            namespace_changed=rooms.retry_pending,
        )
        self._rooms_informer = rooms_informer
        self._tasks: list[asyncio.Task[None]] = []

    def _scaling(self, name: str) -> ScalingDecision | None:
        return self.autoscaler.target(name)

    def _region_changed(self, name: str) -> None:
        self.regions.trigger(name)
        self.autoscaler.demand_changed(name)

    @classmethod
    async def build(
        cls,
        api: client.ApiClient,
        config: OperatorConfig,
        owners: list[dict[str, Any]],
        metrics: OperatorMetrics,
        *,
        leadership: Leadership,
    ) -> Operator:
        join_keys = await signing_keys.load_or_create(api, config.namespace, owners)
        report_certs = ReportCertificates(
            api, config.namespace, serving_names(config.report_url), owners=owners
        )
        await report_certs.converge()
        return cls(
            api,
            config,
            join_keys=join_keys,
            report_certs=report_certs,
            metrics=metrics,
            leadership=leadership,
        )

    async def start(self) -> None:
        self.regions.start()
        self.autoscaler.start()
        self.rooms.start()
        self.failover.start()
        self.live_status.start()
        self.rebalance.start()
        self.signing_keys.start()
        await self.jwks.refresh(force=True)
        await self.api_keys.start()
        self.report_certs.start()
        await self.report_http.start()
        await self.http.start()
        self._tasks.append(asyncio.create_task(self._follow_rooms(), name="room-informer"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.http.stop()
        await self.report_http.stop()
        await self.report_certs.stop()
        await self.refusals.stop()
        await self.api_keys.stop()
        await self.signing_keys.stop()
        for part in (
            self.rebalance,
            self.live_status,
            self.failover,
            self.rooms,
            self.autoscaler,
            self.regions,
        ):
            await part.stop()

    async def _follow_rooms(self) -> None:
        """Rooms are read once Regions, SFU pods and namespaces are known: restore first."""
        await self.cache.indexed.wait()
        await self._rooms_informer.run()


def _figures(cache: ClusterCache, picture: CapacityPicture) -> ControlPlaneFigures:
    """What the metrics say of the control plane at a scrape, with no API call."""
    regions = cache.region_bodies()
    pods = {name: cache.sfu_pods(name) for name in regions}
    return control_plane_figures(regions, pods, cache.room_bodies(), picture, time.time())


async def _clear(label: LeaderLabel | None) -> None:
    """Drop the leader label on the way out, briefly: the container's restart clears it too."""
    if label is not None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(label.clear(), LABEL_CLEAR_SECONDS)
