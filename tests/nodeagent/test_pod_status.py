"""Pod phase and conditions from container states, by the kubelet's rules."""

from datetime import UTC, datetime, timedelta

import pytest

from switchboard_localcluster.nodeagent.containerstate import (
    ContainerSnapshot,
    Running,
    Terminated,
    Waiting,
)
from switchboard_localcluster.nodeagent.podstatus import (
    PodSnapshot,
    desired_status,
    owned_status,
    pod_phase,
    status_patch,
)

T0 = datetime(2030, 1, 1, tzinfo=UTC)
T1 = T0 + timedelta(seconds=30)


def running(name: str = "app", ready: bool = True) -> ContainerSnapshot:
    return ContainerSnapshot(name=name, image="img", state=Running(T0), ready=ready, started=True)


def exited(name: str = "app", code: int = 0, restarting: bool = False) -> ContainerSnapshot:
    end = Terminated(
        exit_code=code, reason="Completed" if code == 0 else "Error", started_at=T0, finished_at=T1
    )
    if restarting:
        return ContainerSnapshot(
            name=name,
            image="img",
            state=Waiting("CrashLoopBackOff"),
            last_state=end,
            restart_count=1,
        )
    return ContainerSnapshot(name=name, image="img", state=end)


def creating(name: str = "app") -> ContainerSnapshot:
    return ContainerSnapshot(name=name, image="img", state=Waiting("ContainerCreating"))


def pod(
    *containers: ContainerSnapshot,
    policy: str = "Always",
    init: tuple = (),
    terminating: bool = False,
    gates: tuple = (),
) -> PodSnapshot:
    return PodSnapshot(
        restart_policy=policy,
        host_ip="127.10.0.1",
        pod_ip="127.10.0.2",
        start_time=T0,
        sandbox_ready=True,
        init_containers=init,
        containers=containers,
        readiness_gates=gates,
        terminating=terminating,
    )


@pytest.mark.parametrize(
    ("snapshot", "phase"),
    [
        (pod(creating()), "Pending"),
        (pod(running()), "Running"),
        (pod(running("a"), creating("b")), "Pending"),
        (pod(exited(code=1, restarting=True)), "Running"),  # crash-looping is still Running
        (pod(exited(code=0), policy="Never"), "Succeeded"),
        (pod(exited(code=2), policy="Never"), "Failed"),
        (pod(exited(code=2), policy="OnFailure"), "Running"),
        (pod(exited(code=0), policy="OnFailure"), "Succeeded"),
        (pod(exited(code=0), policy="Always"), "Running"),
        (pod(exited(code=0), policy="Always", terminating=True), "Succeeded"),
        (pod(exited(code=137), policy="Always", terminating=True), "Failed"),
        (pod(creating(), init=(running("init"),)), "Pending"),
        (pod(creating(), policy="Never", init=(exited("init", code=1),)), "Failed"),
        (pod(running(), init=(exited("init", code=0),)), "Running"),
    ],
)
def test_phase(snapshot: PodSnapshot, phase: str) -> None:
    assert pod_phase(snapshot) == phase


def conditions(status: dict) -> dict[str, dict]:
    return {c["type"]: c for c in status["conditions"]}


def test_ready_pod_status() -> None:
    status = desired_status(pod(running()), [], [], T1)
    assert status["phase"] == "Running"
    assert status["podIP"] == "127.10.0.2"
    assert status["podIPs"] == [{"ip": "127.10.0.2"}]
    assert status["hostIP"] == "127.10.0.1"
    assert status["startTime"] == "2030-01-01T00:00:00Z"
    assert {k: c["status"] for k, c in conditions(status).items()} == {
        "PodReadyToStartContainers": "True",
        "Initialized": "True",
        "ContainersReady": "True",
        "Ready": "True",
    }
    [container] = status["containerStatuses"]
    assert container["state"] == {"running": {"startedAt": "2030-01-01T00:00:00Z"}}
    assert container["ready"] is True and container["started"] is True


def test_unready_container_names_itself() -> None:
    status = desired_status(pod(running("web", ready=False), running("side")), [], [], T1)
    ready = conditions(status)["Ready"]
    assert ready["status"] == "False"
    assert ready["reason"] == "ContainersNotReady"
    assert ready["message"] == "containers with unready status: [web]"


def test_transition_time_changes_only_when_status_flips() -> None:
    first = desired_status(pod(running()), [], [], T0)
    same = desired_status(pod(running()), first["conditions"], [], T1)
    assert same == first
    flipped = desired_status(pod(running(ready=False)), first["conditions"], [], T1)
    assert conditions(flipped)["Ready"]["lastTransitionTime"] == "2030-01-01T00:00:30Z"
    assert conditions(flipped)["Initialized"]["lastTransitionTime"] == "2030-01-01T00:00:00Z"


def test_readiness_gates_hold_back_ready() -> None:
    snapshot = pod(running(), gates=("example.com/lb",))
    waiting = desired_status(snapshot, [], [], T0)
    assert conditions(waiting)["Ready"]["status"] == "False"
    assert conditions(waiting)["ContainersReady"]["status"] == "True"
    passed = desired_status(snapshot, [], [{"type": "example.com/lb", "status": "True"}], T0)
    assert conditions(passed)["Ready"]["status"] == "True"


def test_owned_status_ignores_fields_and_conditions_of_others() -> None:
    status = desired_status(pod(running()), [], [], T0)
    stored = {
        **status,
        "qosClass": "BestEffort",
        "conditions": [*status["conditions"], {"type": "PodScheduled", "status": "True"}],
    }
    assert owned_status(stored) == owned_status(status)


def test_patch_clears_stale_reasons_and_replaces_addresses() -> None:
    patch = status_patch("uid-1", desired_status(pod(running()), [], [], T0))
    assert patch["metadata"] == {"uid": "uid-1"}
    ready = next(c for c in patch["status"]["conditions"] if c["type"] == "Ready")
    assert ready["reason"] is None and ready["message"] is None
    assert patch["status"]["podIPs"][-1] == {"$patch": "replace"}
