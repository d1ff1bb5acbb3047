"""Kubernetes client glue: one shared async API client and the status writes the operator makes."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from typing import Any

from kubernetes_asyncio import client, config

from switchboard_api.resources import GROUP, REGION, ROOM, VERSION

MERGE_PATCH = "application/merge-patch+json"


async def load_client() -> client.ApiClient:
    """An API client from the in-cluster service account, else from $KUBECONFIG."""
    if os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
        config.load_incluster_config()
    else:
        await config.load_kube_config(config_file=os.environ.get("KUBECONFIG"))
    return client.ApiClient()


def now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


async def patch_region_status(api: client.ApiClient, name: str, patch: Mapping[str, Any]) -> None:
    await client.CustomObjectsApi(api).patch_cluster_custom_object_status(
        GROUP, VERSION, REGION.plural, name, {"status": dict(patch)}, _content_type=MERGE_PATCH
    )


async def patch_room_status(
    api: client.ApiClient, namespace: str, name: str, patch: Mapping[str, Any]
) -> None:
    await client.CustomObjectsApi(api).patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        namespace,
        ROOM.plural,
        name,
        {"status": dict(patch)},
        _content_type=MERGE_PATCH,
    )
