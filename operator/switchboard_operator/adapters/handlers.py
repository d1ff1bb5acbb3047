"""Operator start-up and shutdown: the Region reconciler, the scheduler, the HTTP server."""

from __future__ import annotations

import logging
from typing import Any

import kopf
from kubernetes_asyncio import client

from switchboard_operator.adapters import joinkeys, kube
from switchboard_operator.adapters.apikey_watch import ApiKeyWatch
from switchboard_operator.adapters.httpserver import HttpServer, build_app
from switchboard_operator.adapters.joinapi.apikeys import SecretApiKeyStore
from switchboard_operator.adapters.joinapi.app import join_api_app
from switchboard_operator.adapters.jwks import JwksCache
from switchboard_operator.adapters.metrics import OperatorMetrics
from switchboard_operator.adapters.placements import ControlPlanePlacements
from switchboard_operator.adapters.region_controller import RegionRuntime, reconcile
from switchboard_operator.adapters.reports import ReportReceiver
from switchboard_operator.adapters.scheduling import Scheduler
from switchboard_operator.adapters.workqueue import WorkQueue
from switchboard_operator.config import OperatorConfig
from switchboard_operator.logic.manifests import OperatorContext
from switchboard_operator.logic.ratelimit import RateLimiter
from switchboard_tls import ReloadingCertificate

log = logging.getLogger(__name__)


def _api(memo: kopf.Memo) -> client.ApiClient:
    api: client.ApiClient = memo["api"]
    return api


@kopf.on.startup()
async def start(memo: kopf.Memo, **_: Any) -> None:
    config = OperatorConfig.from_env()
    # Created before leader election (__main__), so standbys export theirs too.
    metrics: OperatorMetrics = memo.get("metrics") or OperatorMetrics()
    api = memo["api"] = await kube.load_client()
    join_keys = await joinkeys.load_or_create(api, config.namespace)
    runtime = RegionRuntime(
        api=api,
        ctx=OperatorContext(
            report_url=config.report_url,
            join_api_url=config.join_api_public_url,
            default_sfu_image=config.sfu_image,
            helper_image=config.sfu_image,
            control_plane_namespace=config.namespace,
        ),
        join_keys=join_keys,
        propagation_seconds=config.turn_propagation_seconds,
    )
    runtime.queue = WorkQueue(
        lambda name: reconcile(runtime, str(name)),
        "regions",
        observe=lambda seconds, failed: metrics.reconciled("Region", seconds, failed),
    )
    runtime.queue.start()
    memo["regions"] = runtime

    scheduler = memo["scheduler"] = Scheduler(api, metrics=metrics)
    metrics.watch_figures(scheduler.figures)
    runtime.hosts_rooms = scheduler.picture.hosts_rooms
    runtime.region_load = scheduler.region_load
    scheduler.on_region_load_change = runtime.queue.trigger
    scheduler.start()
    jwks = JwksCache(api)
    await jwks.refresh(force=True)
    store, limiter = SecretApiKeyStore(), RateLimiter()
    keys = memo["api_keys"] = ApiKeyWatch(api, config.namespace, store, limiter)
    await keys.start()
    join_api = join_api_app(
        ControlPlanePlacements(scheduler, runtime), store, limiter=limiter, metrics=metrics
    )
    tls = None if config.tls is None else ReloadingCertificate(config.tls, name="control-plane")
    server = memo["http"] = HttpServer(
        build_app(ReportReceiver(jwks, scheduler, metrics), join_api),
        config.listen_host,
        config.listen_port,
        tls,
    )
    await server.start()


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    for name in ("http", "api_keys", "scheduler"):
        component = memo.get(name)
        if component is not None:
            await component.stop()
    runtime = memo.get("regions")
    if runtime is not None and runtime.queue is not None:
        await runtime.queue.stop()
    api = memo.get("api")
    if api is not None:
        await api.close()
