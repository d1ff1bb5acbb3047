"""The Prometheus Operator's own CRDs (ServiceMonitor, PodMonitor, PrometheusRule), taken
from the upstream Go module pinned in `tools/prometheus-operator` into the per-version cache,
so the chart's monitors and rules are validated by the real schemas, never hand-written ones.
"""

from __future__ import annotations

from pathlib import Path

from switchboard_dev.gotools import cached

MODULE = "github.com/prometheus-operator/prometheus-operator"


def crd_dir(fetch: bool = True) -> Path:
    """The directory holding the CRD files (fetched once per pin)."""
    return cached("prometheus-operator", MODULE, "crds.sh", run=fetch)


def crd_files(fetch: bool = True) -> list[Path]:
    return sorted(crd_dir(fetch).glob("monitoring.coreos.com_*.yaml"))
