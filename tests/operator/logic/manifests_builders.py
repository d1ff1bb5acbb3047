"""Builders for manifest tests: Regions as the API returns them, and the operator context."""

from __future__ import annotations

import copy
from typing import Any

from switchboard_api.region import Region
from switchboard_operator.logic.manifests import OperatorContext
from switchboard_turn.coturn import TurnSecrets

REGION_UID = "6f1c2a9e-0d4b-4a57-9a43-0e8b7f0d2c11"
REPORT_URL = "http://switchboard.switchboard-system.svc:8080/v1/capacity/reports"
JOIN_API_URL = "https://rtc.example.com/switchboard"
MINTED_SECRET = "minted-secret-0123456789abcdef"
SECRETS = TurnSecrets(minted=MINTED_SECRET)


def region(name: str = "eu-west", **spec: Any) -> Region:
    """A Region with `spec` merged (dicts recursively) over a small valid one."""
    body: dict[str, Any] = {
        "apiVersion": "switchboard.dev/v1alpha1",
        "kind": "Region",
        "metadata": {"name": name, "uid": REGION_UID, "generation": 1},
        "spec": {
            "namespace": "media-eu",
            "location": {"latitude": 53.35, "longitude": -6.26},
            "turn": {"allowedPeerCIDRs": ["10.244.0.0/16"]},
        },
    }
    _merge(body["spec"], spec)
    return Region.model_validate(body)


SFU_IMAGE = "registry.example/switchboard/sfu:1.0"
TURN_IMAGE = "registry.example/switchboard/turn:1.0"


def context(**overrides: Any) -> OperatorContext:
    return OperatorContext(
        **{
            "report_url": REPORT_URL,
            "join_api_url": JOIN_API_URL,
            "default_sfu_image": SFU_IMAGE,
            "turn_image": TURN_IMAGE,
            **overrides,
        }
    )


def _merge(into: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = copy.deepcopy(value)


def container(pod_spec: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in pod_spec["containers"] if c["name"] == name)


def env_of(container_: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The container's env entries by name (each name must appear once)."""
    names = [entry["name"] for entry in container_.get("env", [])]
    assert len(names) == len(set(names)), f"duplicate env vars: {names}"
    return {entry["name"]: entry for entry in container_.get("env", [])}
