"""kopf settings for Switchboard: explicit login, no bookkeeping writes, Events for warnings."""

from __future__ import annotations

import logging
from typing import Any

import kopf


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In-cluster ServiceAccount first, else $KUBECONFIG (no client library needed)."""
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    # Handlers are event-driven and level-based (kopf.on.event): kopf keeps no progress
    # or diff-base annotations for them, so an unchanged object costs no write.
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.inactivity_timeout = 600
    settings.networking.request_timeout = 30
