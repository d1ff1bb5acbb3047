"""The Region reconciler creates each SFU pod once, even when a pass runs before the Pod
watch has shown the pods the previous pass created (the race that doubled a roll's surge)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from switchboard_api.region import Region
from switchboard_operator.adapters import region_controller
from switchboard_operator.adapters.region_controller import (
    UNOBSERVED_POD_SECONDS,
    RegionRuntime,
    _RegionReconcile,
)
from switchboard_operator.logic.manifests import OperatorContext

REGION = "eu"


def region(min_replicas: int = 2) -> Region:
    return Region.model_validate(
        {
            "apiVersion": "switchboard.dev/v1alpha1",
            "kind": "Region",
            "metadata": {"name": REGION, "uid": "region-uid", "generation": 1},
            "spec": {
                "namespace": "media",
                "location": {"latitude": 52.4, "longitude": 4.9},
                "sfu": {"minReplicas": min_replicas, "maxReplicas": 4},
            },
        }
    )


@pytest.fixture
def created(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    pods: list[dict[str, Any]] = []

    async def create(_api: object, obj: dict[str, Any]) -> None:
        pods.append(obj)

    async def post(*_: object) -> None:
        return None

    monkeypatch.setattr(region_controller.objects, "create", create)
    monkeypatch.setattr(region_controller.events, "post", post)
    return pods


def runtime() -> RegionRuntime:
    ctx = OperatorContext(report_url="http://operator:8080/v1/capacity/reports")
    state = RegionRuntime(api=None, ctx=ctx, join_keys=None)  # type: ignore[arg-type]
    state.indexes = {"region_sfu_pods": {}}  # what the Pod watch has shown: nothing yet
    return state


async def converge(state: RegionRuntime, spec: Region) -> None:
    await _RegionReconcile(state, spec.to_wire(), spec)._converge_sfu_pods([])


def watched(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The created pods as the Pod watch delivers them."""
    return [{**p, "metadata": {**p["metadata"], "uid": p["metadata"]["name"]}} for p in pods]


async def test_pods_created_but_not_yet_watched_are_not_created_again(created) -> None:
    state, spec = runtime(), region(min_replicas=2)
    await converge(state, spec)
    assert len(created) == 2

    await converge(state, spec)  # e.g. triggered by the Created Event, before the watch
    assert len(created) == 2

    state.indexes["region_sfu_pods"] = {REGION: watched(created)}
    await converge(state, spec)
    assert len(created) == 2
    assert state.unobserved_pods[REGION] == {}


async def test_a_created_pod_the_watch_never_shows_is_replaced_after_a_while(
    created, monkeypatch: pytest.MonkeyPatch
) -> None:
    state, spec = runtime(), region(min_replicas=1)
    await converge(state, spec)
    assert len(created) == 1

    later = time.time() + UNOBSERVED_POD_SECONDS + 1
    monkeypatch.setattr(region_controller.time, "time", lambda: later)
    await converge(state, spec)
    assert len(created) == 2
