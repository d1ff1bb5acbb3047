"""The downward API: pod fields and container resources as the kubelet exposes them."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .quantity import divide_rounding_up, parse_quantity

_SUBSCRIPT = re.compile(r"^(metadata\.(?:labels|annotations))\['(.+)'\]$")


class DownwardAPIError(Exception):
    """A fieldRef or resourceFieldRef the pod cannot be given."""


@dataclass(frozen=True)
class PodFacts:
    """The pod object plus what only the node knows before status is written."""

    pod: Mapping[str, Any]
    pod_ip: str
    host_ip: str
    node_allocatable: Mapping[str, str] = field(default_factory=dict)

    @property
    def metadata(self) -> Mapping[str, Any]:
        return self.pod.get("metadata", {})

    @property
    def spec(self) -> Mapping[str, Any]:
        return self.pod.get("spec", {})


def format_map(values: Mapping[str, str]) -> str:
    """Labels/annotations as a downwardAPI volume file: sorted `key="value"` lines."""
    return "\n".join(
        f"{key}={json.dumps(values[key], ensure_ascii=False)}" for key in sorted(values)
    )


def field_value(facts: PodFacts, field_path: str) -> str:
    """Resolve a `fieldRef.fieldPath` to the string the container sees."""
    metadata, spec = facts.metadata, facts.spec
    subscript = _SUBSCRIPT.match(field_path)
    if subscript is not None:
        which, key = subscript.groups()
        source = metadata.get("labels" if which.endswith("labels") else "annotations") or {}
        return str(source.get(key, ""))
    simple: dict[str, Any] = {
        "metadata.name": metadata.get("name", ""),
        "metadata.namespace": metadata.get("namespace", ""),
        "metadata.uid": metadata.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.podIP": facts.pod_ip,
        "status.podIPs": facts.pod_ip,
        "status.hostIP": facts.host_ip,
        "status.hostIPs": facts.host_ip,
    }
    if field_path in simple:
        return str(simple[field_path])
    if field_path == "metadata.labels":
        return format_map(metadata.get("labels") or {})
    if field_path == "metadata.annotations":
        return format_map(metadata.get("annotations") or {})
    raise DownwardAPIError(f"unsupported fieldPath {field_path!r}")


def resource_value(facts: PodFacts, container_name: str, ref: Mapping[str, Any]) -> str:
    """Resolve a `resourceFieldRef` (limits/requests of cpu, memory, ephemeral-storage).

    An unset limit reads as the node's allocatable amount and an unset request as 0, as with
    the kubelet; the value is expressed in units of the divisor, rounded up.
    """
    resource = ref.get("resource", "")
    kind, _, name = resource.partition(".")
    if kind not in ("limits", "requests") or name not in ("cpu", "memory", "ephemeral-storage"):
        raise DownwardAPIError(f"unsupported resourceFieldRef resource {resource!r}")
    containers = [
        *(facts.spec.get("initContainers") or []),
        *(facts.spec.get("containers") or []),
    ]
    container = next((c for c in containers if c.get("name") == container_name), None)
    if container is None:
        raise DownwardAPIError(f"resourceFieldRef names unknown container {container_name!r}")
    resources = container.get("resources") or {}
    amount = (resources.get(kind) or {}).get(name)
    if amount is None:
        amount = facts.node_allocatable.get(name, "0") if kind == "limits" else "0"
    divisor = parse_quantity(ref.get("divisor") or "1")
    return str(divide_rounding_up(parse_quantity(amount), divisor))
