"""Security contexts that satisfy the Pod Security `restricted` profile."""

from typing import Any, Final

NONROOT_UID: Final = 65532
"""The conventional non-root user of distroless images; any non-zero ID would do."""

_RUNTIME_DEFAULT_SECCOMP = {"type": "RuntimeDefault"}


def pod_security_context(*, unprivileged_port_start: int | None = None) -> dict[str, Any]:
    """Pod-level context: non-root, RuntimeDefault seccomp, volumes readable by the group.

    `unprivileged_port_start` lowers the pod network namespace's privileged-port boundary
    (a namespaced sysctl the restricted profile allows). It is how a non-root process binds
    a port below 1024: an added NET_BIND_SERVICE capability does not reach a non-root
    process without ambient capabilities, and file capabilities are ignored under
    allowPrivilegeEscalation=false.
    """
    context: dict[str, Any] = {
        "runAsNonRoot": True,
        "runAsUser": NONROOT_UID,
        "runAsGroup": NONROOT_UID,
        "fsGroup": NONROOT_UID,
        "seccompProfile": dict(_RUNTIME_DEFAULT_SECCOMP),
    }
    if unprivileged_port_start is not None and unprivileged_port_start < 1024:
        context["sysctls"] = [
            {"name": "net.ipv4.ip_unprivileged_port_start", "value": str(unprivileged_port_start)}
        ]
    return context


def container_security_context() -> dict[str, Any]:
    """Container-level context: no privilege escalation, no capabilities, read-only root."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": dict(_RUNTIME_DEFAULT_SECCOMP),
    }
