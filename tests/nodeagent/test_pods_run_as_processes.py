"""A Deployment's pods run as real local processes that see what a container would see."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from fixtures.cluster import Cluster
from fixtures.nodeagent import (
    TESTAPP_IMAGE,
    NodeAgent,
    app_container,
    pod_http,
    pod_json,
)
from fixtures.waiting import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.nodeagent]

TIMEOUT = 60
APP_LABELS = {"app": "envapp"}


@pytest.fixture(scope="module")
def core(control_plane: Cluster) -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(control_plane.api_client())


@pytest.fixture(scope="module")
def namespace(control_plane: Cluster, node_agent: NodeAgent) -> Iterator[str]:
    name = control_plane.create_namespace(f"agent-procs-{uuid.uuid4().hex[:6]}")
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="module")
def marker_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("signal-markers")


@pytest.fixture(scope="module")
def deployment(
    control_plane: Cluster, core: kubernetes.client.CoreV1Api, namespace: str, marker_dir: Path
) -> str:
    core.create_namespaced_config_map(
        namespace,
        {
            "metadata": {"name": "settings"},
            "data": {"greeting": "hello", "app.conf": "workers=4\n"},
        },
    )
    core.create_namespaced_secret(
        namespace,
        {
            "metadata": {"name": "credentials"},
            "stringData": {"password": "s3cret", "api-key": "k-123"},
        },
    )
    env = [
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "POD_UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
        {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
        {"name": "SA", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
        {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
        {
            "name": "MEMORY_MI",
            "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}},
        },
        {
            "name": "GREETING",
            "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "greeting"}},
        },
        {
            "name": "PASSWORD",
            "valueFrom": {"secretKeyRef": {"name": "credentials", "key": "password"}},
        },
        {"name": "WELCOME", "value": "$(GREETING), $(POD_NAME)"},
        {"name": "SIGNAL_MARKER_DIR", "value": "/markers"},
    ]
    container = app_container(
        env=env,
        envFrom=[{"configMapRef": {"name": "settings"}, "prefix": "CFG_"}],
        resources={"limits": {"memory": "256Mi", "cpu": "500m"}},
        volumeMounts=[
            {"name": "settings", "mountPath": "/etc/envapp/settings"},
            {"name": "credentials", "mountPath": "/etc/envapp/credentials", "readOnly": True},
            {"name": "podinfo", "mountPath": "/etc/podinfo"},
            {"name": "token", "mountPath": "/var/run/secrets/switchboard"},
            {"name": "markers", "mountPath": "/markers"},
        ],
    )
    spec = {
        "terminationGracePeriodSeconds": 10,
        "containers": [container],
        "volumes": [
            {"name": "settings", "configMap": {"name": "settings"}},
            {"name": "credentials", "secret": {"secretName": "credentials", "defaultMode": 0o400}},
            {
                "name": "podinfo",
                "downwardAPI": {
                    "items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]
                },
            },
            {
                "name": "token",
                "projected": {
                    "sources": [
                        {
                            "serviceAccountToken": {
                                "audience": "switchboard-test",
                                "expirationSeconds": 600,
                                "path": "token",
                            }
                        }
                    ]
                },
            },
            {"name": "markers", "hostPath": {"path": str(marker_dir), "type": "Directory"}},
        ],
    }
    kubernetes.client.AppsV1Api(control_plane.api_client()).create_namespaced_deployment(
        namespace,
        {
            "metadata": {"name": "envapp"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": APP_LABELS},
                "template": {"metadata": {"labels": APP_LABELS}, "spec": spec},
            },
        },
    )
    return "envapp"


def ready_pod(core: kubernetes.client.CoreV1Api, namespace: str, exclude: str = "") -> Any:
    def find() -> Any:
        pods = core.list_namespaced_pod(namespace, label_selector="app=envapp").items
        for pod in pods:
            ready = any(
                c.type == "Ready" and c.status == "True" for c in pod.status.conditions or []
            )
            if ready and pod.metadata.name != exclude and not pod.metadata.deletion_timestamp:
                return pod
        return None

    return wait_for(find, TIMEOUT, f"a Ready envapp pod in {namespace}")


def test_the_process_sees_downward_api_and_value_from_env(
    core: kubernetes.client.CoreV1Api, namespace: str, deployment: str, node_agent: NodeAgent
) -> None:
    pod = ready_pod(core, namespace)
    env = pod_json(pod.status.pod_ip, "/env")

    assert pod.spec.node_name in node_agent.node_names
    assert pod.status.pod_ip.startswith("127.")
    assert env["POD_IP"] == pod.status.pod_ip
    assert env["POD_NAME"] == pod.metadata.name
    assert env["POD_NAMESPACE"] == namespace
    assert env["POD_UID"] == pod.metadata.uid
    assert env["NODE_NAME"] == pod.spec.node_name
    assert env["HOST_IP"] == pod.status.host_ip
    assert env["SA"] == "default"
    assert env["APP"] == "envapp"
    assert env["MEMORY_MI"] == "256"
    assert env["GREETING"] == "hello"
    assert env["PASSWORD"] == "s3cret"
    assert env["WELCOME"] == f"hello, {pod.metadata.name}"
    assert env["CFG_greeting"] == "hello"
    assert env["HOSTNAME"] == pod.metadata.name
    info = pod_json(pod.status.pod_ip, "/info")
    assert info["hostname"] == pod.metadata.name


def test_the_process_reads_its_mounted_secret_config_map_and_pod_labels(
    core: kubernetes.client.CoreV1Api, namespace: str, deployment: str
) -> None:
    pod = ready_pod(core, namespace)

    def read(path: str) -> bytes:
        status, body = pod_http(pod.status.pod_ip, f"/file?path={path}")
        assert status == 200, body
        return body

    assert read("/etc/envapp/settings/greeting") == b"hello"
    assert read("/etc/envapp/settings/app.conf") == b"workers=4\n"
    assert read("/etc/envapp/credentials/password") == b"s3cret"
    assert read("/etc/envapp/credentials/api-key") == b"k-123"
    assert b'app="envapp"' in read("/etc/podinfo/labels")
    # The default service account volume Kubernetes injects is there too.
    assert read("/var/run/secrets/kubernetes.io/serviceaccount/namespace") == namespace.encode()
    # Mounts belong to the pod: the host does not see them.
    assert not Path("/etc/envapp/settings/greeting").exists()


def test_the_projected_token_is_bound_to_the_pod_and_audience(
    control_plane: Cluster, core: kubernetes.client.CoreV1Api, namespace: str, deployment: str
) -> None:
    pod = ready_pod(core, namespace)
    _, token = pod_http(pod.status.pod_ip, "/file?path=/var/run/secrets/switchboard/token")
    claims = json.loads(base64.urlsafe_b64decode(token.split(b".")[1] + b"=="))
    assert claims["aud"] == ["switchboard-test"]
    assert claims["exp"] - claims["iat"] == 600
    review = kubernetes.client.AuthenticationV1Api(control_plane.api_client()).create_token_review(
        {
            "spec": {"token": token.decode(), "audiences": ["switchboard-test"]},
        }
    )
    assert review.status.authenticated, review.status.error
    assert review.status.user.username == f"system:serviceaccount:{namespace}:default"
    assert review.status.user.extra["authentication.kubernetes.io/pod-uid"] == [pod.metadata.uid]


def test_deleting_a_pod_sends_sigterm_and_removes_it(
    core: kubernetes.client.CoreV1Api, namespace: str, deployment: str, marker_dir: Path
) -> None:
    pod = ready_pod(core, namespace)
    core.delete_namespaced_pod(pod.metadata.name, namespace)

    marker = marker_dir / f"{pod.metadata.name}.SIGTERM"
    wait_for(marker.exists, TIMEOUT, f"the SIGTERM marker of {pod.metadata.name}")
    assert json.loads(marker.read_text())["signal"] == "SIGTERM"

    def gone() -> bool:
        try:
            core.read_namespaced_pod(pod.metadata.name, namespace)
        except kubernetes.client.ApiException as error:
            return error.status == 404
        return False

    wait_for(gone, TIMEOUT, f"pod {pod.metadata.name} removed from the API")
    replacement = ready_pod(core, namespace, exclude=pod.metadata.name)
    assert replacement.metadata.name != pod.metadata.name


@pytest.mark.parametrize(
    ("exit_code", "phase", "reason"), [(0, "Succeeded", "Completed"), (4, "Failed", "Error")]
)
def test_a_pod_that_runs_to_completion_reports_its_exit(
    core: kubernetes.client.CoreV1Api, namespace: str, exit_code: int, phase: str, reason: str
) -> None:
    name = f"once-{exit_code}"
    core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": name},
            "spec": {
                "restartPolicy": "Never",
                "containers": [
                    {
                        "name": "once",
                        "image": TESTAPP_IMAGE,
                        "args": ["--exit-after", "0", "--exit-code", str(exit_code)],
                    }
                ],
            },
        },
    )

    def finished() -> Any:
        pod = core.read_namespaced_pod(name, namespace)
        return pod if pod.status.phase == phase else None

    pod = wait_for(finished, TIMEOUT, f"pod {name} in phase {phase}")
    [status] = pod.status.container_statuses
    assert status.state.terminated.exit_code == exit_code
    assert status.state.terminated.reason == reason
    assert status.restart_count == 0
