"""The pinned helm, built from `tools/helm` into the per-version cache (like the control plane)."""

from __future__ import annotations

from pathlib import Path

from switchboard_dev.gotools import cached

MODULE = "helm.sh/helm/v3"


def helm_binary(build: bool = True) -> Path:
    return cached("helm", MODULE, "build.sh", run=build) / "helm"
