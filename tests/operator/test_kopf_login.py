"""In a pod, kopf reaches the API server where the kubelet says it is (KUBERNETES_SERVICE_*),
as the operator's own client does, not at a DNS name only cluster DNS resolves."""

from __future__ import annotations

import kopf

from switchboard_operator import settings


def test_in_cluster_login_uses_the_service_address(monkeypatch):
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    info = kopf.ConnectionInfo(server="https://kubernetes.default.svc", token="t")
    assert settings._in_cluster(info).server == "https://10.96.0.1:443"
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
    assert settings._in_cluster(info).server == "https://[fd00::1]:443"


def test_outside_a_pod_nothing_changes(monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    info = kopf.ConnectionInfo(server="https://kubernetes.default.svc")
    assert settings._in_cluster(info) is info
    assert settings._in_cluster(None) is None
