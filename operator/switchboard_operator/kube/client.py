"""The operator's one API client, and the requests it makes that the generated client
would make slowly or wrongly: raw JSON requests, status merge patches, Room create/delete."""

from __future__ import annotations

import functools
import json
import os
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any, Final
from urllib.parse import urlsplit

from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from switchboard_api.resources import GROUP, REGION, ROOM, VERSION

MERGE_PATCH = "application/merge-patch+json"
WRITE_METHODS: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MIN_WRITE_WINDOW_SECONDS: Final = 0.2
"""A write is not sent with less of the acting window left than this: it could not be
answered in time, and would land, if at all, after the window closed."""


async def load_client() -> client.ApiClient:
    """An API client from the in-cluster service account, else from $KUBECONFIG."""
    if os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
        config.load_incluster_config()
    else:
        await config.load_kube_config(config_file=os.environ.get("KUBECONFIG"))
    api = client.ApiClient()
    _read_environment_once(api)
    return api


def _read_environment_once(api: client.ApiClient) -> None:
    """kubernetes_asyncio's aiohttp session trusts the environment, so aiohttp reads ~/.netrc
    and the proxy variables (in a thread) on every request: a tenth of the operator's CPU
    at high placement rates. Read the proxy for the API server once here instead."""
    rest = api.rest_client
    if rest.proxy is None:
        host = urlsplit(api.configuration.host)
        if host.hostname and not urllib.request.proxy_bypass_environment(host.hostname):
            rest.proxy = urllib.request.getproxies_environment().get(host.scheme or "https")
    # aiohttp has no public setter; tests/operator pin this so an upgrade cannot undo it.
    rest.pool_manager._trust_env = False


class NotActing(ApiException):
    """A write refused before it was sent: this replica is not an acting leader (C1)."""

    def __init__(self) -> None:
        super().__init__(status=503, reason="not the acting leader: write not sent")


def writes_only_while(
    api: client.ApiClient, acting: Callable[[], bool], remaining: Callable[[], float]
) -> client.ApiClient:
    """Make every write through `api` (POST, PUT, PATCH, DELETE; reads and watches pass)
    refused with NotActing unless `acting()`, and bounded by what `remaining()` leaves of
    the acting window: the one guard that keeps a replica past its window from writing
    (docs/contract.md, "Leases", C1). Returns `api`, guarded."""
    call = api.call_api

    @functools.wraps(call)
    async def guarded(resource_path: str, method: str, *args: Any, **kwargs: Any) -> Any:
        if method.upper() in WRITE_METHODS:
            left = remaining()
            if not acting() or left < MIN_WRITE_WINDOW_SECONDS:
                raise NotActing
            timeout = kwargs.get("_request_timeout")
            if timeout is None or isinstance(timeout, int | float):
                kwargs["_request_timeout"] = left if timeout is None else min(timeout, left)
        return await call(resource_path, method, *args, **kwargs)

    api.call_api = guarded  # type: ignore[method-assign]
    return api


async def request(
    api: client.ApiClient,
    method: str,
    path: str,
    *,
    body: object = None,
    query: list[tuple[str, str]] | None = None,
    content_type: str = "application/json",
    timeout: float | None = None,  # noqa: ASYNC109 - the client's own per-request deadline
) -> dict[str, Any]:
    """One API request with a JSON answer, as a plain dict (ApiException on a non-2xx)."""
    response = await api.call_api(
        path,
        method,
        query_params=query or [],
        header_params={"Content-Type": content_type, "Accept": "application/json"},
        body=body,
        auth_settings=["BearerToken"],
        _preload_content=False,
        _request_timeout=timeout,
    )
    text = await response.read()
    if not 200 <= response.status <= 299:
        # Unparsed responses are not checked by the generated client.
        raise ApiException(status=response.status, reason=text.decode(errors="replace")[:500])
    return dict(json.loads(text)) if text else {}


async def patch_region_status(api: client.ApiClient, name: str, patch: Mapping[str, Any]) -> None:
    await client.CustomObjectsApi(api).patch_cluster_custom_object_status(
        GROUP, VERSION, REGION.plural, name, {"status": dict(patch)}, _content_type=MERGE_PATCH
    )


async def patch_room_status(
    api: client.ApiClient, namespace: str, name: str, patch: Mapping[str, Any]
) -> str | None:
    """Merge-patch a Room's status; returns the resourceVersion the write made.

    A raw request: a failover writes thousands of these as fast as the API server takes
    them, and the generated client's checks and conversions cost the operator a tenth
    of each write's CPU for nothing (bench/placement_e2e.py)."""
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{ROOM.plural}/{name}/status"
    room = await request(api, "PATCH", path, body={"status": dict(patch)}, content_type=MERGE_PATCH)
    version = (room.get("metadata") or {}).get("resourceVersion")
    return str(version) if version else None


class NamespaceMissing(Exception):
    """The namespace to create an object in does not exist, or is being deleted."""


async def create_room(
    api: client.ApiClient, namespace: str, name: str, spec: Mapping[str, Any]
) -> None:
    """Create a Room (one that exists already is left as it is); NamespaceMissing if its
    namespace does not exist or is being deleted."""
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": ROOM.kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": dict(spec),
    }
    try:
        await client.CustomObjectsApi(api).create_namespaced_custom_object(
            GROUP, VERSION, namespace, ROOM.plural, body
        )
    except client.ApiException as error:
        if error.status == 409:
            return
        # The API server answers 404 for a missing namespace and 403 "being terminated" for
        # one being deleted; any other 403 is the operator's own RBAC, a real failure.
        if error.status == 404 or (error.status == 403 and "being terminated" in str(error.body)):
            raise NamespaceMissing(namespace) from None
        raise


async def delete_room(api: client.ApiClient, namespace: str, name: str) -> None:
    """Delete a Room (one already gone is fine)."""
    try:
        await client.CustomObjectsApi(api).delete_namespaced_custom_object(
            GROUP, VERSION, namespace, ROOM.plural, name
        )
    except client.ApiException as error:
        if error.status != 404:
            raise
