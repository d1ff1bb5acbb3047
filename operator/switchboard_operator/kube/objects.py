"""Generic reads and writes of the Kubernetes objects the operator manages, as plain dicts.

Writes are server-side apply with the operator's field manager, so a repair reclaims
exactly the fields the operator owns and leaves other controllers' fields alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from switchboard_operator.kube.client import request

FIELD_MANAGER = "switchboard-operator"
APPLY_PATCH = "application/apply-patch+yaml"


@dataclass(frozen=True)
class Kind:
    api_version: str
    plural: str
    namespaced: bool = True

    def path(self, namespace: str | None, name: str | None = None) -> str:
        base = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        if self.namespaced:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        return f"{base}/{name}" if name else base


KINDS: Mapping[str, Kind] = {
    "ServiceAccount": Kind("v1", "serviceaccounts"),
    "Secret": Kind("v1", "secrets"),
    "ConfigMap": Kind("v1", "configmaps"),
    "Service": Kind("v1", "services"),
    "Pod": Kind("v1", "pods"),
    "Namespace": Kind("v1", "namespaces", namespaced=False),
    "Event": Kind("v1", "events"),
    "Deployment": Kind("apps/v1", "deployments"),
    "PodDisruptionBudget": Kind("policy/v1", "poddisruptionbudgets"),
    "NetworkPolicy": Kind("networking.k8s.io/v1", "networkpolicies"),
}


def kind_of(manifest: Mapping[str, Any]) -> Kind:
    try:
        return KINDS[manifest["kind"]]
    except KeyError:
        raise ValueError(f"the operator does not manage {manifest.get('kind')!r}") from None


async def apply(api: client.ApiClient, manifest: Mapping[str, Any]) -> dict[str, Any]:
    """Server-side apply ``manifest`` (create or update), taking ownership of its fields."""
    kind = kind_of(manifest)
    meta = manifest["metadata"]
    return await request(
        api,
        "PATCH",
        kind.path(meta.get("namespace"), meta["name"]),
        body=dict(manifest),
        query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
        content_type=APPLY_PATCH,
    )


async def get(
    api: client.ApiClient, kind: str, name: str, namespace: str | None = None
) -> dict[str, Any] | None:
    """The object, or None if it does not exist."""
    try:
        return await request(api, "GET", KINDS[kind].path(namespace, name))
    except ApiException as error:
        if error.status == 404:
            return None
        raise


async def find(
    api: client.ApiClient, kind: str, name: str, namespace: str | None = None
) -> dict[str, Any] | None:
    """The object, read from the API server (not a cache) by a list with a name field
    selector, or None: for kinds the operator may list but not get (pods: a grant of
    `get` on every pod in the cluster would add nothing the list does not give)."""
    answer = await request(
        api,
        "GET",
        KINDS[kind].path(namespace),
        query=[("fieldSelector", f"metadata.name={name}")],
    )
    items = answer.get("items") or []
    return dict(items[0]) if items else None


async def create(api: client.ApiClient, manifest: Mapping[str, Any]) -> dict[str, Any] | None:
    """Create ``manifest``; None if an object of that name already exists."""
    kind = kind_of(manifest)
    try:
        return await request(
            api,
            "POST",
            kind.path(manifest["metadata"].get("namespace")),
            body=dict(manifest),
            query=[("fieldManager", FIELD_MANAGER)],
        )
    except ApiException as error:
        if error.status == 409:
            return None
        raise


async def delete(
    api: client.ApiClient,
    kind: str,
    name: str,
    namespace: str | None = None,
    uid: str | None = None,
) -> bool:
    """Delete an object (only the incarnation ``uid`` when given); False if already gone."""
    body: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1"}
    if uid:
        body["preconditions"] = {"uid": uid}
    try:
        await request(api, "DELETE", KINDS[kind].path(namespace, name), body=body)
    except ApiException as error:
        if error.status in (404, 409):
            return False
        raise
    return True


async def patch_merge(
    api: client.ApiClient, kind: str, name: str, namespace: str | None, patch: Mapping[str, Any]
) -> dict[str, Any]:
    return await request(
        api,
        "PATCH",
        KINDS[kind].path(namespace, name),
        body=dict(patch),
        content_type="application/merge-patch+json",
    )
