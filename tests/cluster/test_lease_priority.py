"""API Priority and Fairness: the operator's Lease requests are served in the API server's
`leader-election` priority level (the chart's FlowSchema, applied for the operator's user
as the chart applies it for its ServiceAccount), apart from its bulk traffic. Checked from
what the API server says: its classification of each request (the
X-Kubernetes-PF-PriorityLevel-UID response header) and its own flow-control metrics."""

from __future__ import annotations

import json

import pytest
from kubernetes_asyncio import client, config

from fixtures.cluster import Cluster
from fixtures.flow_control import dispatched
from fixtures.waiting import eventually
from switchboard_dev.flow_schema import PRIORITY_LEVEL, operator_flow_schema
from switchboard_dev.operator_process import OPERATOR_NAMESPACE, OperatorProcess
from switchboard_operator.kit.leadership import LEASE_NAME

pytestmark = pytest.mark.cluster

SCHEMA = operator_flow_schema(OPERATOR_NAMESPACE)["metadata"]["name"]


def priority_level_uid(cluster: Cluster, name: str) -> str:
    out = cluster.kubectl("get", "prioritylevelconfiguration", name, "-o", "json").stdout
    return str(json.loads(out)["metadata"]["uid"])


async def test_the_operators_lease_calls_are_served_as_leader_election(
    operator: OperatorProcess, crds_installed: Cluster
):
    """The call the leader renews with, as the operator's user: the API server answers
    from the `leader-election` priority level; its other calls stay where they were."""
    leader_election = priority_level_uid(crds_installed, PRIORITY_LEVEL)
    configuration = client.Configuration()
    await config.load_kube_config(
        config_file=str(operator.kubeconfig), client_configuration=configuration
    )
    async with client.ApiClient(configuration) as api:
        leases = client.CoordinationV1Api(api)
        lease = await eventually(
            lambda: leases.read_namespaced_lease_with_http_info(LEASE_NAME, OPERATOR_NAMESPACE),
            60,
            "the operator to create its Lease",
        )
        _, _, headers = lease
        assert headers["X-Kubernetes-PF-PriorityLevel-UID"] == leader_election
        _, _, headers = await client.CoreV1Api(api).list_namespaced_secret_with_http_info(
            OPERATOR_NAMESPACE, label_selector="switchboard.dev/api-key=true"
        )
        assert headers["X-Kubernetes-PF-PriorityLevel-UID"] != leader_election


async def test_the_leaders_renewals_are_dispatched_as_leader_election(
    operator: OperatorProcess, crds_installed: Cluster
):
    """The running leader's own renewals (one a second), as the API server counts them."""
    plane = crds_installed.require_local("reads the API server's metrics")
    before = dispatched(plane, SCHEMA, PRIORITY_LEVEL)
    await eventually(
        lambda: dispatched(plane, SCHEMA, PRIORITY_LEVEL),
        60,
        f"the leader's Lease requests to be dispatched through {SCHEMA} as {PRIORITY_LEVEL}",
        interval=1.0,
        until=lambda now: now >= before + 3,
    )
