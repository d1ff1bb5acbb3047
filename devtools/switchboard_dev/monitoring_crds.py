"""The Prometheus Operator's own CRDs (ServiceMonitor, PodMonitor, PrometheusRule), taken
from the upstream Go module pinned in `tools/prometheus-operator` into the per-version cache,
so the chart's monitors and rules are validated by the real schemas, never hand-written ones.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from switchboard_dev.paths import REPO_ROOT
from switchboard_localcluster.binaries import cache_root

MODULE_DIR = REPO_ROOT / "tools" / "prometheus-operator"
MODULE = "github.com/prometheus-operator/prometheus-operator"


def pinned_version() -> str:
    pattern = rf"^require {re.escape(MODULE)} (v\S+)$"
    match = re.search(pattern, (MODULE_DIR / "go.mod").read_text(), re.MULTILINE)
    if not match:
        raise RuntimeError(f"no {MODULE} requirement in {MODULE_DIR / 'go.mod'}")
    return match.group(1)


def crd_dir(fetch: bool = True) -> Path:
    """The directory holding the CRD files (fetched once per pin; needs the Go proxy)."""
    out = cache_root() / "prometheus-operator" / pinned_version()
    if fetch:
        subprocess.run(["bash", str(MODULE_DIR / "crds.sh"), str(out)], check=True)
    return out


def crd_files(fetch: bool = True) -> list[Path]:
    return sorted(crd_dir(fetch).glob("monitoring.coreos.com_*.yaml"))
