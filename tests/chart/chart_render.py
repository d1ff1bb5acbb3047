"""Rendering the chart with helm for the chart tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from switchboard_dev.paths import CHART_DIR

NAMESPACE = "chart-install-check"


def render(helm: str, *args: str, chart: Path = CHART_DIR) -> list[dict]:
    out = subprocess.run(
        [helm, "template", "sb", str(chart), "--namespace", NAMESPACE, *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def one(docs: list[dict], kind: str, name: str | None = None) -> dict:
    (found,) = [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    return found


def kinds(docs: list[dict]) -> list[str]:
    return sorted(d["kind"] for d in docs)


def pod_spec(docs: list[dict]) -> dict:
    return one(docs, "Deployment")["spec"]["template"]["spec"]
