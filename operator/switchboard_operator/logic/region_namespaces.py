"""Which namespaces Regions may put their workloads in: the chart's `regionNamespaces`.

With a list, the operator may write only in those namespaces (its RBAC is granted there
alone), so a Region naming another namespace is refused before anything is created for it.
"""

from __future__ import annotations

from collections.abc import Iterable

from switchboard_operator.logic.region_status import Problem

NAMESPACE_NOT_ALLOWED = "NamespaceNotAllowed"


def parse_region_namespaces(value: str) -> frozenset[str]:
    """The comma-separated list of the operator's setting; empty: every namespace."""
    return frozenset(part.strip() for part in value.split(",") if part.strip())


def namespace_refusal(namespace: str, allowed: Iterable[str]) -> Problem | None:
    """Why a Region may not use `namespace` (None: it may). No list allows every namespace."""
    names = sorted(allowed)
    if not names or namespace in names:
        return None
    return Problem(
        NAMESPACE_NOT_ALLOWED,
        f"Namespace {namespace!r} (spec.namespace) is not one this Switchboard installation "
        f"may manage; allowed: {', '.join(names)} (chart value regionNamespaces). Nothing "
        "was created for this Region.",
    )
