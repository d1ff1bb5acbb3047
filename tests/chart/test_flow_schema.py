"""The chart's leader-election FlowSchema names the operator's own ServiceAccount (the one
its Deployment runs as) and its Lease namespace, and the values switch removes it."""

from __future__ import annotations

import pytest
from chart_render import NAMESPACE, one, pod_spec, render

from switchboard_dev.helm import helm_binary


@pytest.fixture(scope="module")
def helm():
    return str(helm_binary(build=True))


def test_the_flow_schema_classifies_the_operators_own_lease_requests(helm):
    docs = render(helm, "--set", "fullnameOverride=sb-operator")
    (rule,) = one(docs, "FlowSchema")["spec"]["rules"]
    (subject,) = rule["subjects"]
    assert subject["serviceAccount"] == {
        "name": pod_spec(docs)["serviceAccountName"],
        "namespace": NAMESPACE,
    }
    (resources,) = rule["resourceRules"]
    assert resources["resources"] == ["leases"]
    assert resources["namespaces"] == [NAMESPACE]
    assert one(docs, "FlowSchema")["spec"]["priorityLevelConfiguration"] == {
        "name": "leader-election"
    }


def test_the_flow_schema_can_be_left_out(helm):
    docs = render(helm, "--set", "leaderElectionFlowSchema.enabled=false")
    assert "FlowSchema" not in {d["kind"] for d in docs}
