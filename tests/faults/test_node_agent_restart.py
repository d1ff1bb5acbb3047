"""The fault suite's node agent case: the agent (the kubelet stand-in) restarted, and the SFU
pods it runs keep running. The new agent adopts their containers by pod UID, keeps
reporting their status, and starts no duplicates; calls stream on throughout, with the four
assertions of every fault case (fixtures/fault_stack.py, Observation).

A module of its own because its pods run from the built images through podman, not as
processes: the process runtime's local stand-ins are the agent's children and die with it
(by design: they must not outlive an agent that can no longer stop them), whereas a
container lives on under its runtime, as a kubelet's containers outlive the kubelet.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from fixtures.fault_cases import hold, running, settle, streaming_calls
from fixtures.fault_stack import (
    MEDIA_NS,
    SETTLE_SECONDS,
    FaultStack,
    Observation,
    StreamingRoom,
    eventually,
    off_loop,
)
from switchboard_dev.images import agent_image_stores
from switchboard_localcluster.nodeagent.adoption import parse_name
from switchboard_localcluster.podman import Podman

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.nodeagent,
    pytest.mark.slow,
    pytest.mark.asyncio(loop_scope="module"),
]

POD_ADDRESSES = "127.62.0.0/16"
HOLD_SECONDS = 15.0
"""Calls are watched this long after the new agent is up (its probes and first status
writes run meanwhile)."""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultStack]:
    stores = agent_image_stores()
    if not stores:
        pytest.skip("the process runtime was selected: its pods die with the agent")
    workdir = Path(tmp_path_factory.mktemp("fault-stack-images"))
    with running(
        FaultStack(workdir, pod_addresses=POD_ADDRESSES, image_stores=stores)
    ) as fault_stack:
        yield fault_stack


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def rooms(stack: FaultStack) -> AsyncIterator[list[StreamingRoom]]:
    async with streaming_calls(stack) as opened:
        yield opened


def sfu_containers(stack: FaultStack) -> dict[str, tuple[str, str, int, bool]]:
    """Each SFU pod's container as the API shows it: (pod UID, containerID, restarts, ready)."""
    pods = stack.get("pods", "-n", MEDIA_NS, "-l", "app.kubernetes.io/component=sfu")["items"]
    found = {}
    for pod in pods:
        (status,) = pod["status"]["containerStatuses"]
        found[pod["metadata"]["name"]] = (
            pod["metadata"]["uid"],
            status.get("containerID", ""),
            status["restartCount"],
            status["ready"] and "running" in status["state"],
        )
    return found


def runtime_containers(stack: FaultStack) -> list[tuple[str, str]]:
    """(pod UID, container) of every running container in the agent's store."""
    assert stack.agent is not None
    store = Podman(
        root=Path(stack.agent.config["workDir"]).resolve() / "containers",
        image_stores=tuple(stack.image_stores),
    )
    listing: list[dict[str, Any]] = json.loads(store.run("ps", "--format=json").stdout or "[]")
    return [parsed for entry in listing if (parsed := parse_name(entry["Names"][0]))]


async def test_node_agent_restarted_pods_keep_running(stack, rooms) -> None:
    assert stack.agent is not None
    observation = Observation(stack, rooms, healthy_pods=set(stack.sfu_ips))
    before = await off_loop(lambda: sfu_containers(stack))
    assert all(ready for *_, ready in before.values()), before
    log_offset = stack.agent.log_path.stat().st_size

    def restarted_log() -> str:
        assert stack.agent is not None
        with stack.agent.log_path.open() as log:
            log.seek(log_offset)
            return log.read()

    def adopted() -> bool:
        text = restarted_log()
        return all(f"container adopted pod={pod}_{MEDIA_NS}(" in text for pod in before)

    started = time.monotonic()
    stack.agent.crash_and_restart()  # on the loop's thread, which outlives the new agent
    await eventually(adopted, SETTLE_SECONDS, "the new agent to adopt every SFU container")
    print(f"\nfault node agent adopted_after={time.monotonic() - started:.1f}s")
    await hold(HOLD_SECONDS, observation)

    # The same containers, not restarted, still Ready, and nothing started twice.
    assert await off_loop(lambda: sfu_containers(stack)) == before
    running = await off_loop(lambda: runtime_containers(stack))
    assert sorted(running) == sorted((uid, "sfu") for uid, *_ in before.values()), running
    assert "container started" not in restarted_log()
    await settle(observation, "node-agent-restarted")
