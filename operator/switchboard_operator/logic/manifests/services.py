"""The Region's Services: per-pod DNS and the signalling port for the SFU, and the TURN
listener ports."""

from typing import Any

from switchboard_api import ports
from switchboard_api.region import Region
from switchboard_operator.logic.manifests.context import OperatorContext
from switchboard_operator.logic.manifests.meta import (
    Component,
    Manifest,
    object_meta,
    selector_labels,
    sfu_headless_service_name,
    workload_name,
)
from switchboard_operator.logic.manifests.sfu import SIGNALLING_PORT_NAME
from switchboard_operator.logic.manifests.turn import turn_listener_ports


def sfu_headless_service(region: Region) -> Manifest:
    """Headless Service: DNS `<pod>.<service>.<namespace>.svc` for every SFU pod.

    Not-ready pods are published too: readiness only means "takes new rooms", and a
    draining pod must stay reachable for the rooms it still hosts.
    """
    return _service(
        region,
        sfu_headless_service_name(region),
        Component.SFU,
        {"clusterIP": "None", "publishNotReadyAddresses": True, "ports": [_signalling_port()]},
    )


def sfu_signalling_service(region: Region) -> Manifest:
    """ClusterIP Service on the SFU signalling port (ready pods only)."""
    return _service(
        region,
        workload_name(region, Component.SFU),
        Component.SFU,
        {"type": "ClusterIP", "ports": [_signalling_port()]},
    )


def turn_service(region: Region, ctx: OperatorContext) -> Manifest:
    """The TURN listener: UDP and TCP on the listening port, TLS over TCP when configured.

    Relay ports need no Service: only the SFU pods (the peers) send to them, at pod IPs.
    """
    spec: dict[str, Any] = {
        "type": ctx.turn_service_type,
        # A TURN allocation lives on one server: keep each client on the pod it started on
        # when UDP conntrack entries expire.
        "sessionAffinity": "ClientIP",
        "ports": [
            {
                "name": port["name"],
                "port": port["containerPort"],
                "targetPort": port["name"],
                "protocol": port["protocol"],
            }
            for port in turn_listener_ports(region)
        ],
    }
    if ctx.turn_service_type != "ClusterIP":
        # Clients' own addresses reach coturn (XOR-MAPPED-ADDRESS), with no second hop.
        spec["externalTrafficPolicy"] = "Local"
    return _service(region, workload_name(region, Component.TURN), Component.TURN, spec)


def _signalling_port() -> dict[str, Any]:
    return {
        "name": SIGNALLING_PORT_NAME,
        "port": ports.SFU_SIGNALLING_PORT,
        "targetPort": SIGNALLING_PORT_NAME,
        "protocol": "TCP",
    }


def _service(region: Region, name: str, component: Component, spec: dict[str, Any]) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_meta(region, name, component),
        "spec": {"selector": selector_labels(region, component), **spec},
    }
