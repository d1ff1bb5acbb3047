"""End to end: a Region's coturn pod relays for credentials minted from the Region's secret,
refuses wrong credentials and peers outside `allowedPeerCIDRs`, keeps relays flowing
while its shared secret is rotated, and serves a renewed `turns:` certificate without a
restart (the sidecar signals coturn through the pod's shared process namespace, which the
node agent's container runtime provides as a kubelet's pause container does).

Real control plane and operator; the node agent runs Debian's `turnserver` and the secret
sync sidecar as the pod; the clients are aiortc peers forced to `iceTransportPolicy=relay`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest

from fixtures.cluster import Cluster, is_ready, ready_pods
from fixtures.cluster import get_json as get
from fixtures.nodeagent import NodeAgent, NodeAgents
from fixtures.tls import TestCa, serial_of, served_serial
from fixtures.turn_clients import (
    RelayedChannel,
    TurnServer,
    allocation_error,
    permission_error,
    turn_allocation,
)
from fixtures.waiting import eventually, wait_for
from switchboard_api import labels
from switchboard_api.region import Region
from switchboard_localcluster.pki import KeyPair
from switchboard_operator.logic.manifests import turn_secret_name, turn_secrets_from_secret
from switchboard_operator.logic.manifests.keys import TURN_SECRET_ROTATED_AT
from switchboard_operator.logic.manifests.turn import (
    COTURN_CONTAINER,
    LISTENER_TLS,
    LISTENER_UDP,
    SYNC_CONTAINER,
)
from switchboard_operator.logic.turn_rotation import ROTATE_ANNOTATION
from switchboard_operator.reconcilers.regions.workloads import ROTATION_STARTED_AT
from switchboard_turn.coturn import TurnSecrets
from switchboard_turn.credentials import TurnCredential, mint_turn_credential

pytestmark = [pytest.mark.cluster, pytest.mark.nodeagent]

REGION = "turn-lab"
NAMESPACE = "e2e-turn"
TOPOLOGY_REGION = "turn-lab"
VOLUME_RESYNC_SECONDS = 1
"""The dedicated node's Secret volume refresh (a kubelet's is about a minute): rotation
phases reach coturn within seconds, so the test can watch them arrive."""
READY_TIMEOUT = 120
ROTATION_TIMEOUT = 60
UNAUTHORIZED = 401
FORBIDDEN = 403
# Outside allowedPeerCIDRs (127.0.0.0/8) and in coturn's default-denied ranges: private
# networks, carrier-grade NAT and the cloud metadata address.
REFUSED_PEERS = ["10.0.0.1", "172.16.0.1", "192.168.1.1", "100.64.0.1", "169.254.169.254"]
DISCARD_PORT = 9
TLS_SECRET = "turn-lab-tls"
TURN_HOST = "turn.turn-lab.example.test"
"""The TURN Service's public name, which its certificate names."""


def tls_secret(pair: KeyPair) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {"name": TLS_SECRET, "namespace": NAMESPACE},
        "data": {
            "tls.crt": base64.b64encode(pair.cert.read_bytes()).decode(),
            "tls.key": base64.b64encode(pair.key.read_bytes()).decode(),
        },
    }


def region_manifest() -> dict[str, Any]:
    return {
        "apiVersion": "switchboard.dev/v1alpha1",
        "kind": "Region",
        "metadata": {"name": REGION},
        "spec": {
            "namespace": NAMESPACE,
            "topologyRegion": TOPOLOGY_REGION,
            "location": {"latitude": -33.9, "longitude": 151.2},
            "sfu": {"minReplicas": 1, "maxReplicas": 1, "capacityPerPod": 100},
            "turn": {
                "enabled": True,
                "replicas": 1,
                "allowedPeerCIDRs": ["127.0.0.0/8"],
                "tlsSecretName": TLS_SECRET,
            },
        },
    }


def ready_pod(cluster: Cluster, component: str) -> dict[str, Any] | None:
    ready = ready_pods(cluster, NAMESPACE, component)
    return ready[0] if len(ready) == 1 else None


def container_port(pod: dict[str, Any], container: str, port_name: str) -> int:
    spec = next(c for c in pod["spec"]["containers"] if c["name"] == container)
    return next(p["containerPort"] for p in spec["ports"] if p["name"] == port_name)


@dataclass(frozen=True)
class LiveRegion:
    """The Region under test as a client of its TURN service sees it."""

    cluster: Cluster
    agent: NodeAgent
    turn: TurnServer
    turn_pod: str
    sfu_pod_ip: str
    secret_name: str
    credential_ttl_seconds: int
    ca: TestCa
    served: KeyPair
    """The certificate the TLS Secret held when the Region became Ready."""

    def secret(self) -> dict[str, Any]:
        return get(self.cluster, "secret", self.secret_name, "-n", NAMESPACE)

    def secrets(self) -> TurnSecrets:
        return turn_secrets_from_secret(self.secret())


def mint(secret: str, identity: str, ttl_seconds: int, now: float | None = None) -> TurnCredential:
    """A credential exactly as the join API mints it from the Region's minted secret."""
    issued_at = time.time() if now is None else now
    return mint_turn_credential(secret.encode(), identity, issued_at, ttl_seconds)


@pytest.fixture(scope="module")
def turn_node(node_agents: NodeAgents) -> Iterator[NodeAgent]:
    agent = node_agents.start(
        {TOPOLOGY_REGION: [f"{TOPOLOGY_REGION}-a", f"{TOPOLOGY_REGION}-b"]},
        name="turn",
        volumeResyncSeconds=VOLUME_RESYNC_SECONDS,
    )
    yield agent
    # Keep later modules' unpinned pods off this node (its agent stops with the session).
    for node in agent.node_names:
        agent.cluster.kubectl("cordon", node)


@pytest.fixture(scope="module")
def turn_region(
    operator, crds_installed: Cluster, turn_node: NodeAgent, tmp_path_factory
) -> Iterator[LiveRegion]:
    cluster = crds_installed
    cluster.create_namespace(NAMESPACE, {"pod-security.kubernetes.io/enforce": "restricted"})
    ca = TestCa(tmp_path_factory.mktemp("turn-ca"))
    served = ca.issue(TURN_HOST)
    cluster.kubectl("apply", "-f", "-", input=json.dumps(tls_secret(served)))
    manifest = region_manifest()
    started = time.monotonic()
    cluster.kubectl("apply", "-f", "-", input=json.dumps(manifest))
    wait_for(lambda: is_ready(get(cluster, "region", REGION)), READY_TIMEOUT, "Region Ready=True")
    print(f"\nRegion {REGION} apply -> Ready=True: {time.monotonic() - started:.1f}s")
    turn_pod = wait_for(lambda: ready_pod(cluster, labels.COMPONENT_TURN), 30, "a Ready TURN pod")
    sfu_pod = wait_for(lambda: ready_pod(cluster, labels.COMPONENT_SFU), 30, "a Ready SFU pod")
    assert turn_pod["spec"]["nodeName"] in turn_node.node_names
    assert sfu_pod["spec"]["nodeName"] in turn_node.node_names
    region = Region.model_validate(manifest)
    yield LiveRegion(
        cluster=cluster,
        agent=turn_node,
        turn=TurnServer(
            turn_pod["status"]["podIP"], container_port(turn_pod, COTURN_CONTAINER, LISTENER_UDP)
        ),
        turn_pod=turn_pod["metadata"]["name"],
        sfu_pod_ip=sfu_pod["status"]["podIP"],
        secret_name=turn_secret_name(region),
        credential_ttl_seconds=region.spec.turn.credential_ttl_seconds,
        ca=ca,
        served=served,
    )
    cluster.kubectl("delete", "region", REGION, "--wait=false")
    wait_for(
        lambda: get(cluster, "pods", "-n", NAMESPACE)["items"] == [],
        READY_TIMEOUT,
        f"the Region's pods gone from {NAMESPACE}",
    )
    cluster.kubectl("delete", "namespace", NAMESPACE, "--wait=false")


async def test_relay_only_peers_connect_through_the_coturn_pod(turn_region: LiveRegion):
    minted = (await asyncio.to_thread(turn_region.secrets)).minted
    ttl = turn_region.credential_ttl_seconds
    async with RelayedChannel.open(
        turn_region.turn, mint(minted, "alice", ttl), mint(minted, "bob", ttl)
    ) as channel:
        round_trip = await channel.round_trip(10)
        pairs = channel.selected_pairs()
    print(
        f"relay-only data channel through {turn_region.turn.uri}: connected in "
        f"{channel.connect_seconds * 1000:.0f} ms, mean round trip {round_trip * 1000:.2f} ms"
    )
    for pair in pairs:
        assert (pair.local_type, pair.remote_type) == ("relay", "relay")
        # Both relayed addresses belong to the coturn pod: the data went through it.
        assert pair.local_address[0] == turn_region.turn.host
        assert pair.remote_address[0] == turn_region.turn.host


async def test_wrong_or_expired_credentials_get_401(turn_region: LiveRegion):
    minted = (await asyncio.to_thread(turn_region.secrets)).minted
    ttl = turn_region.credential_ttl_seconds
    wrong_secret = mint("not-the-regions-secret-0123456789", "mallory", ttl)
    expired = mint(minted, "late", ttl, now=time.time() - 2 * ttl)
    assert await allocation_error(turn_region.turn, wrong_secret) == UNAUTHORIZED
    assert await allocation_error(turn_region.turn, expired) == UNAUTHORIZED
    assert await allocation_error(turn_region.turn, mint(minted, "alice", ttl)) is None


async def test_peers_outside_allowed_cidrs_are_refused(turn_region: LiveRegion):
    minted = (await asyncio.to_thread(turn_region.secrets)).minted
    credential = mint(minted, "alice", turn_region.credential_ttl_seconds)
    async with turn_allocation(turn_region.turn, credential) as allocation:
        # The SFU pod network (here loopback) is what allowedPeerCIDRs admits.
        assert await permission_error(allocation, (turn_region.sfu_pod_ip, DISCARD_PORT)) is None
        refused = {
            peer: await permission_error(allocation, (peer, DISCARD_PORT)) for peer in REFUSED_PEERS
        }
    assert refused == dict.fromkeys(REFUSED_PEERS, FORBIDDEN)


async def test_rotation_phase_one_keeps_relays_and_accepts_the_next_secret(
    turn_region: LiveRegion,
):
    cluster = turn_region.cluster
    ttl = turn_region.credential_ttl_seconds
    before = await asyncio.to_thread(turn_region.secrets)

    def old(identity: str) -> TurnCredential:
        return mint(before.minted, identity, ttl)

    async with RelayedChannel.open(turn_region.turn, old("alice"), old("bob")) as live:
        await live.round_trip()
        pairs_before = live.selected_pairs()

        request = f"e2e-{time.time_ns()}"
        requested_at, requested_wall = time.monotonic(), time.time()
        await asyncio.to_thread(
            cluster.kubectl, "annotate", "region", REGION, f"{ROTATE_ANNOTATION}={request}"
        )

        async def accepting_phase() -> dict[str, Any] | None:
            secret = await asyncio.to_thread(turn_region.secret)
            served = (secret["metadata"].get("annotations") or {}).get(ROTATION_STARTED_AT)
            return secret if served == request else None

        secret = await eventually(accepting_phase, ROTATION_TIMEOUT, "rotation phase one")
        phase_one_seconds = time.monotonic() - requested_at
        during = turn_secrets_from_secret(secret)
        assert during == TurnSecrets(minted=before.minted, next=during.next)
        # The phase's start is recorded in the cluster, so a restarted operator knows when
        # the next phase is due (the annotation has whole seconds).
        began = datetime.fromisoformat(secret["metadata"]["annotations"][TURN_SECRET_ROTATED_AT])
        assert int(requested_wall) <= began.timestamp() <= time.time()

        # Credentials minted before the rotation still allocate, and the live relay flows.
        assert await allocation_error(turn_region.turn, old("carol")) is None
        await live.round_trip()

        # coturn accepts the next secret once the sidecar has synced the refreshed volume.
        assert during.next is not None
        upcoming = mint(during.next, "dave", ttl)

        async def next_secret_accepted() -> bool:
            return await allocation_error(turn_region.turn, upcoming) is None

        await eventually(
            next_secret_accepted, ROTATION_TIMEOUT, "coturn accepting the next secret", interval=0.5
        )
        accepted_seconds = time.monotonic() - requested_at
        async with RelayedChannel.open(
            turn_region.turn, mint(during.next, "erin", ttl), mint(during.next, "frank", ttl)
        ) as fresh:
            await fresh.round_trip()

        await live.round_trip()
        assert live.selected_pairs() == pairs_before, "the live relay moved to another pair"

    print(
        f"rotation phase one: Secret gained the next secret {phase_one_seconds:.1f}s after "
        f"the request; coturn accepted it after {accepted_seconds:.1f}s"
    )
    events = await asyncio.to_thread(
        get,
        cluster,
        "events",
        "-n",
        "default",
        "--field-selector",
        f"involvedObject.name={REGION},reason=TurnSecretRotation",
    )
    assert events["items"], "no TurnSecretRotation Event on the Region"
    logged = "".join(
        turn_region.agent.container_log(NAMESPACE, turn_region.turn_pod, container)
        for container in (COTURN_CONTAINER, SYNC_CONTAINER)
    )
    assert logged, "no TURN pod logs to check"
    for value in during.accepted:
        assert value not in logged, "a TURN shared secret appears in the TURN pod's logs"


async def test_a_renewed_turn_certificate_is_served_without_a_restart(turn_region: LiveRegion):
    cluster, ca = turn_region.cluster, turn_region.ca
    pod = await asyncio.to_thread(get, cluster, "pod", turn_region.turn_pod, "-n", NAMESPACE)
    port = container_port(pod, COTURN_CONTAINER, LISTENER_TLS)
    host = turn_region.turn.host

    async def serial() -> int:
        return await served_serial(host, port, ca, TURN_HOST)

    assert await eventually(serial, 30, "coturn's turns: listener") == serial_of(turn_region.served)

    def coturn_status(body: dict[str, Any]) -> tuple[str, int]:
        status = next(
            s for s in body["status"]["containerStatuses"] if s["name"] == COTURN_CONTAINER
        )
        return status["containerID"], status["restartCount"]

    before = coturn_status(pod)
    renewed = ca.issue(TURN_HOST)
    await asyncio.to_thread(
        cluster.kubectl, "apply", "-f", "-", input=json.dumps(tls_secret(renewed))
    )
    await eventually(
        serial,
        ROTATION_TIMEOUT,
        "coturn to serve the renewed certificate",
        until=lambda served: served == serial_of(renewed),
    )
    # The same coturn process serves it: no container restarted, no pod replaced.
    after = await asyncio.to_thread(get, cluster, "pod", turn_region.turn_pod, "-n", NAMESPACE)
    assert coturn_status(after) == before
