"""Standard `metav1.Condition` bookkeeping: set a condition without churning its transition time."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

Condition = dict[str, Any]


def set_condition(
    conditions: Sequence[Mapping[str, Any]],
    *,
    type_: str,
    status: str,
    reason: str,
    message: str,
    observed_generation: int | None,
    now: str,
) -> list[Condition]:
    """Return ``conditions`` with ``type_`` set; keep ``lastTransitionTime`` if status is unchanged.

    ``now`` is an RFC 3339 timestamp supplied by the caller (the logic has no clock).
    """
    result: list[Condition] = []
    replaced = False
    for existing in conditions:
        if existing.get("type") != type_:
            result.append(dict(existing))
            continue
        replaced = True
        transition = existing.get("lastTransitionTime") if existing.get("status") == status else now
        result.append(
            _condition(
                type_=type_,
                status=status,
                reason=reason,
                message=message,
                observed_generation=observed_generation,
                transition=transition or now,
            )
        )
    if not replaced:
        result.append(
            _condition(
                type_=type_,
                status=status,
                reason=reason,
                message=message,
                observed_generation=observed_generation,
                transition=now,
            )
        )
    return result


def _condition(
    *,
    type_: str,
    status: str,
    reason: str,
    message: str,
    observed_generation: int | None,
    transition: str,
) -> Condition:
    condition: Condition = {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": transition,
    }
    if observed_generation is not None:
        condition["observedGeneration"] = observed_generation
    return condition


def find(conditions: Sequence[Mapping[str, Any]], type_: str) -> Mapping[str, Any] | None:
    return next((c for c in conditions if c.get("type") == type_), None)
