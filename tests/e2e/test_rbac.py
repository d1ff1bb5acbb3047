"""Finding 6, least privilege proven from the audit log: on a cluster of its own, the
operator runs under exactly the chart's RBAC files (the Regions' role bound in the one
namespace of `regionNamespaces`, as the chart binds it, and not in the operator's own)
through the Region, Room, join, failover, drain and key-rotation flows, reissues the report
receiver's serving certificate, and a Region in another namespace is refused. Then, from
the API server's audit log: the operator was never refused (no 403), every request it made
is granted, and every permission the chart grants was used.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fixtures.cluster import Cluster, api_key_secret, apply, condition, ready_pods
from fixtures.cluster import get_json as get
from fixtures.joining import join_room, patch_signing_secret, private_pem_b64
from fixtures.nodeagent import TEST_AGENT_SETTINGS
from fixtures.rbac import compare, describe, documented, permissions, scopes, table, uses
from fixtures.sfu_clients import SignallingClient
from fixtures.sfu_harness import processes_with
from fixtures.waiting import eventually
from switchboard_api import labels
from switchboard_api.contract import ReportTls, SfuEnv
from switchboard_dev.images import agent_image_stores
from switchboard_dev.node_agent_process import NodeAgentProcess
from switchboard_dev.operator_process import (
    OPERATOR_NAMESPACE,
    OPERATOR_USER,
    OperatorProcess,
    grant_operator_rbac,
    local_operator_env,
)
from switchboard_dev.paths import OPERATOR_RBAC, REPO_ROOT
from switchboard_dev.stack import install_crds
from switchboard_localcluster.controlplane import ControlPlane, free_port
from switchboard_localcluster.nodeagent.presets import (
    NODE_AGENT_GROUPS,
    NODE_AGENT_USER,
    agent_config,
)
from switchboard_operator.config import REGION_NAMESPACES_ENV, OperatorConfig
from switchboard_operator.logic.report_certs import (
    RENEW_BEFORE,
    SERVING_LIFETIME,
    issue_serving,
    new_ca,
    serving_names,
)
from switchboard_operator.reportapi.tls import secret_data

pytestmark = [pytest.mark.cluster, pytest.mark.nodeagent]

REGION, REFUSED = "rbac-eu", "rbac-refused"
MEDIA_NS, ELSEWHERE_NS, ROOMS_NS = "rbac-media", "rbac-elsewhere", "rbac-rooms"
API_KEY = "rbac-key-0123456789abcdef"
OPERATOR_POD = "switchboard-operator-rbac"
"""Stands for the chart's operator pod, which the leader labels (never scheduled here)."""
SERVICE_ACCOUNT = "switchboard-operator"
NEW_KID = "29991231-rbac"
POD_ADDRESSES = "127.90.0.0/16"
DUE_IN = RENEW_BEFORE - dt.timedelta(days=10)
"""The seeded serving certificate ends this soon: inside the reissue window."""


class Stack:
    def __init__(self, plane: ControlPlane, workdir: Path) -> None:
        self.plane = plane
        self.cluster = Cluster(plane)
        self.workdir = workdir
        env = local_operator_env(free_port())
        env |= {
            "POD_NAME": OPERATOR_POD,
            "SWITCHBOARD_SERVICE_ACCOUNT": SERVICE_ACCOUNT,
            REGION_NAMESPACES_ENV: MEDIA_NS,
        }
        self.operator = OperatorProcess(
            plane.issue_kubeconfig(OPERATOR_USER), workdir / "operator", env=env
        )
        # An install whose report serving certificate is due: the operator reissues it.
        self.due_report_tls = _due_report_tls(
            serving_names(OperatorConfig.from_env(env).report_url)
        )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("rbac")
    plane = ControlPlane(workdir=work / "cluster")
    plane.start()
    agent = None
    try:
        setup = Stack(plane, work)
        cluster = setup.cluster
        install_crds(plane)
        cluster.create_namespace(OPERATOR_NAMESPACE)
        cluster.create_namespace(MEDIA_NS, {"pod-security.kubernetes.io/enforce": "restricted"})
        cluster.create_namespace(ELSEWHERE_NS)
        cluster.create_namespace(ROOMS_NS)
        grant_operator_rbac(plane, region_namespaces=[MEDIA_NS])
        # What the chart creates beside the operator's RBAC: its ServiceAccount (owner of
        # the Lease and signing key) and its pod, which this process stands for.
        plane.kubectl("create", "serviceaccount", SERVICE_ACCOUNT, "-n", OPERATOR_NAMESPACE)
        apply(cluster, _standin_pod())
        apply(cluster, api_key_secret("rbac-api-key", OPERATOR_NAMESPACE, API_KEY, ROOMS_NS))
        apply(cluster, setup.due_report_tls)
        config = agent_config(
            work / "agent" / "state",
            {"eu-west": ["eu-west-a"]},
            POD_ADDRESSES,
            image_stores=agent_image_stores(),
            **TEST_AGENT_SETTINGS,
        )
        kubeconfig = plane.issue_kubeconfig(NODE_AGENT_USER, NODE_AGENT_GROUPS)
        agent = NodeAgentProcess(plane, work / "agent", config, kubeconfig).start()
        setup.operator.start()
        try:
            yield setup
        finally:
            setup.operator.stop()
    finally:
        if agent is not None:
            agent.stop()
        plane.stop()


def _standin_pod() -> dict:
    """A pod that is never scheduled (a scheduling gate): only its labels matter."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": OPERATOR_POD, "namespace": OPERATOR_NAMESPACE},
        "spec": {
            "schedulingGates": [{"name": "switchboard.dev/never"}],
            "containers": [{"name": "operator", "image": "switchboard/operator:unused"}],
        },
    }


def _due_report_tls(names: tuple[str, ...]) -> dict:
    """The report receiver's Secret as an older install holds it: a CA, and a serving
    certificate for the receiver's names that ends within the reissue window."""
    now = dt.datetime.now(dt.UTC)
    issued = now + DUE_IN - SERVING_LIFETIME
    ca = new_ca(issued)
    serving = issue_serving(ca, names, issued)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": ReportTls.SERVING_SECRET, "namespace": OPERATOR_NAMESPACE},
        "type": "kubernetes.io/tls",
        "data": secret_data(ca, serving),
    }


def report_tls(cluster: Cluster) -> tuple[str, dt.datetime]:
    """The report receiver's CA (base64) and the end of its serving certificate."""
    data = get(cluster, "secret", ReportTls.SERVING_SECRET, "-n", OPERATOR_NAMESPACE)["data"]
    serving = x509.load_pem_x509_certificate(base64.b64decode(data["tls.crt"]))
    return data[ReportTls.CA_KEY], serving.not_valid_after_utc


def region(name: str, namespace: str, *, turn: bool) -> dict:
    turn_spec: dict = {"enabled": turn}
    if turn:
        turn_spec |= {"replicas": 1, "allowedPeerCIDRs": ["127.0.0.0/8"]}
    return {
        "apiVersion": "switchboard.dev/v1alpha1",
        "kind": "Region",
        "metadata": {"name": name},
        "spec": {
            "namespace": namespace,
            "topologyRegion": "eu-west",
            "location": {"latitude": 52.0, "longitude": 5.0},
            "sfu": {"minReplicas": 2, "maxReplicas": 2, "capacityPerPod": 1000},
            "turn": turn_spec,
        },
    }


def room(name: str, **spec) -> dict:
    return {
        "apiVersion": "switchboard.dev/v1alpha1",
        "kind": "Room",
        "metadata": {"name": name, "namespace": ROOMS_NS},
        "spec": {"region": REGION, "maxParticipants": 4, **spec},
    }


def room_status(cluster: Cluster, name: str) -> dict:
    return get(cluster, "room", name, "-n", ROOMS_NS).get("status") or {}


async def join(operator: OperatorProcess, name: str, identity: str, create: bool = False) -> dict:
    return await join_room(operator.http_url, ROOMS_NS, name, identity, API_KEY, create=create)


async def connect(joined: dict) -> SignallingClient:
    url = joined["url"].replace("http://", "ws://", 1) + "/ws"
    client = SignallingClient(url)
    assert (await client.connect(joined["token"]))["type"] == "joined"
    return client


def turn_objects(cluster: Cluster) -> list[str]:
    items = get(cluster, "deployments,services,pdb,networkpolicies,sa", "-n", MEDIA_NS)["items"]
    return [i["metadata"]["name"] for i in items if "-turn" in i["metadata"]["name"]]


async def refused_region(cluster: Cluster) -> None:
    """The Region outside regionNamespaces: Degraded with a reason and message naming the
    allowed namespaces, a Warning Event saying so, and nothing in its namespace."""
    degraded = await eventually(
        lambda: condition(get(cluster, "region", REFUSED), "Degraded") or None,
        60,
        "the refused Region's Degraded condition",
    )
    assert degraded["status"] == "True" and degraded["reason"] == "NamespaceNotAllowed"
    assert MEDIA_NS in degraded["message"], degraded
    events = get(cluster, "events", "-n", "default")["items"]
    (event,) = [
        e
        for e in events
        if e["involvedObject"].get("name") == REFUSED and e["reason"] == "NamespaceNotAllowed"
    ]
    assert event["type"] == "Warning" and MEDIA_NS in event["message"]
    managed = f"{labels.APP_MANAGED_BY}={labels.MANAGED_BY_VALUE}"
    kinds = "pods,services,sa,cm,secrets,deployments,pdb,networkpolicies"
    assert get(cluster, kinds, "-n", ELSEWHERE_NS, "-l", managed)["items"] == []


async def run_every_flow(stack: Stack) -> None:
    cluster, operator = stack.cluster, stack.operator

    # Reports: the serving certificate, due when the leader started, was reissued by the
    # same CA (a patch of the Secret, which the leader reads at start).
    def reissued() -> bool:
        ca, ends = report_tls(cluster)
        assert ca == stack.due_report_tls["data"][ReportTls.CA_KEY], "the report CA replaced"
        return ends - dt.datetime.now(dt.UTC) > RENEW_BEFORE

    await eventually(
        reissued, 60, "the due report serving certificate reissued", fatal=(AssertionError,)
    )

    # Region: SFU pods, TURN, what they need; and a Region outside regionNamespaces.
    apply(cluster, region(REGION, MEDIA_NS, turn=True))
    apply(cluster, region(REFUSED, ELSEWHERE_NS, turn=False))
    await eventually(lambda: len(ready_pods(cluster, MEDIA_NS)) == 2, 180, "two ready SFU pods")
    await eventually(lambda: len(turn_objects(cluster)) >= 5, 60, "the Region's TURN objects")
    await refused_region(cluster)

    # Room: a Room applied with kubectl is placed; one created by a join; one that
    # closes when empty and is deleted after its TTL.
    apply(cluster, room("applied"))
    await eventually(
        lambda: room_status(cluster, "applied").get("phase") == "Scheduled", 60, "placed"
    )
    await join(operator, "created", "ann", create=True)
    apply(cluster, room("short", emptyTimeoutSeconds=3, ttlSecondsAfterClosed=3))
    await eventually(
        lambda: room_status(cluster, "short").get("phase") == "Scheduled", 60, "placed"
    )
    await (await connect(await join(operator, "short", "erin"))).close()
    await eventually(
        lambda: cluster.kubectl("get", "room", "short", "-n", ROOMS_NS, check=False).returncode,
        90,
        "the closed Room deleted",
    )

    # Failover: the SFU of a room's pod is killed; the room moves, the pod is replaced.
    joined = await join(operator, "failover", "alice", create=True)
    alice = await connect(joined)
    lost = joined["pod"]
    (pid,) = processes_with(f"{SfuEnv.POD_NAME.value}={lost}")
    os.kill(pid, signal.SIGKILL)
    await eventually(
        lambda: room_status(cluster, "failover").get("pod") not in (None, lost),
        90,
        "the room re-placed on another pod",
    )
    await alice.close()
    await eventually(lambda: len(ready_pods(cluster, MEDIA_NS)) == 2, 180, "the lost pod replaced")

    # Drain: a pod annotated to drain hands its rooms over and is replaced.
    draining = room_status(cluster, "failover")["pod"]
    cluster.kubectl("annotate", "pod", draining, "-n", MEDIA_NS, "switchboard.dev/drain=true")
    await eventually(
        lambda: room_status(cluster, "failover").get("pod") not in (None, draining),
        90,
        "the drained pod's room moved",
    )
    await eventually(
        lambda: (
            draining not in {p["metadata"]["name"] for p in ready_pods(cluster, MEDIA_NS)}
            and len(ready_pods(cluster, MEDIA_NS)) == 2
        ),
        180,
        "the drained pod replaced",
    )

    # Key rotation: a new signing key signs once the SFU pods hold it.
    patch_signing_secret(cluster, {NEW_KID: private_pem_b64(Ed25519PrivateKey.generate())})

    async def signed_with_new_key() -> bool:
        joined = await join(operator, "failover", "bob")
        return bool(jwt.get_unverified_header(joined["token"])["kid"] == NEW_KID)

    await eventually(signed_with_new_key, 90, "a token signed with the new key")

    # The Region stops wanting TURN: its objects are deleted.
    apply(cluster, region(REGION, MEDIA_NS, turn=False))
    await eventually(lambda: not turn_objects(cluster), 60, "the TURN objects deleted")


async def test_the_operator_uses_exactly_the_permissions_the_chart_grants(stack, tmp_path):
    await run_every_flow(stack)
    # Leadership is released on the way out (the Lease's update): every request is in
    # the log once the process has exited (the API server writes it before answering).
    stack.operator.stop()
    saved = tmp_path / "audit.log"
    shutil.copyfile(stack.plane.audit_log.path, saved)
    print(f"audit log saved: {saved}")

    granted = permissions(OPERATOR_RBAC)
    bindings = get(stack.cluster, "rolebindings,clusterrolebindings", "-A")["items"]
    bound = scopes(bindings, OPERATOR_USER)
    # Bound as the chart binds them with `regionNamespaces: [rbac-media]`.
    assert bound == {
        "ClusterRole/switchboard-operator": None,
        "ClusterRole/switchboard-operator-regions": [MEDIA_NS],
        "Role/switchboard-operator": [OPERATOR_NAMESPACE],
    }
    result = compare(granted, uses(saved.read_bytes(), OPERATOR_USER), bound)
    flows = documented((REPO_ROOT / "docs" / "security.md").read_text())
    print(table(result, flows))
    assert not result.forbidden, describe(result.forbidden)
    assert not result.ungranted, describe(result.ungranted)
    assert not result.unused, result.unused
