"""PodDisruptionBudgets: evictions (node drains, autoscalers) may take an SFU pod only
once it hosts no rooms, and TURN pods only one at a time."""

from collections.abc import Mapping
from typing import Any

from switchboard_api import labels
from switchboard_api.region import Region
from switchboard_operator.logic.manifests.keys import HOSTS_ROOMS, HOSTS_ROOMS_VALUE
from switchboard_operator.logic.manifests.meta import (
    Component,
    Manifest,
    object_meta,
    selector_labels,
    workload_name,
)


def sfu_disruption_budget(region: Region) -> Manifest:
    """No voluntary disruption of an SFU pod that hosts rooms.

    The budget selects only pods labelled `hosts-rooms=true` (placement sets the label
    when it puts a room on a pod and removes it when the pod is empty), and allows none of
    them to be unavailable, so the eviction API refuses them all. Empty pods match no
    budget and evict freely. IfHealthyBudget keeps a draining pod, which is unready but
    still serves its rooms, protected too. Rooms leave a pod by draining through
    Switchboard, never by eviction.
    """
    selector = {**selector_labels(region, Component.SFU), HOSTS_ROOMS: HOSTS_ROOMS_VALUE}
    return _budget(
        region,
        Component.SFU,
        {
            "maxUnavailable": 0,
            "selector": {"matchLabels": selector},
            "unhealthyPodEvictionPolicy": "IfHealthyBudget",
        },
    )


def turn_disruption_budget(region: Region) -> Manifest:
    """At most one TURN pod evicted at a time."""
    return _budget(
        region,
        Component.TURN,
        {
            "maxUnavailable": 1,
            "selector": {"matchLabels": selector_labels(region, Component.TURN)},
        },
    )


def _budget(region: Region, component: Component, spec: dict[str, object]) -> Manifest:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": object_meta(region, workload_name(region, component), component),
        "spec": spec,
    }


NODE_AUTOSCALER_HOLD: Mapping[str, str] = {
    labels.CLUSTER_AUTOSCALER_SAFE_TO_EVICT: "false",
    labels.KARPENTER_DO_NOT_DISRUPT: "true",
}
"""Annotations that keep node autoscalers (Cluster Autoscaler, Karpenter) from removing
the node of an SFU pod while it hosts rooms."""


def hosts_rooms_patch(pod: Mapping[str, Any], hosts_rooms: bool) -> dict[str, Any] | None:
    """The merge patch that makes an SFU pod's hosts-rooms label (which its budget selects)
    and its node-autoscaler annotations say whether it hosts rooms, or None if they
    already do."""
    meta = pod["metadata"]
    pod_labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    held = all(annotations.get(k) == v for k, v in NODE_AUTOSCALER_HOLD.items())
    released = not any(k in annotations for k in NODE_AUTOSCALER_HOLD)
    labelled = pod_labels.get(HOSTS_ROOMS) == HOSTS_ROOMS_VALUE
    if labelled == hosts_rooms and (held if hosts_rooms else released):
        return None
    value = HOSTS_ROOMS_VALUE if hosts_rooms else None
    return {
        "metadata": {
            "labels": {HOSTS_ROOMS: value},
            "annotations": {
                k: (v if hosts_rooms else None) for k, v in NODE_AUTOSCALER_HOLD.items()
            },
        }
    }
