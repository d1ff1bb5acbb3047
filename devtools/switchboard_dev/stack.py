"""Switchboard on the local cluster: control plane, node agent, the chart (`helm install`),
examples.

The operator runs as the chart's Deployment from its image, and SFU and TURN pods from
theirs (`make images`). SWITCHBOARD_RUNTIME=process selects the fast inner loop instead:
the operator as a process under the chart's RBAC, SFU and coturn as local processes.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

import yaml

from switchboard_api.resources import REGION, ROOM
from switchboard_dev import chart_install
from switchboard_dev.demo.apikey import install_demo_key
from switchboard_dev.demo.server import DemoServer
from switchboard_dev.images import agent_image_stores, process_runtime_selected
from switchboard_dev.node_agent_process import NodeAgentProcess
from switchboard_dev.operator_process import (
    OPERATOR_USER,
    KubectlRunner,
    OperatorProcess,
    grant_operator_rbac,
    local_operator_env,
)
from switchboard_dev.paths import CRDS_DIR, EXAMPLES_DIR
from switchboard_dev.prometheus import PrometheusProcess, grant_discovery
from switchboard_dev.summary import UpSummary
from switchboard_localcluster.controlplane import ControlPlane, free_port
from switchboard_localcluster.nodeagent.presets import (
    NODE_AGENT_GROUPS,
    NODE_AGENT_USER,
    agent_config,
)
from switchboard_localcluster.processes import wait_until

log = logging.getLogger(__name__)
AGENT_ADDRESSES = "127.30.0.0/16"
"""Loopback addresses the demo's node agent gives its pods."""
STATE_DIRS = ("cluster", "node-agent", "operator", "prometheus")
"""What a stack keeps in its work directory; a new stack starts without the last one's."""


class WorkdirInUse(RuntimeError):
    """Another stack runs from the same work directory."""


def claim_workdir(workdir: Path) -> int:
    """Lock `workdir` for this process (the lock goes with it) and clear the state a stopped
    stack left there (its logs stay readable until then). Returns the lock's descriptor."""
    workdir.mkdir(parents=True, exist_ok=True)
    fd = os.open(workdir, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise WorkdirInUse(
            f"another `switchboard-dev up` (make up) runs from {workdir}; stop it first "
            "or pass another --workdir"
        ) from None
    for name in STATE_DIRS:
        shutil.rmtree(workdir / name, ignore_errors=True)
    return fd


def install_crds(plane: KubectlRunner) -> None:
    plane.kubectl("apply", "--server-side", "-f", str(CRDS_DIR))
    for names in (REGION, ROOM):
        # Polled rather than `kubectl wait`, which fails while the CRD has no status yet.
        wait_until(
            lambda names=names: _established(plane, names.crd_name),
            60,
            f"{names.crd_name} Established",
        )


def _established(plane: KubectlRunner, crd: str) -> bool:
    result = plane.kubectl(
        "get", "crd", crd, "-o", "jsonpath={.status.conditions[?(@.type=='Established')].status}"
    )
    return getattr(result, "stdout", "") == "True"


def example_objects(directory: Path = EXAMPLES_DIR) -> list[dict]:
    objects = []
    for path in sorted(directory.glob("*.yaml")):
        objects += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return objects


def example_regions(directory: Path = EXAMPLES_DIR) -> list[str]:
    """The topology regions the example Regions schedule onto (their nodes must exist)."""
    return sorted(
        {
            o["spec"].get("topologyRegion") or o["metadata"]["name"]
            for o in example_objects(directory)
            if o["kind"] == "Region"
        }
    )


class LocalStack:
    """Everything the README's first command brings up, stopped together."""

    def __init__(self, workdir: Path | None = None) -> None:
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="switchboard-"))
        self._lock = claim_workdir(self.workdir)
        self.plane = ControlPlane(workdir=self.workdir / "cluster")
        self.operator: OperatorProcess | None = None
        self.node_agent: NodeAgentProcess | None = None
        self.demo: DemoServer | None = None
        self.prometheus: PrometheusProcess | None = None

    @property
    def join_api_url(self) -> str:
        """The join API as clients reach it: the operator Service's (its leader's address),
        or the operator process's in the process runtime. This is the one place that knows."""
        if self.operator is not None:
            return self.operator.http_url
        url = chart_install.operator_url(self.plane)
        assert url is not None, "the operator Service has no ready leader"
        return url

    def start(self) -> LocalStack:
        try:
            self.plane.start()
        except BaseException:
            self.stop()
            raise
        return self

    def install_switchboard(self, timeout: float = 180.0) -> None:
        """`helm install` of the chart (the operator from its image), once nodes exist; or,
        in the process runtime, the operator as a process under the chart's RBAC."""
        if process_runtime_selected():
            install_crds(self.plane)
            grant_operator_rbac(self.plane)
            self.operator = OperatorProcess(
                self.plane.issue_kubeconfig(OPERATOR_USER),
                self.workdir / "operator",
                env=local_operator_env(free_port()),
                restart_on_exit=True,
            )
            self.operator.start()
            return
        chart_install.install(self.plane.kubeconfig)
        wait_until(
            lambda: chart_install.operator_url(self.plane) is not None,
            timeout,
            "the operator Service to select its leader",
        )

    def start_node_agent(self, regions: Mapping[str, list[str]]) -> NodeAgentProcess:
        """A node agent with nodes in `regions` ({region: [zone, ...]})."""
        config = agent_config(
            self.workdir / "node-agent" / "state",
            regions,
            AGENT_ADDRESSES,
            image_stores=agent_image_stores(),
        )
        kubeconfig = self.plane.issue_kubeconfig(NODE_AGENT_USER, NODE_AGENT_GROUPS)
        self.node_agent = NodeAgentProcess(
            self.plane, self.workdir / "node-agent", config, kubeconfig
        ).start()
        return self.node_agent

    def apply_examples(self, timeout: float = 60.0, ready_timeout: float = 180.0) -> list[dict]:
        """Apply examples/ and wait until the operator saw each. Namespaces are created as a
        platform team would: Region namespaces enforce the `restricted` Pod Security profile."""
        objects = example_objects()
        media = {o["spec"]["namespace"] for o in objects if o["kind"] == "Region"}
        for namespace in sorted({o["metadata"].get("namespace") for o in objects} - {None} | media):
            if self.plane.kubectl("get", "namespace", namespace, check=False).returncode != 0:
                self.plane.kubectl("create", "namespace", namespace)
            if namespace in media:
                self.plane.kubectl(
                    "label",
                    "namespace",
                    namespace,
                    "--overwrite",
                    "pod-security.kubernetes.io/enforce=restricted",
                )
        # Regions first, Ready before any Room: a Room placed while its nearest Region's
        # pods are still starting would spill to a farther Region that has capacity now.
        regions = [o for o in objects if o["kind"] == "Region"]
        rest = [o for o in objects if o["kind"] != "Region"]
        for batch in (regions, rest):
            for obj in batch:
                self.plane.kubectl("apply", "-f", "-", input=json.dumps(obj))
            for obj in batch:
                wait_until(
                    lambda obj=obj: self._observed(obj),
                    timeout,
                    f"the operator to observe {_ref(obj)}",
                )
            if batch is regions:
                self.wait_for_examples(regions, ready_timeout)
        return objects

    def start_prometheus(self) -> PrometheusProcess:
        """Prometheus scraping the cluster through the chart's monitors, with its alerts: the
        SFU and TURN pods, and the operator's pods when the chart runs it (the process
        runtime's operator is no pod). Endpoints refuse loopback addresses, so the operator
        is scraped through its PodMonitor here, not its ServiceMonitor."""
        flags = ["monitoring.podMonitors.enabled=true", "monitoring.rules.enabled=true"]
        if self.operator is None:
            flags.append("monitoring.podMonitors.includeOperator=true")
        docs = chart_install.render(self.plane.kubeconfig, *(f"--set={flag}" for flag in flags))
        self.prometheus = PrometheusProcess(
            self.workdir / "prometheus", grant_discovery(self.plane), docs
        ).start()
        return self.prometheus

    def start_demo(self) -> UpSummary:
        """The demo key and the demo page's server; what the user needs to reach them all."""
        key = install_demo_key(self.plane)
        self.demo = DemoServer(self.join_api_url, key).start()
        return UpSummary(
            workdir=self.workdir,
            kubeconfig=self.plane.kubeconfig,
            kubectl=self.plane.binaries.kubectl,
            join_api_url=self.join_api_url,
            demo_api_key=key,
            demo_page_url=self.demo.url,
            prometheus_url=self.prometheus.url if self.prometheus is not None else None,
        )

    def _observed(self, obj: dict) -> bool:
        live = self._live(obj)
        return bool(
            (live.get("status") or {}).get("observedGeneration") == live["metadata"]["generation"]
        )

    def wait_for_examples(self, objects: list[dict], timeout: float = 180.0) -> None:
        """Wait until every example Region is Ready and every example Room is placed."""
        for obj in objects:
            if obj["kind"] == "Region":
                wait_until(
                    lambda obj=obj: self._condition(obj, "Ready") == "True",
                    timeout,
                    f"{_ref(obj)} Ready",
                )
            elif obj["kind"] == "Room":
                wait_until(
                    lambda obj=obj: self._phase(obj) in ("Scheduled", "Running"),
                    timeout,
                    f"{_ref(obj)} Scheduled",
                )

    def _live(self, obj: dict) -> dict:
        args = ["get", obj["kind"].lower(), obj["metadata"]["name"], "-o", "json"]
        if obj["metadata"].get("namespace"):
            args += ["-n", obj["metadata"]["namespace"]]
        return dict(json.loads(self.plane.kubectl(*args).stdout))

    def _condition(self, obj: dict, type_: str) -> str | None:
        conditions = (self._live(obj).get("status") or {}).get("conditions") or []
        return next((c["status"] for c in conditions if c["type"] == type_), None)

    def _phase(self, obj: dict) -> str | None:
        return (self._live(obj).get("status") or {}).get("phase")

    def stop(self) -> None:
        if self.prometheus is not None:
            self.prometheus.stop()
        if self.demo is not None:
            self.demo.stop()
        if self.operator is not None:
            self.operator.stop()
        if self.node_agent is not None:
            self.node_agent.stop()
        self.plane.stop()

    def cleanup(self) -> None:
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        if self._lock >= 0:
            os.close(self._lock)
            self._lock = -1

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
