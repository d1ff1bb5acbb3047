"""Switchboard on the local cluster: control plane, CRDs, the operator under its RBAC, examples."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path
from types import TracebackType

import yaml

from switchboard_api.resources import REGION, ROOM
from switchboard_dev.operator_process import (
    OPERATOR_USER,
    KubectlRunner,
    OperatorProcess,
    grant_operator_rbac,
    local_operator_env,
)
from switchboard_dev.paths import CRDS_DIR, EXAMPLES_DIR
from switchboard_localcluster.controlplane import ControlPlane, free_port
from switchboard_localcluster.processes import wait_until

log = logging.getLogger(__name__)


def install_crds(plane: KubectlRunner) -> None:
    plane.kubectl("apply", "--server-side", "-f", str(CRDS_DIR))
    for names in (REGION, ROOM):
        plane.kubectl(
            "wait", "--for=condition=Established", f"crd/{names.crd_name}", "--timeout=60s"
        )


def example_objects(directory: Path = EXAMPLES_DIR) -> list[dict]:
    objects = []
    for path in sorted(directory.glob("*.yaml")):
        objects += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return objects


class LocalStack:
    """Everything the README's first command brings up, stopped together."""

    def __init__(self, workdir: Path | None = None) -> None:
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="switchboard-"))
        self.plane = ControlPlane(workdir=self.workdir / "cluster")
        self.operator: OperatorProcess | None = None

    def start(self) -> LocalStack:
        try:
            self.plane.start()
            install_crds(self.plane)
            grant_operator_rbac(self.plane)
            self.operator = OperatorProcess(
                self.plane.issue_kubeconfig(OPERATOR_USER),
                self.workdir / "operator",
                env=local_operator_env(free_port()),
            )
            self.operator.start()
        except BaseException:
            self.stop()
            raise
        return self

    def apply_examples(self, timeout: float = 60.0) -> list[dict]:
        """Apply examples/ (creating their namespaces) and wait until the operator saw each."""
        objects = example_objects()
        for namespace in sorted({o["metadata"].get("namespace") for o in objects} - {None}):
            if self.plane.kubectl("get", "namespace", namespace, check=False).returncode != 0:
                self.plane.kubectl("create", "namespace", namespace)
        for obj in objects:
            self.plane.kubectl("apply", "-f", "-", input=json.dumps(obj))
        for obj in objects:
            wait_until(
                lambda obj=obj: self._observed(obj), timeout, f"the operator to observe {_ref(obj)}"
            )
        return objects

    def _observed(self, obj: dict) -> bool:
        args = ["get", obj["kind"].lower(), obj["metadata"]["name"], "-o", "json"]
        if obj["metadata"].get("namespace"):
            args += ["-n", obj["metadata"]["namespace"]]
        live = json.loads(self.plane.kubectl(*args).stdout)
        return bool(
            (live.get("status") or {}).get("observedGeneration") == live["metadata"]["generation"]
        )

    def stop(self) -> None:
        if self.operator is not None:
            self.operator.stop()
        self.plane.stop()

    def cleanup(self) -> None:
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()


def _ref(obj: dict) -> str:
    namespace = obj["metadata"].get("namespace")
    name = obj["metadata"]["name"]
    return f"{obj['kind']} {namespace + '/' if namespace else ''}{name}"
