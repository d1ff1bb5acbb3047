"""The pinned helm, built from `tools/helm` into the per-version cache (like the control plane)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from switchboard_dev.gotools import cached

MODULE = "helm.sh/helm/v3"


def helm_binary(build: bool = True) -> Path:
    return cached("helm", MODULE, "build.sh", run=build) / "helm"


def run_helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the pinned helm (already built); `check`: raise with its stderr if it fails."""
    result = subprocess.run(
        [str(helm_binary(build=False)), *args], capture_output=True, text=True, check=False
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"helm {' '.join(args[:2])} failed: {result.stderr.strip()}")
    return result
