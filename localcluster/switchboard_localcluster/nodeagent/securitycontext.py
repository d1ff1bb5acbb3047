"""A container's effective security context, and the kubelet's runAsNonRoot check.

Pure: the Pod and container specs and the image's configured user in, settings out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

MAX_USER_ID = 2**31 - 1


class SecurityContextError(Exception):
    """The container must not start (the kubelet's CreateContainerConfigError)."""


@dataclass(frozen=True)
class SecuritySettings:
    run_as_user: int | None = None
    run_as_group: int | None = None
    supplemental_groups: tuple[int, ...] = ()
    read_only_root: bool = False
    privileged: bool = False
    no_new_privileges: bool = False
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    seccomp_unconfined: bool = False
    sysctls: Mapping[str, str] = field(default_factory=dict)


def pod_ref(pod: Mapping[str, Any]) -> str:
    """`name_namespace(uid)`, the kubelet's format for a pod in messages."""
    meta = pod.get("metadata", {})
    return f"{meta.get('name')}_{meta.get('namespace')}({meta.get('uid')})"


def _merged(pod: Mapping[str, Any], container: Mapping[str, Any]) -> dict[str, Any]:
    """Container fields override the pod's for the fields both have."""
    pod_context = dict(pod.get("spec", {}).get("securityContext") or {})
    container_context = dict(container.get("securityContext") or {})
    shared = ("runAsUser", "runAsGroup", "runAsNonRoot", "seccompProfile", "seLinuxOptions")
    merged = {key: pod_context[key] for key in shared if key in pod_context}
    merged.update(container_context)
    return merged


def image_user_id(user: str) -> tuple[int | None, str]:
    """(numeric uid or None, user name) of an image's configured `USER` (`user[:group]`)."""
    name = user.split(":", 1)[0]
    if not name:
        return 0, ""
    if name.isdigit():
        return int(name), ""
    return None, name


def verify_run_as_non_root(
    pod: Mapping[str, Any], container: Mapping[str, Any], image_user: str
) -> None:
    """The kubelet's verifyRunAsNonRoot, with its messages."""
    context = _merged(pod, container)
    if not context.get("runAsNonRoot"):
        return
    ref, name = pod_ref(pod), container.get("name")
    if context.get("runAsUser") is not None:
        if int(context["runAsUser"]) == 0:
            raise SecurityContextError(
                f'container\'s runAsUser breaks non-root policy (pod: "{ref}", container: {name})'
            )
        return
    uid, username = image_user_id(image_user)
    if uid is None:
        raise SecurityContextError(
            f"container has runAsNonRoot and image has non-numeric user ({username}), cannot "
            f'verify user is non-root (pod: "{ref}", container: {name})'
        )
    if uid == 0:
        raise SecurityContextError(
            f'container has runAsNonRoot and image will run as root (pod: "{ref}", '
            f"container: {name})"
        )
    if uid > MAX_USER_ID:
        raise SecurityContextError(
            f"container has runAsNonRoot and image has an invalid user id ({uid}). "
            f'(Must be 1-({MAX_USER_ID})) (pod: "{ref}", container: {name})'
        )


def security_settings(pod: Mapping[str, Any], container: Mapping[str, Any]) -> SecuritySettings:
    context = _merged(pod, container)
    pod_context = pod.get("spec", {}).get("securityContext") or {}
    capabilities = context.get("capabilities") or {}
    privileged = bool(context.get("privileged"))
    escalation = context.get("allowPrivilegeEscalation")
    seccomp = (context.get("seccompProfile") or {}).get("type")
    groups = [int(g) for g in pod_context.get("supplementalGroups") or []]
    if pod_context.get("fsGroup") is not None:
        # The kubelet adds fsGroup to every container's groups: volumes are group-owned by it.
        groups.append(int(pod_context["fsGroup"]))
    return SecuritySettings(
        run_as_user=_int_or_none(context.get("runAsUser")),
        run_as_group=_int_or_none(context.get("runAsGroup")),
        supplemental_groups=tuple(dict.fromkeys(groups)),
        read_only_root=bool(context.get("readOnlyRootFilesystem")),
        privileged=privileged,
        # Kubernetes: escalation is allowed unless set false (and always when privileged).
        no_new_privileges=escalation is False and not privileged,
        cap_add=tuple(capabilities.get("add") or ()),
        cap_drop=tuple(capabilities.get("drop") or ()),
        seccomp_unconfined=seccomp == "Unconfined" or privileged,
        sysctls={s["name"]: str(s["value"]) for s in pod_context.get("sysctls") or []},
    )


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)
