"""The traffic a Region's workloads need, and the NetworkPolicies that admit only that.

`traffic_matrix` is the single statement of intent; the policies are generated from it
(default deny in both directions, one rule per flow). Nothing in the local cluster enforces
NetworkPolicy, so tests check the policies' content against the matrix. Policies do not
apply to hostNetwork pods: with HostNetwork exposure the SFU rules are documentation only.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final, Literal

from switchboard_api import ports
from switchboard_api.region import Region
from switchboard_operator.logic.manifests.context import OperatorContext
from switchboard_operator.logic.manifests.meta import (
    Component,
    Manifest,
    object_meta,
    selector_labels,
    workload_name,
)

Protocol = Literal["TCP", "UDP"]

NAMESPACE_NAME_LABEL: Final = "kubernetes.io/metadata.name"
"""Label the API server puts on every Namespace: its name."""
EPHEMERAL_PORTS: Final = (1024, 65535)
"""aiortc binds each ICE connection to a kernel-chosen port, so SFU media ports are only
known to be unprivileged."""
DNS_PORT: Final = 53


class Peer(StrEnum):
    """A party to a flow."""

    ANYWHERE = "anywhere"
    """Any address: clients on the internet, and everything inside the cluster."""
    CLUSTER = "cluster"
    """Any pod in the cluster (e.g. Prometheus)."""
    SFU = "sfu"
    """This Region's SFU pods."""
    TURN = "turn"
    """This Region's TURN pods."""
    CONTROL_PLANE = "control-plane"
    """The operator's control plane (capacity report receiver)."""


@dataclass(frozen=True)
class Flow:
    """Traffic from `source` to `destination` on a protocol and port range."""

    source: Peer
    destination: Peer
    protocol: Protocol
    port: int | None
    """First destination port; None for every port."""
    end_port: int | None
    """Last destination port of a range; None for a single port."""
    purpose: str


def _flow(
    source: Peer,
    destination: Peer,
    protocol: Protocol,
    port_range: int | tuple[int, int] | None,
    purpose: str,
) -> Flow:
    if isinstance(port_range, tuple):
        return Flow(source, destination, protocol, port_range[0], port_range[1], purpose)
    return Flow(source, destination, protocol, port_range, None, purpose)


def traffic_matrix(region: Region, ctx: OperatorContext) -> tuple[Flow, ...]:
    """Every flow the Region's workloads need; anything else is denied."""
    sfu, turn = Peer.SFU, Peer.TURN
    anywhere = Peer.ANYWHERE
    signalling = ports.SFU_SIGNALLING_PORT
    flows = [
        _flow(anywhere, sfu, "TCP", signalling, "signalling, WHIP/WHEP and probes"),
        _flow(Peer.CLUSTER, sfu, "TCP", ports.SFU_METRICS_PORT, "SFU metrics (Prometheus)"),
        _flow(anywhere, sfu, "UDP", EPHEMERAL_PORTS, "media from clients and TURN relays"),
        _flow(sfu, Peer.CONTROL_PLANE, "TCP", ctx.report_port, "capacity reports"),
        _flow(sfu, sfu, "TCP", ports.SFU_PEER_PORT, "lease checks between SFU pods"),
        _flow(sfu, anywhere, "UDP", DNS_PORT, "DNS"),
        _flow(sfu, anywhere, "TCP", DNS_PORT, "DNS"),
        # ICE checks start from both ends, so the SFU opens flows to client candidates.
        _flow(sfu, anywhere, "UDP", None, "media to clients and TURN relays"),
    ]
    spec = region.spec.turn
    if spec.enabled:
        relay = (spec.relay_port_range.min, spec.relay_port_range.max)
        flows += [
            _flow(anywhere, turn, "UDP", spec.listening_port, "TURN over UDP"),
            _flow(anywhere, turn, "TCP", spec.listening_port, "TURN over TCP"),
        ]
        if spec.tls_secret_name:
            flows.append(_flow(anywhere, turn, "TCP", spec.tls_port, "TURN over TLS"))
        flows += [
            _flow(sfu, turn, "UDP", relay, "SFU media to clients' relayed addresses"),
            _flow(turn, sfu, "UDP", EPHEMERAL_PORTS, "relayed client media to the SFU"),
        ]
        if spec.prometheus_exporter:
            flows.append(
                _flow(Peer.CLUSTER, turn, "TCP", ports.TURN_PROMETHEUS_PORT, "coturn metrics")
            )
    return tuple(flows)


def sfu_network_policy(region: Region, ctx: OperatorContext) -> Manifest:
    return _policy(region, ctx, Component.SFU, Peer.SFU)


def turn_network_policy(region: Region, ctx: OperatorContext) -> Manifest:
    return _policy(region, ctx, Component.TURN, Peer.TURN)


def _policy(region: Region, ctx: OperatorContext, component: Component, me: Peer) -> Manifest:
    matrix = traffic_matrix(region, ctx)
    ingress = [_rule(f, "from", f.source, region, ctx) for f in matrix if f.destination is me]
    egress = [_rule(f, "to", f.destination, region, ctx) for f in matrix if f.source is me]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": object_meta(region, workload_name(region, component), component),
        "spec": {
            "podSelector": {"matchLabels": selector_labels(region, component)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": ingress,
            "egress": egress,
        },
    }


def _rule(
    flow: Flow, direction: str, peer: Peer, region: Region, ctx: OperatorContext
) -> dict[str, Any]:
    port: dict[str, Any] = {"protocol": flow.protocol}
    if flow.port is not None:
        port["port"] = flow.port
        if flow.end_port is not None:
            port["endPort"] = flow.end_port
    rule: dict[str, Any] = {"ports": [port]}
    peers = list(_peers(peer, region, ctx))
    if peers:
        rule[direction] = peers
    return rule


def _peers(peer: Peer, region: Region, ctx: OperatorContext) -> Iterable[dict[str, Any]]:
    """NetworkPolicyPeers for `peer`; none means every address."""
    if peer is Peer.CLUSTER:
        yield {"namespaceSelector": {}}
    elif peer is Peer.SFU:
        yield {"podSelector": {"matchLabels": selector_labels(region, Component.SFU)}}
    elif peer is Peer.TURN:
        yield {"podSelector": {"matchLabels": selector_labels(region, Component.TURN)}}
    elif peer is Peer.CONTROL_PLANE and ctx.control_plane_namespace is not None:
        yield {
            "namespaceSelector": {
                "matchLabels": {NAMESPACE_NAME_LABEL: ctx.control_plane_namespace}
            },
            "podSelector": {"matchLabels": dict(ctx.control_plane_pod_labels)},
        }
