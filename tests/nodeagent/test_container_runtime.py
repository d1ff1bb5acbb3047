"""Pods from real images through podman + runc: the spec's security context, limits, exit codes,
image pulls and Service names are what a kubelet would give them.

The pods run the SFU image (`make images`) with a `python3 -c` command, on nodes of their own
(tainted), so nothing else lands there.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest

from fixtures.cluster import Cluster
from fixtures.nodeagent import NodeAgent, NodeAgents
from fixtures.waiting import wait_for
from switchboard_dev.images import image_reference

pytestmark = [pytest.mark.cluster, pytest.mark.nodeagent]

TIMEOUT = 90
REGION = "containers"
TAINT = {"key": "switchboard.dev/test", "value": "containers", "effect": "NoSchedule"}
SFU_IMAGE = image_reference("sfu")
NONROOT = 65532

# What the container reports about itself, as one JSON line on its output.
WHOAMI = """
import json, os
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
try:
    open("/written-to-root", "w")
    write = "ok"
except OSError as error:
    write = error.strerror
print(json.dumps({
    "uid": os.getuid(), "gid": os.getgid(), "groups": sorted(os.getgroups()),
    "capEff": status["CapEff"].strip(), "noNewPrivs": status["NoNewPrivs"].strip(),
    "writeRoot": write, "env": os.environ.get("GREETING"),
}), flush=True)
"""


@pytest.fixture(scope="module")
def agent(node_agents: NodeAgents) -> NodeAgent:
    return node_agents.start({REGION: [f"{REGION}-a"]}, name="ctr", taints=[TAINT])


@pytest.fixture(scope="module")
def core(control_plane: Cluster) -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(control_plane.api_client())


@pytest.fixture(scope="module")
def namespace(control_plane: Cluster, agent: NodeAgent) -> Iterator[str]:
    name = control_plane.create_namespace(f"ctr-{uuid.uuid4().hex[:6]}")
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)


def pod(name: str, container: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "nodeSelector": {"topology.kubernetes.io/region": REGION},
            "tolerations": [{**TAINT, "operator": "Equal"}],
            "containers": [{"name": "main", "image": SFU_IMAGE, **container}],
            "terminationGracePeriodSeconds": 2,
            **spec,
        },
    }


def python(code: str) -> dict[str, Any]:
    return {"command": ["python3", "-c", code]}


def restricted_context() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


def status_of(core: kubernetes.client.CoreV1Api, namespace: str, name: str) -> Any:
    return core.read_namespaced_pod(name, namespace).status


def finished(core: kubernetes.client.CoreV1Api, namespace: str, name: str) -> Any:
    status = status_of(core, namespace, name)
    return status if status.phase in ("Succeeded", "Failed") else None


def waiting_reason(
    core: kubernetes.client.CoreV1Api, namespace: str, name: str, reason: str
) -> Any:
    statuses = status_of(core, namespace, name).container_statuses or []
    if statuses and statuses[0].state.waiting and statuses[0].state.waiting.reason == reason:
        return statuses[0].state.waiting
    return None


def report(agent: NodeAgent, namespace: str, name: str) -> dict[str, Any]:
    lines = [line for line in agent.container_log(namespace, name, "main").splitlines() if line]
    return dict(json.loads(lines[-1]))


def test_a_run_as_non_root_pod_runs_as_its_user_without_privileges(core, namespace, agent):
    core.create_namespaced_pod(
        namespace,
        pod(
            "whoami",
            {**python(WHOAMI), "securityContext": restricted_context()},
            restartPolicy="Never",
            securityContext={"runAsUser": NONROOT, "runAsGroup": NONROOT, "fsGroup": NONROOT},
        ),
    )
    status = wait_for(lambda: finished(core, namespace, "whoami"), TIMEOUT, "whoami to finish")
    assert status.phase == "Succeeded", status
    seen = report(agent, namespace, "whoami")
    assert seen["uid"] == NONROOT and seen["gid"] == NONROOT
    assert NONROOT in seen["groups"]  # fsGroup, as the kubelet adds it
    assert int(seen["capEff"], 16) == 0  # capabilities: drop ALL
    assert seen["noNewPrivs"] == "1"  # allowPrivilegeEscalation: false
    [container] = status.container_statuses
    assert container.image_id.startswith("sha256:")


def test_a_write_to_the_root_filesystem_fails_when_it_is_read_only(core, namespace, agent):
    core.create_namespaced_pod(
        namespace,
        pod(
            "readonly",
            {**python(WHOAMI), "securityContext": {"readOnlyRootFilesystem": True}},
            restartPolicy="Never",
            securityContext={"runAsUser": 0},
        ),
    )
    wait_for(lambda: finished(core, namespace, "readonly"), TIMEOUT, "readonly to finish")
    # Even root cannot write: the root filesystem itself is read-only.
    assert report(agent, namespace, "readonly")["writeRoot"] == "Read-only file system"


def test_root_with_run_as_non_root_is_refused_with_the_kubelets_message(core, namespace):
    created = core.create_namespaced_pod(
        namespace,
        pod(
            "asks-for-root",
            {**python("print('never')"), "securityContext": {"runAsNonRoot": True}},
            securityContext={"runAsUser": 0},
        ),
    )
    waiting = wait_for(
        lambda: waiting_reason(core, namespace, "asks-for-root", "CreateContainerConfigError"),
        TIMEOUT,
        "the refusal",
    )
    uid = created.metadata.uid
    assert waiting.message == (
        f'container\'s runAsUser breaks non-root policy (pod: "asks-for-root_{namespace}({uid})", '
        "container: main)"
    )
    assert status_of(core, namespace, "asks-for-root").phase == "Pending"


def test_a_missing_image_is_err_image_pull_then_image_pull_back_off(core, namespace):
    core.create_namespaced_pod(
        namespace, pod("missing", {"image": "switchboard/does-not-exist:1.0"})
    )
    waiting = wait_for(
        lambda: waiting_reason(core, namespace, "missing", "ImagePullBackOff"),
        TIMEOUT,
        "ImagePullBackOff",
    )
    assert waiting.message.startswith(
        'Back-off pulling image "switchboard/does-not-exist:1.0": ErrImagePull: '
    )
    assert "make images" in waiting.message
    assert status_of(core, namespace, "missing").phase == "Pending"


def test_a_failing_container_is_restarted_with_back_off_and_its_exit_code_shown(core, namespace):
    core.create_namespaced_pod(namespace, pod("exits", python("raise SystemExit(3)")))

    def crash_looping() -> Any:
        statuses = status_of(core, namespace, "exits").container_statuses or []
        if statuses and statuses[0].restart_count >= 2 and statuses[0].state.waiting:
            return statuses[0]
        return None

    container = wait_for(crash_looping, TIMEOUT, "a crash loop")
    assert container.state.waiting.reason == "CrashLoopBackOff"
    assert container.last_state.terminated.exit_code == 3
    assert container.last_state.terminated.reason == "Error"


def test_a_container_over_its_memory_limit_is_oom_killed(core, namespace):
    hog = "x = bytearray(256 * 1024 * 1024); x[::4096] = b'1' * len(x[::4096])"
    core.create_namespaced_pod(
        namespace,
        pod(
            "hog",
            {**python(hog), "resources": {"limits": {"memory": "48Mi"}}},
            restartPolicy="Never",
        ),
    )
    status = wait_for(lambda: finished(core, namespace, "hog"), TIMEOUT, "hog to end")
    assert status.phase == "Failed"
    terminated = status.container_statuses[0].state.terminated
    assert terminated.reason == "OOMKilled"
    assert terminated.exit_code == 137


def test_env_from_a_secret_and_volumes_reach_the_container(core, namespace, agent):
    core.create_namespaced_secret(
        namespace, {"metadata": {"name": "greeting"}, "stringData": {"value": "hello"}}
    )
    code = WHOAMI + "\nprint(open('/etc/greeting/value').read(), flush=True)"
    spec = {
        **python(code),
        "env": [
            {
                "name": "GREETING",
                "valueFrom": {"secretKeyRef": {"name": "greeting", "key": "value"}},
            }
        ],
        "volumeMounts": [{"name": "greeting", "mountPath": "/etc/greeting", "readOnly": True}],
        "securityContext": restricted_context(),
    }
    core.create_namespaced_pod(
        namespace,
        pod(
            "greeter",
            spec,
            restartPolicy="Never",
            securityContext={"runAsUser": NONROOT, "fsGroup": NONROOT},
            volumes=[
                {"name": "greeting", "secret": {"secretName": "greeting", "defaultMode": 0o440}}
            ],
        ),
    )
    status = wait_for(lambda: finished(core, namespace, "greeter"), TIMEOUT, "greeter to end")
    assert status.phase == "Succeeded", agent.container_log(namespace, "greeter", "main")
    output = agent.container_log(namespace, "greeter", "main").splitlines()
    assert json.loads(output[0])["env"] == "hello"
    # A 0440 Secret file is readable through the fsGroup, as under a kubelet.
    assert output[1] == "hello"


def test_service_names_resolve_to_ready_pods_inside_containers(core, namespace, agent):
    server = pod(
        "named",
        {
            **python("import time; time.sleep(3600)"),
            "readinessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 1},
        },
    )
    server["metadata"]["labels"] = {"app": "named"}
    core.create_namespaced_pod(namespace, server)
    core.create_namespaced_service(
        namespace,
        {
            "metadata": {"name": "named"},
            "spec": {"selector": {"app": "named"}, "ports": [{"port": 80}]},
        },
    )

    def ready_ip() -> str | None:
        status = status_of(core, namespace, "named")
        conditions = {c.type: c.status for c in status.conditions or []}
        return status.pod_ip if conditions.get("Ready") == "True" else None

    ip = wait_for(ready_ip, TIMEOUT, "the named pod Ready")
    lookup = (
        "import socket; print(' '.join(socket.gethostbyname(n) for n in "
        f"['named', 'named.{namespace}', 'named.{namespace}.svc', "
        f"'named.{namespace}.svc.cluster.local']), flush=True)"
    )
    core.create_namespaced_pod(namespace, pod("resolver", python(lookup), restartPolicy="Never"))
    status = wait_for(lambda: finished(core, namespace, "resolver"), TIMEOUT, "resolver to end")
    assert status.phase == "Succeeded", agent.container_log(namespace, "resolver", "main")
    assert agent.container_log(namespace, "resolver", "main").split() == [ip] * 4


SIGNALLED = """
import json, os, signal, time
got = []
signal.signal(signal.SIGUSR2, lambda *_: got.append(True))
with open("/shared/pid.tmp", "w") as f:
    f.write(str(os.getpid()))
os.rename("/shared/pid.tmp", "/shared/pid")
while not got:
    time.sleep(0.05)
print(json.dumps({"signalled": True, "pid": os.getpid()}), flush=True)
"""
SIGNALLER = """
import os, signal, time
while not os.path.exists("/shared/pid"):
    time.sleep(0.05)
os.kill(int(open("/shared/pid").read()), signal.SIGUSR2)
"""


def test_containers_of_a_pod_sharing_its_process_namespace_can_signal_each_other(
    core, namespace, agent
):
    """As coturn's certificate reload needs: a sidecar signals its neighbour by the PID in
    its pidfile, which names the same process only in one shared namespace."""
    shared = [{"name": "shared", "mountPath": "/shared"}]
    context = restricted_context()
    manifest = pod(
        "shared-pids",
        {**python(SIGNALLED), "securityContext": context, "volumeMounts": shared},
        restartPolicy="Never",
        shareProcessNamespace=True,
        securityContext={"runAsUser": NONROOT, "runAsGroup": NONROOT, "fsGroup": NONROOT},
        volumes=[{"name": "shared", "emptyDir": {}}],
    )
    manifest["spec"]["containers"].append(
        {
            "name": "signaller",
            "image": SFU_IMAGE,
            **python(SIGNALLER),
            "securityContext": context,
            "volumeMounts": shared,
        }
    )
    core.create_namespaced_pod(namespace, manifest)
    status = wait_for(lambda: finished(core, namespace, "shared-pids"), TIMEOUT, "both to finish")
    assert status.phase == "Succeeded", status
    seen = report(agent, namespace, "shared-pids")
    assert seen["signalled"] and seen["pid"] != 1  # PID 1 is the pod's namespace holder
