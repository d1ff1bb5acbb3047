"""The demo endpoint lives in the dev tooling alone: the chart renders no demo route, the
operator's HTTP server has none, and nothing the operator image carries mentions one."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from aiohttp import web

import switchboard_api
import switchboard_operator
import switchboard_tls
import switchboard_turn
from switchboard_api.contract import JOIN_PATH_TEMPLATE
from switchboard_dev.demo.apikey import DEMO_KEY_SECRET
from switchboard_dev.demo.server import DEMO_JOIN_PATH
from switchboard_dev.helm import helm_binary
from switchboard_dev.paths import CHART_DIR
from switchboard_operator.httpserver import public_app, report_app
from switchboard_operator.joinapi import SecretApiKeyStore, join_api_app
from switchboard_operator.reportapi.receiver import ReportReceiver

SHIPPED_PACKAGES = (switchboard_operator, switchboard_api, switchboard_turn, switchboard_tls)
"""What the operator's image carries of this repository."""


def paths(app: web.Application) -> list[str]:
    """Every route path of `app`, its sub-applications' included (prefixed once mounted)."""
    found = []
    for resource in app.router.resources():
        info = resource.get_info()
        found += paths(info["app"]) if "app" in info else [resource.canonical]
    return found


def test_helm_template_renders_no_demo_route():
    rendered = subprocess.run(
        [str(helm_binary(build=True)), "template", "sb", str(CHART_DIR), "--include-crds"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout

    assert "kind: Deployment" in rendered
    assert DEMO_JOIN_PATH not in rendered
    assert DEMO_KEY_SECRET not in rendered


def test_the_operators_http_server_has_no_demo_route():
    unused = None
    join_api = join_api_app(unused, SecretApiKeyStore())  # type: ignore[arg-type]
    reports = ReportReceiver(unused, unused, unused, unused)  # type: ignore[arg-type]

    routes = paths(public_app(join_api)) + paths(report_app(reports))

    assert JOIN_PATH_TEMPLATE in routes
    assert [r for r in routes if "demo" in r] == []


@pytest.mark.parametrize("package", SHIPPED_PACKAGES, ids=lambda p: p.__name__)
def test_nothing_the_operator_image_carries_names_the_demo_endpoint(package):
    root = Path(package.__file__).parent
    sources = [p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts]

    assert sources
    for source in sources:
        text = source.read_text(errors="replace")
        assert DEMO_JOIN_PATH not in text, source
        assert "switchboard_dev" not in text, source
