"""Stopping the agent stops every pod process it started, children included."""

from __future__ import annotations

from typing import Any

import kubernetes
import pytest

from fixtures.cluster import Cluster
from fixtures.nodeagent import NodeAgents, app_container, pod_http, pod_json, process_alive
from fixtures.waiting import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.nodeagent]

TIMEOUT = 60
# Keeps the scheduler's pods off the node this test stops; the test binds its pod directly.
DEDICATED = {"key": "switchboard.dev/dedicated", "value": "agent-shutdown", "effect": "NoSchedule"}


def test_stopping_the_agent_leaves_no_pod_process(
    control_plane: Cluster, node_agents: NodeAgents
) -> None:
    agent = node_agents.start({"shutdown": ["shutdown-a"]}, name="stopper", taints=[DEDICATED])
    core = kubernetes.client.CoreV1Api(control_plane.api_client())
    namespace = control_plane.create_namespace("agent-shutdown")
    core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": "orphan-candidate"},
            "spec": {"nodeName": agent.node_names[0], "containers": [app_container()]},
        },
    )

    def running_pod() -> Any:
        pod = core.read_namespaced_pod("orphan-candidate", namespace)
        return (
            pod
            if pod.status.pod_ip
            and any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
            else None
        )

    pod = wait_for(running_pod, TIMEOUT, "the pod Ready on the dedicated node")
    pid = pod_json(pod.status.pod_ip, "/info")["pid"]
    status, body = pod_http(pod.status.pod_ip, "/spawn", method="POST")
    assert status == 200, body
    child = pod_json(pod.status.pod_ip, "/info")["children"][0]
    assert process_alive(pid) and process_alive(child)

    agent.stop()

    wait_for(lambda: not process_alive(pid), 10, f"pod process {pid} gone")
    wait_for(lambda: not process_alive(child), 10, f"pod child process {child} gone")
    control_plane.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
