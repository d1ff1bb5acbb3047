"""Which namespaces may place rooms in a region: Kubernetes label-selector matching."""

from __future__ import annotations

from collections.abc import Mapping

from switchboard_api.kube_types import LabelSelector, SelectorOperator


def selector_admits(selector: LabelSelector | None, labels: Mapping[str, str]) -> bool:
    """Whether a namespace with `labels` matches `selector` (meta/v1 semantics: every
    matchLabels entry and every expression must hold; unset or empty matches all)."""
    if selector is None:
        return True
    for key, value in (selector.match_labels or {}).items():
        if labels.get(key) != value:
            return False
    for requirement in selector.match_expressions or ():
        present = requirement.key in labels
        value = labels.get(requirement.key)
        values = requirement.values or []
        match requirement.operator:
            case SelectorOperator.IN:
                holds = present and value in values
            case SelectorOperator.NOT_IN:
                holds = not present or value not in values
            case SelectorOperator.EXISTS:
                holds = present
            case SelectorOperator.DOES_NOT_EXIST:
                holds = not present
        if not holds:
            return False
    return True
