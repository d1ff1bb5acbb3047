"""The Region reconciler creates each SFU pod once, even when a pass runs before the Pod
watch has shown the pods the previous pass created (the race that doubled a roll's surge),
and replaces pods whose SFU ended: with a back-off after a crash, at once after a clean exit."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
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


@dataclass
class Cluster:
    """What the reconciler did to the API: pods created and deleted, Events posted."""

    created: list[dict[str, Any]] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    events: list[tuple[str, str, str]] = field(default_factory=list)
    """(type, reason, message)"""


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> Cluster:
    calls = Cluster()

    async def create(_api: object, obj: dict[str, Any]) -> None:
        calls.created.append(obj)

    async def delete(_api: object, _kind: str, name: str, *_: object, **__: object) -> bool:
        calls.deleted.append(name)
        return True

    async def post(_api: object, _obj: object, type_: str, reason: str, message: str) -> None:
        calls.events.append((type_, reason, message))

    monkeypatch.setattr(region_controller.objects, "create", create)
    monkeypatch.setattr(region_controller.objects, "delete", delete)
    monkeypatch.setattr(region_controller.events, "post", post)
    return calls


@pytest.fixture
def created(cluster: Cluster) -> list[dict[str, Any]]:
    return cluster.created


def runtime() -> RegionRuntime:
    ctx = OperatorContext(
        report_url="http://operator:8080/v1/capacity/reports",
        default_sfu_image="registry.example/switchboard/sfu:1.0",
    )
    state = RegionRuntime(api=None, ctx=ctx, join_keys=None)  # type: ignore[arg-type]
    state.indexes = {"region_sfu_pods": {}}  # what the Pod watch has shown: nothing yet
    return state


async def converge(state: RegionRuntime, spec: Region) -> _RegionReconcile:
    reconcile = _RegionReconcile(state, spec.to_wire(), spec)
    await reconcile._converge_sfu_pods([])
    return reconcile


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


def ended(pod: dict[str, Any], phase: str, reason: str, exit_code: int) -> dict[str, Any]:
    """The pod as the watch shows it once its SFU process ended (restartPolicy Never)."""
    terminated = {"reason": reason, "exitCode": exit_code}
    return {
        **pod,
        "status": {
            "phase": phase,
            "containerStatuses": [{"name": "sfu", "state": {"terminated": terminated}}],
        },
    }


async def test_a_pod_that_exited_after_draining_is_replaced_at_once_without_a_warning(
    cluster: Cluster,
) -> None:
    state, spec = runtime(), region(min_replicas=1)
    await converge(state, spec)
    [pod] = watched(cluster.created)
    name = pod["metadata"]["name"]
    cluster.events.clear()

    state.indexes["region_sfu_pods"] = {REGION: [ended(pod, "Succeeded", "Completed", 0)]}
    reconcile = await converge(state, spec)

    assert cluster.deleted == [name]
    assert len(cluster.created) == 2  # the replacement, with no back-off
    assert state.crashes[REGION].waiting(time.time()) == 0
    assert reconcile.requeue == region_controller.RECHECK_SECONDS
    assert [e for e in cluster.events if e[0] == "Warning"] == []
    exits = [e for e in cluster.events if e[1] == "SfuPodExited"]
    assert len(exits) == 1 and name in exits[0][2]


async def test_a_pod_that_crashed_is_replaced_after_a_back_off_with_a_warning(
    cluster: Cluster,
) -> None:
    state, spec = runtime(), region(min_replicas=1)
    await converge(state, spec)
    [pod] = watched(cluster.created)
    name = pod["metadata"]["name"]

    state.indexes["region_sfu_pods"] = {REGION: [ended(pod, "Failed", "Error", 1)]}
    reconcile = await converge(state, spec)

    assert cluster.deleted == [name]
    assert len(cluster.created) == 1  # the replacement waits for the back-off
    assert 0 < reconcile.requeue <= 1
    [warning] = [e for e in cluster.events if e[0] == "Warning"]
    assert warning[1] == "SfuPodFailed"
    assert name in warning[2] and "exit code 1" in warning[2]
