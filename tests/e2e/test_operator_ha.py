"""Two operator replicas: exactly one leads; when it dies the standby takes over placement."""

from __future__ import annotations

import re
import threading
import time

import pytest

from fixtures.cluster import apply
from fixtures.cluster import get_json as get
from fixtures.scrape import scrape
from fixtures.waiting import wait_for
from switchboard_dev.operator_process import OPERATOR_NAMESPACE, OperatorProcess
from switchboard_operator.logic.leader_election import LeaderTiming

pytestmark = [pytest.mark.cluster, pytest.mark.nodeagent]

REGION, MEDIA_NS, ROOMS_NS = "ha-eu", "e2e-ha-media", "e2e-ha-rooms"
TIMING = LeaderTiming()


def scheduled(cluster, name: str) -> bool:
    status = get(cluster, "room", name, "-n", ROOMS_NS).get("status") or {}
    return status.get("phase") == "Scheduled"


def room(name: str) -> dict:
    return {
        "apiVersion": "switchboard.dev/v1alpha1",
        "kind": "Room",
        "metadata": {"name": name, "namespace": ROOMS_NS},
        "spec": {"region": REGION, "maxParticipants": 2},
    }


def holder(cluster) -> str:
    lease = get(cluster, "lease", "switchboard-operator", "-n", OPERATOR_NAMESPACE)
    return lease["spec"].get("holderIdentity") or ""


def leading_as(replica: OperatorProcess) -> str | None:
    """The identity this replica's latest process took the Lease with, once it did (its log
    goes on across restarts)."""
    found = re.findall(r"leading lease=\S+ identity=(\S+)", replica.log_tail(400))
    return found[-1] if found else None


def test_standby_takes_over_when_the_leader_dies(operator, node_agent, crds_installed, tmp_path):
    cluster = crds_installed
    cluster.create_namespace(MEDIA_NS, {"pod-security.kubernetes.io/enforce": "restricted"})
    cluster.create_namespace(ROOMS_NS)
    apply(
        cluster,
        {
            "apiVersion": "switchboard.dev/v1alpha1",
            "kind": "Region",
            "metadata": {"name": REGION},
            "spec": {
                "namespace": MEDIA_NS,
                "topologyRegion": "eu-west",
                "location": {"latitude": 48.1, "longitude": 11.6},
                "sfu": {"minReplicas": 1},
                "turn": {"enabled": False},
            },
        },
    )
    apply(cluster, room("before"))
    wait_for(lambda: scheduled(cluster, "before"), 120, "placement by the leader")
    leader = holder(cluster)
    assert leader

    # Its own health and metrics ports (every start picks them): both run on this host.
    standby = OperatorProcess(operator.kubeconfig, tmp_path, name="standby", env=operator.env)
    standby.start(wait=False)
    try:
        wait_for(lambda: "standing by" in standby.log_tail(200), 60, "the standby to stand by")
        assert holder(cluster) == leader
        # Both replicas say which one leads.
        assert scrape(operator.metrics_url)["switchboard_operator_leader"] == 1
        assert scrape(standby.metrics_url)["switchboard_operator_leader"] == 0

        killed = time.monotonic()
        operator.kill()
        apply(cluster, room("after"))
        wait_for(lambda: scheduled(cluster, "after"), 120, "placement by the new leader")
        print(f"leader killed -> next room placed by the standby: {time.monotonic() - killed:.1f}s")
        assert holder(cluster) not in ("", leader)
        assert scrape(standby.metrics_url)["switchboard_operator_leader"] == 1
        # The first room kept its pod through the takeover.
        before = get(cluster, "room", "before", "-n", ROOMS_NS)["status"]
        assert before["phase"] == "Scheduled", before
    finally:
        standby.stop()
        operator.start()
    wait_for(lambda: holder(cluster) not in ("",), 60, "a leader again")
    cluster.kubectl("delete", "region", REGION, "--wait=false")


def test_a_standby_stops_cleanly_on_sigterm(operator, crds_installed, tmp_path):
    # SIGTERM is how the kubelet stops a container. Python has no handler for it by
    # default, and a container's process 1 ignores a signal it has no handler for: a
    # standby would sit out the whole grace period and be SIGKILLed (exit 137) at every
    # rollout and uninstall. Outside a container the same missing handler shows as death
    # by the signal (exit code -15) instead of a clean exit.
    standby = OperatorProcess(operator.kubeconfig, tmp_path, name="standby", env=operator.env)
    standby.start(wait=False)
    try:
        wait_for(lambda: "standing by" in standby.log_tail(200), 60, "the standby to stand by")
    finally:
        standby.stop()
    process = standby.process
    assert process is not None
    assert process.exit_code == 0, standby.log_tail(20)
    assert "stopped by SIGTERM" in standby.log_tail(20)


def test_a_leader_hands_its_lease_over_on_sigterm_running_or_still_starting(
    operator, crds_installed, tmp_path
):
    # A replica holds the Lease from the moment it takes it, before kopf runs (and sets
    # its own SIGTERM handler). Stopped at any point, it hands the Lease back once every
    # act has stopped: the record no longer names it when the process has ended, and a
    # standby takes over at its next look, not a lease duration after the last renewal
    # (RecordObserver: it cannot take a held record sooner).
    cluster = crds_installed
    standby = OperatorProcess(operator.kubeconfig, tmp_path, name="standby", env=operator.env)
    standby.start(wait=False)
    try:
        wait_for(lambda: "standing by" in standby.log_tail(200), 60, "the standby to stand by")
        leader = holder(cluster)
        assert leader and leader == leading_as(operator)
        # The leader, kopf running, is stopped; the standby takes the released Lease at
        # its next look and is stopped the moment it has, while it is still starting.
        exited: list[float] = []

        def stop_the_leader() -> None:
            operator.stop()
            exited.append(time.monotonic())

        signalled = time.monotonic()
        stopping = threading.Thread(target=stop_the_leader)
        stopping.start()
        successor = wait_for(lambda: leading_as(standby), 30, "the standby to lead", 0.01)
        led = time.monotonic()
        standby.stop()
        stopping.join()
        print(
            f"\nleader SIGTERMed -> exited {exited[0] - signalled:.1f}s later; the standby "
            f"led {led - exited[0]:.1f}s after that exit"
        )
        assert operator.process is not None and operator.process.exit_code == 0
        assert standby.process is not None and standby.process.exit_code == 0
        tail = standby.log_tail(100)
        assert "stopped by SIGTERM" in tail, "kopf had started: not the path under test"
        assert holder(cluster) not in (leader, successor), "a stopped replica holds the Lease"
        # Not a lease duration after the leader's last renewal, which came shortly before
        # its exit: at the standby's next look at the released record.
        assert led - exited[0] < TIMING.lease_duration_seconds
    finally:
        standby.stop()
        operator.start()
    wait_for(lambda: holder(cluster) not in ("",), 60, "a leader again")
