"""Run the local node agent as a process against a cluster and wait until its nodes are
schedulable (Ready, without the not-ready taint)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from switchboard_localcluster.nodeagent.presets import write_config
from switchboard_localcluster.processes import Supervised, wait_until

NOT_READY_TAINT = "node.kubernetes.io/not-ready"
NODE_READY_TIMEOUT = 90.0
STOP_GRACE_SECONDS = 30.0


class Kubectl(Protocol):
    def kubectl(self, *args: str, check: bool = True) -> Any: ...


class NodeAgentProcess:
    """One agent process and the Nodes its configuration registers."""

    def __init__(
        self, cluster: Kubectl, work_dir: Path, config: Mapping[str, Any], kubeconfig: Path
    ) -> None:
        self.cluster = cluster
        self.work_dir = work_dir
        self.config = dict(config)
        self.config_path = write_config(work_dir / "agent.yaml", config)
        self.node_names = [node["name"] for node in config["nodes"]]
        self.process = Supervised(
            "node-agent",
            [
                sys.executable,
                "-m",
                "switchboard_localcluster.nodeagent",
                "--kubeconfig",
                str(kubeconfig),
                "--config",
                str(self.config_path),
            ],
            work_dir / "agent.log",
            # Pods run this project's console scripts (the images' local stand-ins).
            env={
                **os.environ,
                "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
            },
        )

    @property
    def log_path(self) -> Path:
        return self.process.log_path

    def container_log(self, namespace: str, pod: str, container: str) -> str:
        """All output of a pod's container so far (every restart)."""
        state = Path(self.config["workDir"])
        logs = sorted((state / "logs").glob(f"{namespace}_{pod}_*/{container}/*.log"))
        return "".join(path.read_text(errors="replace") for path in logs)

    def start(self, timeout: float = NODE_READY_TIMEOUT) -> NodeAgentProcess:
        self.process.start()
        wait_until(
            self.nodes_schedulable,
            timeout,
            f"nodes {self.node_names} Ready without the not-ready taint",
        )
        return self

    def crash_and_restart(self) -> None:
        """SIGKILL the agent (no cleanup: a crash, or a restart that leaves its pods be, as
        a kubelet's does) and start it again; `nodes_schedulable` tells when it is back.

        Call it from a thread that outlives the agent (not a pool's worker): the agent dies
        with the thread that started it (PR_SET_PDEATHSIG), without stopping its pods."""
        self.process.kill()
        self.process.start()

    def nodes_schedulable(self) -> bool:
        self.process.check_running()
        result = self.cluster.kubectl("get", "nodes", *self.node_names, "-o", "json", check=False)
        if result.returncode != 0:
            return False
        doc = json.loads(result.stdout)
        # One name gives one Node, several give a List.
        nodes = doc.get("items", [doc])
        for node in nodes:
            conditions = node.get("status", {}).get("conditions") or []
            ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
            taints = {t["key"] for t in node.get("spec", {}).get("taints") or []}
            if not ready or NOT_READY_TAINT in taints:
                return False
        return len(nodes) == len(self.node_names)

    def stop(self) -> None:
        self.process.stop(grace=STOP_GRACE_SECONDS)
