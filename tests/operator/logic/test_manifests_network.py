"""NetworkPolicies against the intended traffic matrix.

Nothing in the local cluster enforces NetworkPolicy, so a small evaluator here applies the
policies' rules (selectors, ports, default deny) to concrete endpoints: every flow the
Region needs is admitted, and traffic a user would not expect is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from manifests_builders import context, region

from switchboard_operator.logic.manifests import (
    Peer,
    sfu_network_policy,
    sfu_pod,
    traffic_matrix,
    turn_deployment,
    turn_network_policy,
)

CONTROL_NS = "switchboard-system"
NS_LABEL = "kubernetes.io/metadata.name"


@dataclass(frozen=True)
class Endpoint:
    """Something that sends or receives: a pod (with labels and namespace) or an address."""

    name: str
    namespace: str | None = None
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def is_pod(self) -> bool:
        return self.namespace is not None


def _matches(selector: dict, labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, "evaluator knows matchLabels only"
    return selector.get("matchLabels", {}).items() <= labels.items()


def _peer_matches(peer: dict, endpoint: Endpoint, policy_ns: str) -> bool:
    if not endpoint.is_pod:
        return False  # no ipBlocks are used: a non-pod only matches an absent peer list
    if "namespaceSelector" in peer:
        if not _matches(peer["namespaceSelector"], {NS_LABEL: endpoint.namespace}):
            return False
    elif endpoint.namespace != policy_ns:
        return False
    return _matches(peer.get("podSelector", {}), endpoint.labels)


def _port_matches(entry: dict, protocol: str, port: int) -> bool:
    if entry.get("protocol", "TCP") != protocol:
        return False
    if "port" not in entry:
        return True
    return entry["port"] <= port <= entry.get("endPort", entry["port"])


def admits(policy: dict, direction: str, other: Endpoint, protocol: str, port: int) -> bool:
    """Whether `policy` lets traffic in from (ingress) or out to (egress) `other`."""
    spec = policy["spec"]
    kind = "Ingress" if direction == "ingress" else "Egress"
    assert kind in spec["policyTypes"]
    key = "from" if direction == "ingress" else "to"
    for rule in spec.get(direction, []):
        peers = rule.get(key)
        peer_ok = peers is None or any(
            _peer_matches(p, other, policy["metadata"]["namespace"]) for p in peers
        )
        ports_ok = any(_port_matches(e, protocol, port) for e in rule.get("ports", [{}]))
        if peer_ok and ports_ok:
            return True
    return False


def _selected(policy: dict, pod: dict) -> bool:
    return policy["metadata"]["namespace"] == pod["metadata"]["namespace"] and _matches(
        policy["spec"]["podSelector"], pod["metadata"]["labels"]
    )


def _endpoint_of(pod_metadata: dict, name: str) -> Endpoint:
    return Endpoint(name, pod_metadata["namespace"], pod_metadata["labels"])


REGION = region(
    turn={
        "tlsSecretName": "turn-cert",
        "prometheusExporter": True,
        "image": "registry.example/coturn-with-prometheus:4.6",
    }
)
CTX = context(control_plane_namespace=CONTROL_NS)
SFU_POD = sfu_pod(REGION, CTX, "abcde")
TURN_TEMPLATE = turn_deployment(REGION, CTX)["spec"]["template"]
TURN_POD = {"metadata": {**TURN_TEMPLATE["metadata"], "namespace": "media-eu"}}
SFU = _endpoint_of(SFU_POD["metadata"], "sfu")
TURN = _endpoint_of(TURN_POD["metadata"], "turn")
INTERNET = Endpoint("internet client")
CONTROL_PLANE = Endpoint("control plane", CONTROL_NS, {"app.kubernetes.io/component": "operator"})
OTHER_POD = Endpoint("some pod", "default", {"app": "other"})
OTHER_REGION_SFU = _endpoint_of(
    sfu_pod(region("us-east", namespace="media-eu"), CTX, "abcde")["metadata"], "other sfu"
)
SFU_POLICY = sfu_network_policy(REGION, CTX)
TURN_POLICY = turn_network_policy(REGION, CTX)
POLICIES = {Peer.SFU: SFU_POLICY, Peer.TURN: TURN_POLICY}
REPRESENTATIVE = {
    Peer.ANYWHERE: INTERNET,
    Peer.CLUSTER: OTHER_POD,
    Peer.SFU: SFU,
    Peer.TURN: TURN,
    Peer.CONTROL_PLANE: CONTROL_PLANE,
}


def test_each_policy_selects_its_workload_pods_only():
    assert _selected(SFU_POLICY, SFU_POD)
    assert not _selected(SFU_POLICY, TURN_POD)
    assert _selected(TURN_POLICY, TURN_POD)
    assert not _selected(TURN_POLICY, SFU_POD)
    other = {"metadata": {"namespace": "media-eu", "labels": OTHER_REGION_SFU.labels}}
    assert not _selected(SFU_POLICY, other)


def test_policies_deny_by_default_in_both_directions():
    for policy in POLICIES.values():
        assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]


@pytest.mark.parametrize("flow", traffic_matrix(REGION, CTX), ids=lambda f: f.purpose)
def test_every_flow_of_the_matrix_is_admitted_at_both_ends(flow):
    ports = [flow.port or 1, flow.end_port or flow.port or 65535]
    for port in ports:
        if flow.destination in POLICIES:
            source = REPRESENTATIVE[flow.source]
            assert admits(POLICIES[flow.destination], "ingress", source, flow.protocol, port)
        if flow.source in POLICIES:
            destination = REPRESENTATIVE[flow.destination]
            assert admits(POLICIES[flow.source], "egress", destination, flow.protocol, port)


def test_every_rule_stems_from_a_flow():
    """No rule admits more than the matrix says (the policies are generated from it)."""
    matrix = traffic_matrix(REGION, CTX)
    for me, policy in POLICIES.items():
        expected = len([f for f in matrix if f.destination is me]) + len(
            [f for f in matrix if f.source is me]
        )
        rules = policy["spec"]["ingress"] + policy["spec"]["egress"]
        assert len(rules) == expected
        assert all(len(rule["ports"]) == 1 for rule in rules)


@pytest.mark.parametrize(
    ("probe", "why"),
    [
        ((TURN_POLICY, "ingress", INTERNET, "UDP", 50000), "relay ports are for SFU pods only"),
        ((TURN_POLICY, "ingress", OTHER_REGION_SFU, "UDP", 50000), "another Region's SFU"),
        ((TURN_POLICY, "ingress", INTERNET, "TCP", 9641), "metrics only from inside the cluster"),
        ((SFU_POLICY, "ingress", INTERNET, "TCP", 9880), "metrics only from inside the cluster"),
        ((TURN_POLICY, "egress", INTERNET, "UDP", 40000), "relays reach SFU pods, nothing else"),
        ((TURN_POLICY, "egress", OTHER_POD, "UDP", 40000), "relays reach SFU pods, nothing else"),
        ((TURN_POLICY, "egress", SFU, "TCP", 7880), "TURN has no business with signalling"),
        ((SFU_POLICY, "ingress", INTERNET, "TCP", 22), "only the signalling port is public"),
        ((SFU_POLICY, "egress", INTERNET, "TCP", 443), "no TCP egress but reports and DNS"),
        ((SFU_POLICY, "egress", OTHER_POD, "TCP", 8080), "reports go to the control plane"),
    ],
)
def test_traffic_nobody_needs_is_refused(probe, why):
    assert not admits(*probe), why


def test_prometheus_in_the_cluster_reaches_the_sfu_metrics_port():
    assert admits(SFU_POLICY, "ingress", OTHER_POD, "TCP", 9880)


def test_clients_reach_signalling_media_and_turn_listeners():
    assert admits(SFU_POLICY, "ingress", INTERNET, "TCP", 7880)
    assert admits(SFU_POLICY, "ingress", INTERNET, "UDP", 40123)
    for protocol, port in [("UDP", 3478), ("TCP", 3478), ("TCP", 5349)]:
        assert admits(TURN_POLICY, "ingress", INTERNET, protocol, port)


def test_sfu_pods_and_turn_relays_exchange_media_both_ways():
    relay = REGION.spec.turn.relay_port_range
    assert admits(SFU_POLICY, "egress", TURN, "UDP", relay.min)
    assert admits(TURN_POLICY, "ingress", SFU, "UDP", relay.max)
    assert admits(TURN_POLICY, "egress", SFU, "UDP", 45000)
    assert admits(SFU_POLICY, "ingress", TURN, "UDP", 45000)


def test_only_the_regions_own_sfu_pods_reach_the_peer_port():
    assert admits(SFU_POLICY, "egress", SFU, "TCP", 7881)
    assert admits(SFU_POLICY, "ingress", SFU, "TCP", 7881)
    for other in (INTERNET, OTHER_POD, OTHER_REGION_SFU, TURN):
        assert not admits(SFU_POLICY, "ingress", other, "TCP", 7881), other.name


def test_reports_may_go_anywhere_on_the_report_port_without_a_control_plane_namespace():
    policy = sfu_network_policy(REGION, context())
    assert admits(policy, "egress", OTHER_POD, "TCP", 8080)
    assert not admits(policy, "egress", OTHER_POD, "TCP", 8081)


def test_without_turn_the_matrix_has_no_turn_flows():
    matrix = traffic_matrix(region(turn={"enabled": False}), CTX)
    assert all(Peer.TURN not in (f.source, f.destination) for f in matrix)
