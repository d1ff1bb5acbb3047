"""Switchboard installed the way a platform team installs it: `helm install` of the chart.

The operator then runs as the chart's Deployment, from its image, in Pods the node agent
runs. Clients reach it through its Service: there is no kube-proxy here, so a Service's
URL is the address of a ready pod it selects (the leader, by the chart's selector).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import yaml

from switchboard_dev.helm import run_helm
from switchboard_dev.operator_process import OPERATOR_NAMESPACE
from switchboard_dev.paths import CHART_DIR

RELEASE = "switchboard"
OPERATOR_SERVICE = "switchboard-operator"
INSTALL_TIMEOUT = "5m"


class Kubectl(Protocol):
    def kubectl(self, *args: str, check: bool = True, input: str | None = None) -> Any: ...


def helm(kubeconfig: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run_helm(*args, "--kubeconfig", str(kubeconfig), check=check)


def set_flags(values: Mapping[str, str]) -> list[str]:
    return [f"--set={key}={value}" for key, value in values.items()]


def install(
    kubeconfig: Path,
    values: Mapping[str, str] | None = None,
    namespace: str = OPERATOR_NAMESPACE,
    extra: Sequence[str] = (),
) -> None:
    """`helm upgrade --install --wait`: returns once the operator's Deployment is available."""
    helm(
        kubeconfig,
        "upgrade",
        "--install",
        RELEASE,
        str(CHART_DIR),
        "--namespace",
        namespace,
        "--create-namespace",
        "--wait",
        "--timeout",
        INSTALL_TIMEOUT,
        *set_flags(values or {}),
        *extra,
    )


def render(
    kubeconfig: Path, *args: str, namespace: str = OPERATOR_NAMESPACE
) -> list[dict[str, Any]]:
    """`helm template` of the chart as `install` installs it (same release and namespace;
    `args` as its values), parsed: what a Prometheus Operator would read from the cluster."""
    out = helm(
        kubeconfig, "template", RELEASE, str(CHART_DIR), "--namespace", namespace, *args
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def uninstall(kubeconfig: Path, namespace: str = OPERATOR_NAMESPACE) -> None:
    helm(kubeconfig, "uninstall", RELEASE, "--namespace", namespace, "--wait")


def _ready(pod: Mapping[str, Any]) -> bool:
    status = pod.get("status") or {}
    return bool(status.get("podIP")) and any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def service_endpoints(
    cluster: Kubectl, namespace: str, service: str, port: str
) -> list[tuple[str, int]]:
    """(address, port) of each ready pod the Service selects, for its port named `port`."""
    result = cluster.kubectl("get", "service", service, "-n", namespace, "-o", "json", check=False)
    if result.returncode != 0:
        return []
    spec = json.loads(result.stdout)["spec"]
    selector = spec.get("selector") or {}
    target = next(p for p in spec["ports"] if p.get("name") == port).get("targetPort", port)
    pods = json.loads(
        cluster.kubectl(
            "get",
            "pods",
            "-n",
            namespace,
            "-l",
            ",".join(f"{k}={v}" for k, v in selector.items()),
            "-o",
            "json",
        ).stdout
    )["items"]
    endpoints = []
    for pod in pods:
        if not _ready(pod) or pod["metadata"].get("deletionTimestamp"):
            continue
        number = target if isinstance(target, int) else _named_port(pod, str(target))
        if number is not None:
            endpoints.append((pod["status"]["podIP"], number))
    return endpoints


def _named_port(pod: Mapping[str, Any], name: str) -> int | None:
    for container in pod["spec"]["containers"]:
        for port in container.get("ports") or []:
            if port.get("name") == name:
                return int(port["containerPort"])
    return int(name) if name.isdigit() else None


def operator_url(cluster: Kubectl, namespace: str = OPERATOR_NAMESPACE) -> str | None:
    """The control plane's HTTP endpoint (join API, reports) through the operator Service."""
    endpoints = service_endpoints(cluster, namespace, OPERATOR_SERVICE, "http")
    if len(endpoints) != 1:
        return None
    address, port = endpoints[0]
    return f"http://{address}:{port}"
