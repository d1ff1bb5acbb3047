"""Drift detection: does an observed object still carry every field the operator wants?

The API server adds defaults and other controllers add fields, so "unchanged" means the
desired object is a *subset* of the observed one: every desired field present with an
equal value; lists must match in length, element by element.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# Fields the API server owns or rewrites; never compared.
IGNORED_METADATA = frozenset(
    {"uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "selfLink"}
)


def is_subset(desired: Any, observed: Any) -> bool:
    """True if ``observed`` contains everything in ``desired`` (recursively)."""
    if isinstance(desired, Mapping):
        if not isinstance(observed, Mapping):
            return False
        return all(
            key in observed and is_subset(value, observed[key])
            for key, value in desired.items()
            if value is not None
        )
    if isinstance(desired, Sequence) and not isinstance(desired, str | bytes):
        if not isinstance(observed, Sequence) or isinstance(observed, str | bytes):
            return False
        return len(desired) == len(observed) and all(
            is_subset(d, o) for d, o in zip(desired, observed, strict=True)
        )
    return _scalar_equal(desired, observed)


def _scalar_equal(desired: Any, observed: Any) -> bool:
    if isinstance(desired, bool) or isinstance(observed, bool):
        return desired is observed
    if isinstance(desired, int | float) and isinstance(observed, int | float):
        return float(desired) == float(observed)
    return bool(desired == observed)


def drifted_paths(desired: Any, observed: Any, path: str = "") -> list[str]:
    """Where ``observed`` departs from ``desired`` (for Events and logs), as dotted paths."""
    if isinstance(desired, Mapping) and isinstance(observed, Mapping):
        paths: list[str] = []
        for key, value in desired.items():
            if value is None or (path == ".metadata" and key in IGNORED_METADATA):
                continue
            child = f"{path}.{key}"
            if key not in observed:
                paths.append(child)
            else:
                paths += drifted_paths(value, observed[key], child)
        return paths
    if is_subset(desired, observed):
        return []
    return [path or "."]
