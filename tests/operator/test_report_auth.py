"""Capacity reports authenticate with pod-bound ServiceAccount tokens verified locally."""

from __future__ import annotations

import json
import time

import pytest
from kubernetes_asyncio import config as kconfig

from switchboard_api.contract import REPORT_TOKEN_AUDIENCE, CapacityReport
from switchboard_dev.operator_process import OPERATOR_USER, grant_operator_rbac
from switchboard_operator.logic.reportauth import (
    ReportAuthError,
    check_reporter,
    verify_report_token,
)
from switchboard_operator.reportapi.jwks import JwksCache

pytestmark = pytest.mark.cluster

NAMESPACE = "report-auth"


def _pod(name: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"serviceAccountName": "sfu", "containers": [{"name": "sfu", "image": "none"}]},
    }


def _token(cluster, pod: str, audience: str = REPORT_TOKEN_AUDIENCE) -> str:
    return cluster.kubectl(
        "create",
        "token",
        "sfu",
        "-n",
        NAMESPACE,
        f"--audience={audience}",
        "--bound-object-kind=Pod",
        f"--bound-object-name={pod}",
        "--duration=10m",
    ).stdout.strip()


def _report(pod: dict) -> CapacityReport:
    return CapacityReport.model_validate(
        {
            "podName": pod["metadata"]["name"],
            "podUID": pod["metadata"]["uid"],
            "namespace": NAMESPACE,
            "region": "eu-west",
            "sequence": 0,
            "sentAt": "2026-01-01T00:00:00Z",
            "capacity": 10,
            "load": 1,
            "cpuCores": 0.1,
            "participants": 2,
            "publishedTracks": 2,
            "forwardedTracks": 2,
            "bitrateInBps": 1e6,
            "bitrateOutBps": 1e6,
        }
    )


@pytest.fixture(scope="module")
def sfu_pods(control_plane):
    control_plane.create_namespace(NAMESPACE)
    control_plane.kubectl("create", "serviceaccount", "sfu", "-n", NAMESPACE)
    pods = {}
    for name in ("sfu-a", "sfu-b"):
        control_plane.kubectl("apply", "-f", "-", input=json.dumps(_pod(name)))
        pods[name] = json.loads(
            control_plane.kubectl("get", "pod", name, "-n", NAMESPACE, "-o", "json").stdout
        )
    return pods


@pytest.fixture
async def jwks(control_plane):
    grant_operator_rbac(control_plane)
    kubeconfig = control_plane.issue_kubeconfig(OPERATOR_USER)
    api = await kconfig.new_client_from_config(config_file=str(kubeconfig))
    cache = JwksCache(api)
    try:
        await cache.refresh(force=True)
        yield cache
    finally:
        await api.close()


async def test_a_pod_bound_token_verifies_locally_as_that_pod(control_plane, sfu_pods, jwks):
    audit = control_plane.require_local("counts API calls").audit_log
    token = _token(control_plane, "sfu-a")
    mark = audit.mark()
    for _ in range(20):
        identity = verify_report_token(token, jwks.jwks, jwks.issuer, now=time.time())
        check_reporter(identity, _report(sfu_pods["sfu-a"]))
    assert identity.pod_name == "sfu-a"
    assert identity.pod_uid == sfu_pods["sfu-a"]["metadata"]["uid"]
    assert identity.service_account == "sfu"
    # Verification itself made no request to the API server.
    assert [e for e in audit.events(since=mark) if e.user == OPERATOR_USER] == []


async def test_a_pod_cannot_report_for_another(control_plane, sfu_pods, jwks):
    identity = verify_report_token(
        _token(control_plane, "sfu-a"), jwks.jwks, jwks.issuer, time.time()
    )
    with pytest.raises(ReportAuthError, match="cannot report for"):
        check_reporter(identity, _report(sfu_pods["sfu-b"]))


async def test_wrong_audience_expiry_and_unknown_keys_are_refused(control_plane, sfu_pods, jwks):
    with pytest.raises(ReportAuthError, match="Audience"):
        verify_report_token(
            _token(control_plane, "sfu-a", audience="someone-else"),
            jwks.jwks,
            jwks.issuer,
            time.time(),
        )
    token = _token(control_plane, "sfu-a")
    with pytest.raises(ReportAuthError, match="expired"):
        verify_report_token(token, jwks.jwks, jwks.issuer, now=time.time() + 3600)
    with pytest.raises(ReportAuthError, match="unknown signing key") as error:
        verify_report_token(token, {"keys": []}, jwks.issuer, time.time())
    assert error.value.unknown_key
    with pytest.raises(ReportAuthError, match="malformed"):
        verify_report_token("not-a-jwt", jwks.jwks, jwks.issuer, time.time())
