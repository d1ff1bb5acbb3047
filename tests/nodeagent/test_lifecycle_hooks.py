"""Exec and TCP probes and the preStop hook run against the container, in its namespaces."""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from fixtures.cluster import Cluster
from fixtures.nodeagent import NodeAgent, app_container, pod_http
from fixtures.waiting import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.nodeagent]

TIMEOUT = 60
# Runs inside the container: its env (POD_IP) and its view of the filesystem.
READY_CHECK = (
    "import os, urllib.request;"
    "urllib.request.urlopen('http://%s:8080/ready' % os.environ['POD_IP'], timeout=2)"
)
PRE_STOP = (
    "import os, time;"
    "open('/markers/%s.prestop' % os.environ['HOSTNAME'], 'w').write(repr(time.time()))"
)


@pytest.fixture(scope="module")
def core(control_plane: Cluster) -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(control_plane.api_client())


@pytest.fixture(scope="module")
def namespace(control_plane: Cluster, node_agent: NodeAgent) -> Iterator[str]:
    name = control_plane.create_namespace(f"agent-hooks-{uuid.uuid4().hex[:6]}")
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)


def ready(core: kubernetes.client.CoreV1Api, namespace: str, name: str, wanted: bool) -> Any:
    pod = core.read_namespaced_pod(name, namespace)
    conditions = {c.type: c.status for c in pod.status.conditions or []}
    return pod if (conditions.get("Ready") == "True") == wanted else None


def test_exec_readiness_and_tcp_startup_probes(
    core: kubernetes.client.CoreV1Api, namespace: str
) -> None:
    container = app_container(
        startupProbe={"tcpSocket": {"port": "http"}, "periodSeconds": 1, "failureThreshold": 30},
        readinessProbe={
            "exec": {"command": [sys.executable, "-c", READY_CHECK]},
            "periodSeconds": 1,
            "timeoutSeconds": 5,
            "failureThreshold": 1,
        },
    )
    core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": "exec-probed"},
            "spec": {"containers": [container]},
        },
    )
    pod = wait_for(lambda: ready(core, namespace, "exec-probed", True), TIMEOUT, "Ready")
    assert pod.status.container_statuses[0].started is True

    pod_http(pod.status.pod_ip, "/ready?value=false", method="POST")
    wait_for(lambda: ready(core, namespace, "exec-probed", False), TIMEOUT, "Ready=False")
    pod_http(pod.status.pod_ip, "/ready?value=true", method="POST")
    wait_for(lambda: ready(core, namespace, "exec-probed", True), TIMEOUT, "Ready again")


def test_the_pre_stop_hook_runs_before_sigterm(
    core: kubernetes.client.CoreV1Api, namespace: str, tmp_path: Path
) -> None:
    container = app_container(
        env=[
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "SIGNAL_MARKER_DIR", "value": "/markers"},
        ],
        volumeMounts=[{"name": "markers", "mountPath": "/markers"}],
        lifecycle={"preStop": {"exec": {"command": [sys.executable, "-c", PRE_STOP]}}},
    )
    core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": "hooked"},
            "spec": {
                "terminationGracePeriodSeconds": 20,
                "containers": [container],
                "volumes": [{"name": "markers", "hostPath": {"path": str(tmp_path)}}],
            },
        },
    )
    wait_for(lambda: ready(core, namespace, "hooked", True), TIMEOUT, "Ready")

    core.delete_namespaced_pod("hooked", namespace)

    pre_stop, sigterm = tmp_path / "hooked.prestop", tmp_path / "hooked.SIGTERM"
    wait_for(sigterm.exists, TIMEOUT, "the SIGTERM marker")
    assert pre_stop.exists()
    assert float(pre_stop.read_text()) <= json.loads(sigterm.read_text())["time"]
