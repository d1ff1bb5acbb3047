"""Tools pinned as Go modules under `tools/` (helm, Prometheus, the Prometheus Operator's
CRDs): read a pin from its go.mod, and run its script into the per-version cache."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from switchboard_dev.paths import REPO_ROOT
from switchboard_localcluster.binaries import cache_root

TOOLS_DIR = REPO_ROOT / "tools"


def pinned_version(tool: str, module: str) -> str:
    """The version `tools/<tool>/go.mod` requires `module` at."""
    go_mod = TOOLS_DIR / tool / "go.mod"
    match = re.search(rf"^require {re.escape(module)} (v\S+)$", go_mod.read_text(), re.MULTILINE)
    if not match:
        raise RuntimeError(f"no {module} requirement in {go_mod}")
    return match.group(1)


def cached(tool: str, module: str, script: str, run: bool = True) -> Path:
    """`~/.cache/switchboard/<tool>/<version>`, filled by `tools/<tool>/<script> OUTDIR`
    (a no-op once done; the first run needs the Go module proxy)."""
    out = cache_root() / tool / pinned_version(tool, module)
    if run:
        subprocess.run(["bash", str(TOOLS_DIR / tool / script), str(out)], check=True)
    return out
