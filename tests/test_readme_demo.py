"""The README's first command brings Switchboard up with the examples applied."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.cluster, pytest.mark.nodeagent, pytest.mark.slow]


def test_switchboard_dev_up_shows_the_examples(tmp_path):
    executable = Path(sys.executable).parent / "switchboard-dev"
    result = subprocess.run(
        [str(executable), "up", "--exit-when-ready", "--workdir", str(tmp_path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "kubectl get regions,rooms -A" in out
    regions = [line for line in out.splitlines() if line.startswith("region.switchboard.dev/")]
    rooms = [line for line in out.splitlines() if "room.switchboard.dev/" in line]
    assert regions and all(" True " in line for line in regions), out
    assert rooms and all(" Scheduled " in line for line in rooms), out
    assert "-sfu-" in out and "Running" in out
    assert f"export KUBECONFIG={tmp_path}" in out
    # Everything it started is gone once it returns.
    leftovers = subprocess.run(
        ["pgrep", "-f", str(tmp_path)], check=False, capture_output=True, text=True
    ).stdout.split()
    assert leftovers == []
