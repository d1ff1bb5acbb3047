"""What following Rooms costs the process that watches them: the operator's informer
(`switchboard_operator.kit.informer`) against kopf (an index and an event handler, as the
operator's other kinds use), on the same streams, on the local control plane.

Each consumer runs alone in a child process and reports the CPU it spent (its own process
time) from when it was ready until it had seen every Room placed: created, then its status
written, as a placement makes them (two watch events). kopf may coalesce the two into one
handler call; the cost is per placement either way. No thresholds: figures only.

    PATH=$PWD/.venv/bin:$PATH tools/in-netns.sh .venv/bin/python bench/watch_cost.py \
        [--rooms 2000] [--repeat 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from api_ceiling import placed_status

from switchboard_api.resources import GROUP, ROOM, VERSION
from switchboard_dev.stack import install_crds
from switchboard_localcluster.controlplane import ControlPlane

NAMESPACE = "watch-cost"
ROOM_SPEC = {"maxParticipants": 2, "emptyTimeoutSeconds": 3600}
CONCURRENCY = 64
CONSUMERS = ("informer", "kopf")


async def consume_with_informer(kubeconfig: str, namespace: str, expected: int) -> float:
    from kubernetes_asyncio import client, config  # noqa: PLC0415 - child process only

    from switchboard_operator.cache import ROOMS  # noqa: PLC0415
    from switchboard_operator.kit.informer import Informer, Resource  # noqa: PLC0415

    await config.load_kube_config(config_file=kubeconfig)
    async with client.ApiClient() as api:
        api.rest_client.pool_manager._trust_env = False
        placed: set[str] = set()
        done = asyncio.Event()

        def changed(key: str) -> None:
            if ((informer.get(key) or {}).get("status") or {}).get("pod"):
                placed.add(key)
                if len(placed) >= expected:
                    done.set()

        rooms = Resource(ROOMS.api_version, ROOMS.kind, ROOMS.plural, namespace=namespace)
        informer = Informer(api, rooms)
        informer.subscribe(on_change=changed)
        task = asyncio.create_task(informer.run())
        await informer.synced.wait()
        return await _measure(done, task)


async def consume_with_kopf(kubeconfig: str, namespace: str, expected: int) -> float:
    import os  # noqa: PLC0415

    import kopf  # noqa: PLC0415

    os.environ["KUBECONFIG"] = kubeconfig
    registry = kopf.OperatorRegistry()
    placed: set[str] = set()
    done = asyncio.Event()

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return kopf.login_with_kubeconfig(**kwargs)

    @kopf.index(GROUP, VERSION, ROOM.plural, id="rooms", registry=registry)
    async def rooms(namespace: str, name: str, body: kopf.Body, **_: Any) -> dict[str, Any]:
        return {f"{namespace}/{name}": dict(body)}

    @kopf.on.event(GROUP, VERSION, ROOM.plural, registry=registry)
    async def changed(namespace: str, name: str, status: kopf.Status, **_: Any) -> None:
        if status.get("pod"):
            placed.add(f"{namespace}/{name}")
            if len(placed) >= expected:
                done.set()

    settings = kopf.OperatorSettings()
    settings.posting.enabled = False
    ready = asyncio.Event()
    task = asyncio.create_task(
        kopf.operator(
            registry=registry,
            settings=settings,
            namespaces=[namespace],
            standalone=True,
            ready_flag=ready,
        )
    )
    await ready.wait()
    return await _measure(done, task)


async def _measure(done: asyncio.Event, task: asyncio.Task[Any]) -> float:
    print("ready", flush=True)
    started = time.process_time()
    await done.wait()
    spent = time.process_time() - started
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return spent


def child(consumer: str, kubeconfig: str, namespace: str, expected: int) -> None:
    logging.basicConfig(level=logging.WARNING)
    run = consume_with_informer if consumer == "informer" else consume_with_kopf
    spent = asyncio.run(run(kubeconfig, namespace, expected))
    print(json.dumps({"cpu_seconds": spent}), flush=True)


async def write_rooms(plane: ControlPlane, namespace: str, names: list[str]) -> None:
    """Each Room created, then its placement status written, as placements make them."""
    from kubernetes_asyncio import client, config  # noqa: PLC0415

    await config.load_kube_config(config_file=str(plane.kubeconfig))
    async with client.ApiClient() as api:
        api.rest_client.pool_manager._trust_env = False
        rooms = client.CustomObjectsApi(api)
        slots = asyncio.Semaphore(CONCURRENCY)
        status = {"status": placed_status("watch-cost-pod")}

        async def one(name: str) -> None:
            body = {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": ROOM.kind,
                "metadata": {"name": name, "namespace": namespace},
                "spec": ROOM_SPEC,
            }
            async with slots:
                await rooms.create_namespaced_custom_object(
                    GROUP, VERSION, namespace, ROOM.plural, body
                )
                await rooms.patch_namespaced_custom_object_status(
                    GROUP,
                    VERSION,
                    namespace,
                    ROOM.plural,
                    name,
                    status,
                    _content_type="application/merge-patch+json",
                )

        await asyncio.gather(*(one(name) for name in names))


def one_run(plane: ControlPlane, consumer: str, rooms: int, run: int) -> float:
    """One consumer following `rooms` placements in a namespace of its own (Rooms of
    earlier runs stay where they are: deleting thousands costs more than the run)."""
    namespace = f"{NAMESPACE}-{consumer}-{run}"
    plane.kubectl("create", "namespace", namespace)
    names = [f"room-{i:05}" for i in range(rooms)]
    argv = [consumer, str(plane.kubeconfig), namespace, str(rooms)]
    process = subprocess.Popen(
        [sys.executable, __file__, "--child", *argv],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    asyncio.run(write_rooms(plane, namespace, names))
    result = json.loads(process.stdout.readline())
    process.wait(timeout=60)
    return 1000 * float(result["cpu_seconds"]) / rooms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rooms", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument(
        "--child", nargs=4, metavar=("CONSUMER", "KUBECONFIG", "NAMESPACE", "ROOMS")
    )
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.child[2], int(args.child[3]))
        return
    with tempfile.TemporaryDirectory() as workdir:
        plane = ControlPlane(workdir=Path(workdir))
        plane.start()
        try:
            install_crds(plane)
            costs: dict[str, list[float]] = {c: [] for c in CONSUMERS}
            for run in range(args.repeat):
                for consumer in CONSUMERS:  # interleaved: the machine is shared and noisy
                    costs[consumer].append(one_run(plane, consumer, args.rooms, run))
        finally:
            plane.stop()
    print(f"CPU to follow one placement (create + status write), {args.rooms} Rooms per run:")
    for consumer, samples in costs.items():
        print(
            f"  {consumer:<9} median {statistics.median(samples):.3f} ms   samples "
            + ", ".join(f"{s:.3f}" for s in samples)
        )
    ratio = statistics.median(costs["kopf"]) / statistics.median(costs["informer"])
    print(f"  kopf / informer: {ratio:.1f}x")


if __name__ == "__main__":
    main()
