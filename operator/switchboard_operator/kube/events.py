"""Kubernetes Events on Switchboard's objects: what a user must know, in `kubectl describe`."""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from collections.abc import Mapping
from typing import Any

from kubernetes_asyncio import client

from switchboard_operator.kube import objects

log = logging.getLogger(__name__)
COMPONENT = "switchboard-operator"
MAX_MESSAGE = 1024
CONCURRENCY = 4
"""Events a burst of them (e.g. one per moved room) posts at once: they are best effort and
must not crowd out the writes they are about."""


async def post(
    api: client.ApiClient, obj: Mapping[str, Any], type_: str, reason: str, message: str
) -> None:
    """Record an Event about ``obj``; failures are logged, never raised (Events are best effort)."""
    meta = obj["metadata"]
    now = dt.datetime.now(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    namespace = meta.get("namespace") or "default"
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{meta['name']}.{secrets.token_hex(8)}", "namespace": namespace},
        "involvedObject": {
            "apiVersion": obj.get("apiVersion"),
            "kind": obj.get("kind"),
            "name": meta["name"],
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
        },
        "type": type_,
        "reason": reason,
        "message": message[:MAX_MESSAGE],
        "firstTimestamp": now[:19] + "Z",
        "lastTimestamp": now[:19] + "Z",
        "count": 1,
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": COMPONENT,
    }
    try:
        await objects.create(api, event)
    except Exception as error:  # an Event must never break a reconcile
        log.warning("event not recorded reason=%s error=%s", reason, error)
