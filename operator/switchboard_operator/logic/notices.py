"""Kubernetes Events a decision asks for: what a user must know, in `kubectl describe`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Notice:
    """One Event to post about the object the decision is about."""

    type: str
    """`Normal` or `Warning`."""
    reason: str
    """CamelCase, as Kubernetes Event reasons are."""
    message: str
