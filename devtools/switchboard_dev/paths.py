"""Where the repository's deployable artefacts live (CRDs, chart, examples)."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CRDS_DIR = REPO_ROOT / "crds"
CHART_DIR = REPO_ROOT / "charts" / "switchboard"
OPERATOR_CLUSTER_ROLE = CHART_DIR / "templates" / "clusterrole.yaml"
OPERATOR_REGIONS_ROLE = CHART_DIR / "templates" / "clusterrole-regions.yaml"
OPERATOR_ROLE = CHART_DIR / "templates" / "role.yaml"
OPERATOR_RBAC = (OPERATOR_CLUSTER_ROLE, OPERATOR_REGIONS_ROLE, OPERATOR_ROLE)
"""The chart's RBAC files, untemplated: the operator's permissions, applied as they are."""
EXAMPLES_DIR = REPO_ROOT / "examples"
