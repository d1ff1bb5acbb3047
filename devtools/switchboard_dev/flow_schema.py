"""The operator's leader-election FlowSchema (API Priority and Fairness) for an operator
that runs as a local process: the chart's own template, rendered, with the process's
client-certificate user as its subject in place of the chart's ServiceAccount."""

from __future__ import annotations

from typing import Any

import yaml

from switchboard_dev.helm import run_helm
from switchboard_dev.paths import CHART_DIR

TEMPLATE = "templates/flowschema.yaml"
PRIORITY_LEVEL = "leader-election"


def operator_flow_schema(namespace: str, user: str | None = None) -> dict[str, Any]:
    """The chart's FlowSchema as installed in `namespace`; with `user`, it classifies that
    user's Lease requests instead of the chart's ServiceAccount's."""
    out = run_helm(
        "template", "switchboard", str(CHART_DIR), "--namespace", namespace, "--show-only", TEMPLATE
    ).stdout
    schema: dict[str, Any] = yaml.safe_load(out)
    if user is not None:
        for rule in schema["spec"]["rules"]:
            rule["subjects"] = [{"kind": "User", "user": {"name": user}}]
    return schema
