"""Where a Region's pods may run: the Region's nodes, spread across zones."""

from typing import Any

from switchboard_api import labels
from switchboard_api.region import Region
from switchboard_operator.logic.manifests.errors import ManifestError
from switchboard_operator.logic.manifests.meta import Component, selector_labels


def node_selector(region: Region) -> dict[str, str]:
    """The topology region label plus the Region's further node labels."""
    selector = {labels.TOPOLOGY_REGION: region.topology_region}
    for key, value in (region.spec.node_selector or {}).items():
        if key == labels.TOPOLOGY_REGION and value != region.topology_region:
            raise ManifestError(
                "ConflictingNodeSelector",
                "spec.nodeSelector",
                f"{key}={value} contradicts the Region's topology region "
                f"{region.topology_region!r}; set spec.topologyRegion instead",
            )
        selector[key] = value
    return selector


def zone_spread(region: Region, component: Component) -> list[dict[str, Any]]:
    """Spread the workload's pods across zones when the nodes allow, never block on it."""
    return [
        {
            "maxSkew": 1,
            "topologyKey": labels.TOPOLOGY_ZONE,
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": selector_labels(region, component)},
        }
    ]


def one_per_node(region: Region, component: Component) -> dict[str, Any]:
    """Pod anti-affinity: at most one of the workload's pods on each node."""
    return {
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {
                    "labelSelector": {"matchLabels": selector_labels(region, component)},
                    "topologyKey": "kubernetes.io/hostname",
                }
            ]
        }
    }
