"""What the operator creates in its own namespace belongs to its installation.

The leader Lease and the join signing-key Secret are the operator's, not the chart's: they
carry an owner reference to the operator's ServiceAccount (which the chart creates), so
`helm uninstall` leaves nothing behind once the garbage collector follows it.
"""

from __future__ import annotations

import logging
from typing import Any

from kubernetes_asyncio import client

from switchboard_operator.kube import objects

log = logging.getLogger(__name__)


async def owner_references(
    api: client.ApiClient, namespace: str, service_account: str | None
) -> list[dict[str, Any]]:
    """An owner reference to the operator's ServiceAccount; none when it is unknown (a
    process outside the chart) or missing."""
    if not service_account:
        return []
    account = await objects.get(api, "ServiceAccount", service_account, namespace)
    if account is None:
        log.warning("owner service account missing name=%s/%s", namespace, service_account)
        return []
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "name": service_account,
            "uid": account["metadata"]["uid"],
        }
    ]


def as_reference(owner: dict[str, Any]) -> client.V1OwnerReference:
    """An owner reference (as `owner_references` returns them) as the client's model."""
    return client.V1OwnerReference(
        api_version=owner["apiVersion"], kind=owner["kind"], name=owner["name"], uid=owner["uid"]
    )
