"""What the operator publishes into a Region's namespace for its SFU pods to mount: the
join-token public keys and the CA certificate of the report receiver. Both are
ConfigMaps shared by every Region of the namespace (the last pass to write one names its
Region), kept equal to what the control plane holds."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubernetes_asyncio import client

from switchboard_api import labels as keys
from switchboard_operator.kube import objects
from switchboard_operator.logic.drift import is_subset

MANAGED = {keys.APP_MANAGED_BY: keys.MANAGED_BY_VALUE}


async def publish_configmap(
    api: client.ApiClient, namespace: str, name: str, region: str, data: Mapping[str, str]
) -> None:
    """Make the ConfigMap `namespace/name` hold exactly `data` (one GET, and an apply only
    when it differs)."""
    desired: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {**MANAGED, keys.REGION: region},
        },
        "data": dict(data),
    }
    observed = await objects.get(api, "ConfigMap", name, namespace)
    # The data must be equal, not only contain ours: a withdrawn key must go.
    if (
        observed is None
        or not is_subset(desired, observed)
        or observed.get("data") != desired["data"]
    ):
        await objects.apply(api, desired)
