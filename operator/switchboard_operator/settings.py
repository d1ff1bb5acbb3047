"""kopf settings for Switchboard: explicit login, no bookkeeping writes, Events for warnings."""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any

import kopf


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In-cluster ServiceAccount first, else $KUBECONFIG (no client library needed)."""
    return _in_cluster(kopf.login_with_service_account(**kwargs)) or kopf.login_with_kubeconfig(
        **kwargs
    )


def _in_cluster(info: kopf.ConnectionInfo | None) -> kopf.ConnectionInfo | None:
    """The API server at KUBERNETES_SERVICE_HOST/PORT, as client-go's in-cluster config and
    the operator's own client use it: kopf names https://kubernetes.default.svc, which needs
    cluster DNS (a pod with another DNS policy, or a cluster without DNS, cannot resolve it)."""
    host = os.environ.get("KUBERNETES_SERVICE_HOST")
    port = os.environ.get("KUBERNETES_SERVICE_PORT")
    if info is None or not host or not port:
        return info
    authority = f"[{host}]" if ":" in host else host
    return dataclasses.replace(info, server=f"https://{authority}:{port}")


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    # Handlers are event-driven and level-based (kopf.on.event): kopf keeps no progress
    # or diff-base annotations for them, so an unchanged object costs no write.
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.inactivity_timeout = 600
    settings.networking.request_timeout = 30
