"""The pinned helm, built from `tools/helm` into the per-version cache (like the control plane)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from switchboard_dev.paths import REPO_ROOT
from switchboard_localcluster.binaries import cache_root

HELM_MODULE = REPO_ROOT / "tools" / "helm"


def pinned_version() -> str:
    match = re.search(
        r"^require helm\.sh/helm/v3 (v\S+)$", (HELM_MODULE / "go.mod").read_text(), re.MULTILINE
    )
    if not match:
        raise RuntimeError(f"no helm requirement in {HELM_MODULE / 'go.mod'}")
    return match.group(1)


def helm_binary(build: bool = True) -> Path:
    out = cache_root() / "helm" / pinned_version()
    if build:
        subprocess.run(["bash", str(HELM_MODULE / "build.sh"), str(out)], check=True)
    return out / "helm"
