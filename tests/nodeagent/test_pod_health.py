"""Probes and restarts: readiness follows the app, crashes and failed liveness restart it,
and a steady pod costs no status writes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest

from fixtures.cluster import Cluster
from fixtures.nodeagent import NodeAgent, app_container, pod_http, pod_json
from fixtures.waiting import wait_for
from switchboard_localcluster.nodeagent.presets import NODE_AGENT_USER

pytestmark = [pytest.mark.cluster, pytest.mark.nodeagent]

TIMEOUT = 60


@pytest.fixture(scope="module")
def core(control_plane: Cluster) -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(control_plane.api_client())


@pytest.fixture(scope="module")
def namespace(control_plane: Cluster, node_agent: NodeAgent) -> Iterator[str]:
    name = control_plane.create_namespace(f"agent-health-{uuid.uuid4().hex[:6]}")
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)


def start_pod(
    core: kubernetes.client.CoreV1Api, namespace: str, name: str, **container: Any
) -> Any:
    core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": name},
            "spec": {
                "terminationGracePeriodSeconds": 5,
                "containers": [app_container(**container)],
            },
        },
    )
    return wait_for(lambda: ready(core, namespace, name, True), TIMEOUT, f"pod {name} Ready")


def ready(core: kubernetes.client.CoreV1Api, namespace: str, name: str, wanted: bool) -> Any:
    pod = core.read_namespaced_pod(name, namespace)
    conditions = {c.type: c.status for c in pod.status.conditions or []}
    is_ready = conditions.get("Ready") == "True" and conditions.get("ContainersReady") == "True"
    return pod if is_ready == wanted else None


def test_readiness_follows_the_endpoint(core: kubernetes.client.CoreV1Api, namespace: str) -> None:
    pod = start_pod(core, namespace, "flip")
    ip = pod.status.pod_ip

    assert pod_http(ip, "/ready?value=false", method="POST")[0] == 200
    unready = wait_for(lambda: ready(core, namespace, "flip", False), TIMEOUT, "Ready=False")
    [status] = unready.status.container_statuses
    assert status.ready is False
    assert status.state.running is not None  # unready, not restarted
    assert status.restart_count == 0

    assert pod_http(ip, "/ready?value=true", method="POST")[0] == 200
    wait_for(lambda: ready(core, namespace, "flip", True), TIMEOUT, "Ready=True again")


def test_a_crashing_process_is_restarted_and_counted(
    core: kubernetes.client.CoreV1Api, namespace: str
) -> None:
    pod = start_pod(core, namespace, "crasher")
    first_pid = pod_json(pod.status.pod_ip, "/info")["pid"]

    pod_http(pod.status.pod_ip, "/crash?code=3", method="POST")

    def restarted() -> Any:
        current = ready(core, namespace, "crasher", True)
        if current and current.status.container_statuses[0].restart_count >= 1:
            return current
        return None

    current = wait_for(restarted, TIMEOUT, "the crashed container restarted and Ready")
    [status] = current.status.container_statuses
    assert status.restart_count == 1
    assert status.last_state.terminated.exit_code == 3
    assert status.last_state.terminated.reason == "Error"
    assert status.state.running is not None
    assert current.status.pod_ip == pod.status.pod_ip
    assert pod_json(current.status.pod_ip, "/info")["pid"] != first_pid


def test_a_failing_liveness_probe_restarts_the_container(
    core: kubernetes.client.CoreV1Api, namespace: str
) -> None:
    liveness = {
        "httpGet": {"path": "/healthz", "port": 8080},
        "periodSeconds": 1,
        "failureThreshold": 2,
    }
    pod = start_pod(core, namespace, "unhealthy", livenessProbe=liveness)

    pod_http(pod.status.pod_ip, "/healthz?value=false", method="POST")

    def restarted() -> Any:
        current = core.read_namespaced_pod("unhealthy", namespace)
        statuses = current.status.container_statuses or []
        return current if statuses and statuses[0].restart_count >= 1 else None

    current = wait_for(restarted, TIMEOUT, "the unhealthy container restarted")
    assert current.status.container_statuses[0].last_state.terminated is not None
    # The new process starts healthy again and becomes Ready.
    wait_for(lambda: ready(core, namespace, "unhealthy", True), TIMEOUT, "Ready after restart")


def test_a_steady_pod_costs_no_status_writes(
    control_plane: Cluster, core: kubernetes.client.CoreV1Api, namespace: str
) -> None:
    pod = start_pod(core, namespace, "steady")
    ip = pod.status.pod_ip
    probes_before = pod_json(ip, "/requests").get("GET /ready", 0)
    mark = control_plane.audit_log.mark()

    # The agent keeps probing (once a second) while nothing changes.
    wait_for(
        lambda: pod_json(ip, "/requests").get("GET /ready", 0) >= probes_before + 5,
        TIMEOUT,
        "five more readiness probes",
    )

    # Only this pod: other namespaces may be winding down meanwhile.
    writes = [
        event
        for event in control_plane.audit_log.writes(since=mark, user=NODE_AGENT_USER)
        if (event.resource, event.namespace, event.name) == ("pods", namespace, "steady")
    ]
    assert writes == []
