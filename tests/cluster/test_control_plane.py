"""The local control plane: a real, pinned Kubernetes that starts fast and leaves nothing behind."""

from __future__ import annotations

import json
import os
import socket
import time

import pytest

from fixtures.waiting import wait_for
from switchboard_localcluster import binaries
from switchboard_localcluster.controlplane import ADMIN_USER, ControlPlane

pytestmark = pytest.mark.cluster


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0): count it as gone.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split()[2] != "Z"


def test_starts_pinned_version_and_stops_without_leftovers(tmp_path):
    started = time.monotonic()
    plane = ControlPlane(workdir=tmp_path / "cp").start(timeout=60)
    elapsed = time.monotonic() - started
    print(f"control plane warm start: {elapsed:.1f}s")
    try:
        assert plane.version() == binaries.pinned_version()
        nodes = json.loads(plane.kubectl("version", "-o", "json").stdout)
        assert nodes["serverVersion"]["gitVersion"] == binaries.pinned_version()
        pids = plane.pids
        assert len(pids) == 4  # etcd, apiserver, controller-manager, scheduler
        port = plane.port
        assert _port_open(port)
    finally:
        plane.stop()
    assert not [pid for pid in pids if _alive(pid)]
    assert not _port_open(port)


def test_api_is_tls_with_client_certificates_and_rbac(control_plane):
    plane = control_plane.require_local("checks the generated PKI and RBAC")
    nobody = control_plane.issue_kubeconfig("nobody")
    denied = control_plane.kubectl("get", "pods", "-A", kubeconfig=nobody, check=False)
    assert denied.returncode != 0
    assert 'User "nobody" cannot list resource "pods"' in denied.stderr
    assert (
        control_plane.kubectl("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}").stdout
        == ADMIN_USER
    )
    assert plane.url.startswith("https://127.0.0.1:")


def test_audit_log_attributes_writes_to_their_user(control_plane):
    audit = control_plane.require_local("reads the audit log").audit_log
    mark = audit.mark()
    control_plane.kubectl("create", "configmap", "audited", "-n", "default", "--from-literal=k=v")

    def audited_writes():
        return [w for w in audit.writes(since=mark, user=ADMIN_USER) if w.name == "audited"]

    wait_for(audited_writes, 30, "the audit log to record the write")
    writes = audited_writes()
    assert [(w.verb, w.resource, w.namespace, w.code) for w in writes] == [
        ("create", "configmaps", "default", 201)
    ]


def _cached_consistent_lists(control_plane, resource: str) -> float:
    metrics = control_plane.kubectl("get", "--raw", "/metrics").stdout
    labels = f'fallback="false",group="",resource="{resource}",success="true"'
    prefix = f"apiserver_watch_cache_consistent_read_total{{{labels}}} "
    return sum(
        float(line[len(prefix) :]) for line in metrics.splitlines() if line.startswith(prefix)
    )


def test_consistent_lists_are_served_from_the_watch_cache(control_plane):
    # Needs an etcd that answers RequestWatchProgress (3.5.1 refused it, so every consistent
    # list went to etcd and idle watches got no progress bookmarks).
    control_plane.require_local("checks the etcd it started")
    before = _cached_consistent_lists(control_plane, "configmaps")
    control_plane.kubectl("get", "configmaps", "-n", "default")
    assert _cached_consistent_lists(control_plane, "configmaps") > before


def test_pod_security_admission_rejects_insecure_pods(control_plane):
    control_plane.create_namespace(
        "psa-restricted", {"pod-security.kubernetes.io/enforce": "restricted"}
    )
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "insecure", "namespace": "psa-restricted"},
        "spec": {
            "containers": [{"name": "c", "image": "x", "securityContext": {"privileged": True}}]
        },
    }
    result = control_plane.kubectl("apply", "-f", "-", input=json.dumps(pod), check=False)
    assert result.returncode != 0
    assert 'violates PodSecurity "restricted:latest"' in result.stderr
    assert "privileged" in result.stderr


def test_controllers_and_scheduler_run(control_plane):
    control_plane.require_local("checks the controllers it started")
    # The service-account controller (controller-manager) creates `default` in new namespaces.
    # create_namespace waits for the service-account controller's `default` SA.
    control_plane.create_namespace("controllers-check")
    assert control_plane.kubectl("get", "sa", "default", "-n", "controllers-check").returncode == 0
