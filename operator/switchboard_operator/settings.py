"""kopf settings for Switchboard: explicit login, no bookkeeping writes, Events for warnings."""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any

import kopf


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
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


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    # Handlers are event-driven and level-based (kopf.on.event): kopf keeps no progress
    # or diff-base annotations for them, so an unchanged object costs no write.
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.inactivity_timeout = 600
    settings.networking.request_timeout = 30
