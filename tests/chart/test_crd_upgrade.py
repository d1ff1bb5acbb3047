"""The CRD upgrade path: the chart's CRDs are templates, so `helm upgrade` updates them (Helm
never touches a chart's crds/ folder after the first install); `crds.keep` leaves them, and
every Region and Room, in place after `helm uninstall`. On its own control plane: it
replaces cluster-wide CRDs that the other tests share."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from switchboard_dev.chart_install import helm as run_helm
from switchboard_dev.paths import CHART_DIR
from switchboard_localcluster.controlplane import ControlPlane

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

NAMESPACE = "switchboard-system"
ROOM_CRD = "rooms.switchboard.dev"
NEW_FIELD = "emptyTimeoutSeconds"


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    cluster = ControlPlane(workdir=tmp_path_factory.mktemp("crd-upgrade"))
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


def older_chart(directory: Path) -> Path:
    """This chart as an earlier release: its Room CRD lacks spec.emptyTimeoutSeconds."""
    chart = directory / "switchboard"
    shutil.copytree(CHART_DIR, chart)
    path = chart / "files" / "crds" / f"{ROOM_CRD}.yaml"
    crd = yaml.safe_load(path.read_text())
    for version in crd["spec"]["versions"]:
        spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
        del spec["properties"][NEW_FIELD]
        del spec["default"][NEW_FIELD]
    path.write_text(yaml.safe_dump(crd))
    return chart


def helm(plane: ControlPlane, *args: str) -> str:
    return run_helm(plane.kubeconfig, *args, "-n", NAMESPACE).stdout


def room_spec_fields(plane: ControlPlane) -> set[str]:
    crd = json.loads(plane.kubectl("get", "crd", ROOM_CRD, "-o", "json").stdout)
    (version,) = crd["spec"]["versions"]
    return set(version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"])


def test_helm_upgrade_updates_the_crds_and_uninstall_keeps_them(plane, tmp_path):
    helm(plane, "install", "sb", str(older_chart(tmp_path)), "--create-namespace", "--wait=false")
    assert NEW_FIELD not in room_spec_fields(plane)

    helm(plane, "upgrade", "sb", str(CHART_DIR), "--wait=false")
    assert NEW_FIELD in room_spec_fields(plane)
    room = {
        "apiVersion": "switchboard.dev/v1alpha1",
        "kind": "Room",
        "metadata": {"name": "kept", "namespace": "default"},
        "spec": {NEW_FIELD: 42},
    }
    plane.kubectl("apply", "-f", "-", input=json.dumps(room))
    stored = json.loads(plane.kubectl("get", "room", "kept", "-n", "default", "-o", "json").stdout)
    assert stored["spec"][NEW_FIELD] == 42  # not pruned: the upgraded schema knows it

    helm(plane, "uninstall", "sb")
    assert NEW_FIELD in room_spec_fields(plane)
    assert plane.kubectl("get", "room", "kept", "-n", "default", check=False).returncode == 0
