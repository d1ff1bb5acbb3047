"""Reading Kubernetes objects as the watches deliver them (plain dicts)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def snapshot(body: Mapping[str, Any]) -> dict[str, Any]:
    """An object as a watch delivered it, minus managedFields (large, never compared)."""
    copy = dict(body)
    copy["metadata"] = {k: v for k, v in body["metadata"].items() if k != "managedFields"}
    return copy


def pod_ready(pod: Mapping[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def pod_ended(pod: Mapping[str, Any]) -> bool:
    """Phase Failed or Succeeded: its process ended and will not serve again."""
    return (pod.get("status") or {}).get("phase") in ("Failed", "Succeeded")


def pod_failed(pod: Mapping[str, Any]) -> bool:
    """Phase Failed: its process crashed or was killed. Succeeded (a clean exit, as a
    drained SFU's) is not a failure."""
    return (pod.get("status") or {}).get("phase") == "Failed"
