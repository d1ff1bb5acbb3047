"""What the operator watches through kopf, and who is told.

kopf fills the cache's indexes (Regions, SFU and TURN pods, what Regions own, namespaces)
and calls a handler per event; every handler hands the event on to the callback the
manager wired, and nothing else. Rooms and API-key Secrets are not kopf's: they come
through the controller kit's informer (docs/architecture.md says why).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

import kopf

from switchboard_api import labels as keys
from switchboard_api.resources import GROUP, REGION, VERSION
from switchboard_operator.cache import (
    NAMESPACE_LABELS,
    OWNED_KINDS,
    REGION_BODIES,
    REGION_SFU_PODS,
    REGION_TURN_PODS,
    ClusterCache,
)
from switchboard_operator.kube import bodies

MANAGED = {keys.APP_MANAGED_BY: keys.MANAGED_BY_VALUE}
SFU_PODS = {**MANAGED, keys.APP_COMPONENT: keys.COMPONENT_SFU}
TURN_PODS = {**MANAGED, keys.APP_COMPONENT: keys.COMPONENT_TURN}


def settings() -> kopf.OperatorSettings:
    """kopf's settings: no bookkeeping writes, Events for warnings, long watches."""
    chosen = kopf.OperatorSettings()
    # Handlers are event-driven and level-based (kopf.on.event): kopf keeps no progress
    # or diff-base annotations for them, so an unchanged object costs no write.
    chosen.posting.level = logging.WARNING
    chosen.watching.server_timeout = 300
    chosen.watching.client_timeout = 330
    chosen.watching.inactivity_timeout = 600
    chosen.networking.request_timeout = 30
    return chosen


def registry(
    cache: ClusterCache,
    *,
    region_changed: Callable[[str], None],
    sfu_pod_changed: Callable[[Mapping[str, Any], bool], None],
    namespace_changed: Callable[[], None],
) -> kopf.OperatorRegistry:
    """kopf's handlers: the cache's indexes, and events handed to the callbacks. kopf
    calls a handler only once every index is filled; the first call hands them to the
    cache."""
    chosen = kopf.OperatorRegistry()
    kopf.on.login(registry=chosen)(_login)
    _indexes(chosen)

    @kopf.on.event("namespaces", id="namespace_changed", registry=chosen)
    async def on_namespace(**kwargs: Any) -> None:
        # Namespaces always exist, so this is the first handler kopf calls once its indexes
        # are filled; a label change may admit waiting rooms into a Region (tenancy).
        cache.capture(kwargs)
        namespace_changed()

    @kopf.on.event("pods", labels=SFU_PODS, id="sfu_pod_changed", registry=chosen)
    async def on_sfu_pod(event: kopf.RawEvent, body: kopf.Body, **kwargs: Any) -> None:
        cache.capture(kwargs)
        sfu_pod_changed(bodies.snapshot(body), event["type"] == "DELETED")

    @kopf.on.event(GROUP, VERSION, REGION.plural, id="region_changed", registry=chosen)
    async def on_region(name: str, **kwargs: Any) -> None:
        cache.capture(kwargs)
        region_changed(name)

    async def on_owned(labels: kopf.Labels, **kwargs: Any) -> None:
        cache.capture(kwargs)
        region = labels.get(keys.REGION)
        if region:
            region_changed(region)

    for plural in (*OWNED_KINDS, "pods"):
        kopf.on.event(plural, labels=MANAGED, id=f"trigger_region_from_{plural}", registry=chosen)(
            on_owned
        )
    return chosen


def _indexes(chosen: kopf.OperatorRegistry) -> None:
    async def namespace_labels(
        name: str, labels: kopf.Labels, **_: Any
    ) -> dict[str, dict[str, str]]:
        return {name: dict(labels)}

    async def region_bodies(name: str, body: kopf.Body, **_: Any) -> dict[str, dict[str, Any]]:
        return {name: bodies.snapshot(body)}

    async def by_region(labels: kopf.Labels, body: kopf.Body, **_: Any) -> dict[str, Any] | None:
        region = labels.get(keys.REGION)
        return {region: bodies.snapshot(body)} if region else None

    kopf.index("namespaces", id=NAMESPACE_LABELS, registry=chosen)(namespace_labels)
    kopf.index(GROUP, VERSION, REGION.plural, id=REGION_BODIES, registry=chosen)(region_bodies)
    kopf.index("pods", labels=SFU_PODS, id=REGION_SFU_PODS, registry=chosen)(by_region)
    kopf.index("pods", labels=TURN_PODS, id=REGION_TURN_PODS, registry=chosen)(by_region)
    for plural in OWNED_KINDS:
        kopf.index(plural, labels=MANAGED, id=f"region_owned_{plural}", registry=chosen)(by_region)


def _login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In-cluster ServiceAccount first, else $KUBECONFIG (no client library needed).

    In a cluster, the API server is where KUBERNETES_SERVICE_HOST/PORT say (as client-go
    and kubernetes_asyncio read it), not kopf's fixed https://kubernetes.default.svc,
    which needs cluster DNS and a Service proxy on port 443.
    """
    info = kopf.login_with_service_account(**kwargs)
    if info is None:
        return kopf.login_with_kubeconfig(**kwargs)
    host = os.environ.get("KUBERNETES_SERVICE_HOST")
    port = os.environ.get("KUBERNETES_SERVICE_PORT")
    if host and port:
        host = f"[{host}]" if ":" in host else host
        info = dataclasses.replace(info, server=f"https://{host}:{port}")
    return info
