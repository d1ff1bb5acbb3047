"""What the agent cannot run stays Pending with a reason; what the API forbids never arrives."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest

from fixtures.cluster import Cluster
from fixtures.nodeagent import NodeAgent, app_container
from fixtures.waiting import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.nodeagent]

TIMEOUT = 60


@pytest.fixture(scope="module")
def core(control_plane: Cluster) -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(control_plane.api_client())


@pytest.fixture(scope="module")
def namespace(control_plane: Cluster, node_agent: NodeAgent) -> Iterator[str]:
    name = control_plane.create_namespace(f"agent-admit-{uuid.uuid4().hex[:6]}")
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="module")
def restricted_namespace(control_plane: Cluster) -> Iterator[str]:
    name = control_plane.create_namespace(
        f"agent-restricted-{uuid.uuid4().hex[:6]}",
        labels={"pod-security.kubernetes.io/enforce": "restricted"},
    )
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)


def test_a_pod_of_an_unknown_image_stays_pending_with_a_clear_reason(
    core: kubernetes.client.CoreV1Api, namespace: str
) -> None:
    core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": "nginx"},
            "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
        },
    )

    def reported() -> Any:
        pod = core.read_namespaced_pod("nginx", namespace)
        statuses = pod.status.container_statuses or []
        return pod if statuses and statuses[0].state.waiting else None

    pod = wait_for(reported, TIMEOUT, "a waiting reason on the nginx pod")
    assert pod.spec.node_name  # it was scheduled: the node just cannot run it
    assert pod.status.phase == "Pending"
    waiting = pod.status.container_statuses[0].state.waiting
    # No registry is reachable: the image is not in the node's stores, and nothing else
    # runs in its place.
    assert waiting.reason in ("ErrImagePull", "ImagePullBackOff")
    assert "nginx:1.27" in waiting.message


def test_pod_security_admission_rejects_a_privileged_pod(
    core: kubernetes.client.CoreV1Api, restricted_namespace: str
) -> None:
    privileged = app_container(securityContext={"privileged": True})
    with pytest.raises(kubernetes.client.ApiException) as rejected:
        core.create_namespaced_pod(
            restricted_namespace,
            {
                "metadata": {"name": "privileged"},
                "spec": {"containers": [privileged]},
            },
        )
    assert rejected.value.status == 403
    assert "violates PodSecurity" in rejected.value.body
    assert "privileged" in rejected.value.body
    assert core.list_namespaced_pod(restricted_namespace).items == []
