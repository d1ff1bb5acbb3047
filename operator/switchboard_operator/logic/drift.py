"""Drift detection: does an observed object still carry every field the operator wants?

The API server adds defaults and other controllers add fields, so "unchanged" means the
desired object is a *subset* of the observed one: every desired field present with an
equal value; lists must match in length, element by element.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
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
    if desired == observed:
        return True
    # The API server canonicalises resource quantities (`1000m` is stored as `1`).
    first, second = quantity_value(desired), quantity_value(observed)
    return first is not None and first == second


_SUFFIXES = {
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
    "k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"), "T": Decimal("1e12"),
    "P": Decimal("1e15"), "E": Decimal("1e18"),
    "Ki": Decimal(2**10), "Mi": Decimal(2**20), "Gi": Decimal(2**30), "Ti": Decimal(2**40),
    "Pi": Decimal(2**50), "Ei": Decimal(2**60),
}  # fmt: skip
_QUANTITY = re.compile(r"^([+-]?(?:\d+(?:\.\d*)?|\.\d+))([eE][+-]?\d+|[numkMGTPE]i?|)$")


def quantity_value(value: Any) -> Decimal | None:
    """The numeric value of a Kubernetes quantity (`500m`, `1Gi`, `2`), or None."""
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    if not isinstance(value, str):
        return None
    match = _QUANTITY.match(value)
    if match is None:
        return None
    number, suffix = match.groups()
    if suffix[:1] in ("e", "E"):
        return Decimal(number) * Decimal(10) ** int(suffix[1:])
    if suffix not in _SUFFIXES:
        return None
    return Decimal(number) * _SUFFIXES[suffix]


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
