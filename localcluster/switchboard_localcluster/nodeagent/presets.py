"""Ready-made agent configurations: the images this machine can run and nodes per region/zone.

Used by the test fixtures and the local-cluster CLI so both describe nodes the same way.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

# The identity the agent's client certificate carries, so the audit log tells its writes apart.
NODE_AGENT_USER = "switchboard:node-agent"
NODE_AGENT_GROUPS = ("system:masters",)
TURNSERVER = "/usr/bin/turnserver"


def local_images(bin_dir: Path | None = None) -> dict[str, Any]:
    """This project's images run from its console scripts; coturn from Debian's turnserver.

    Absolute paths, so pods start whatever PATH the agent was launched with. The
    virtualenv and the source tree (an editable install) stay visible in containers even
    under a volume mounted over an ancestor, e.g. an emptyDir at /tmp over a checkout there.
    """
    scripts = bin_dir or Path(sys.executable).parent
    keep = sorted({str(Path(sys.prefix)), str(Path(__file__).resolve().parents[3])})

    def own(script: str) -> dict[str, Any]:
        return {"entrypoint": [str(scripts / script)], "keepVisible": keep}

    return {
        "switchboard/operator": own("switchboard-operator"),
        "switchboard/sfu": own("switchboard-sfu"),
        "switchboard/testapp": own("switchboard-testapp"),
        "coturn/coturn": [TURNSERVER],
    }


def topology_nodes(
    regions: Mapping[str, Sequence[str]],
    nodes_per_zone: int = 1,
    prefix: str = "",
    taints: Sequence[Mapping[str, str]] = (),
) -> list[dict[str, Any]]:
    """Node entries for every zone of every region: `{prefix}{zone}-{n}`."""
    return [
        {
            "name": f"{prefix}{zone}-{index}",
            "region": region,
            "zone": zone,
            **({"taints": [dict(t) for t in taints]} if taints else {}),
        }
        for region, zones in regions.items()
        for zone in zones
        for index in range(1, nodes_per_zone + 1)
    ]


def agent_config(
    work_dir: Path,
    regions: Mapping[str, Sequence[str]],
    pod_address_range: str,
    *,
    nodes_per_zone: int = 1,
    node_prefix: str = "",
    node_taints: Sequence[Mapping[str, str]] = (),
    images: Mapping[str, Any] | None = None,
    **settings: Any,
) -> dict[str, Any]:
    """An agent configuration document; `settings` are further top-level keys (camelCase)."""
    return {
        "workDir": str(work_dir),
        "podAddressRange": pod_address_range,
        "nodes": topology_nodes(regions, nodes_per_zone, node_prefix, node_taints),
        "images": dict(images or local_images()),
        **settings,
    }


def write_config(path: Path, config: Mapping[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(dict(config), sort_keys=False))
    return path
