"""What the API server alone can do of the writes a placement costs, in the same run.

A placement costs the client's `create` of the Room and the operator's one status write;
a failover move costs one status write. This measures both with no operator at all, on
a shadow CustomResourceDefinition generated from the same Room model (same schema, CEL
rules and status subresource, another group, so the operator never sees it), written by
one lean client at the benchmark's concurrency and watched like the Rooms are. The
operator's rates are then reported as a share of these ceilings.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from kubernetes_asyncio import client

from switchboard_api.crdgen import custom_resource_definition
from switchboard_api.room import Room
from switchboard_operator.logic.room_status import PlacedOn, RoomOutcome, room_status

SHADOW_GROUP = "bench.switchboard.dev"
SHADOW_KIND = "BenchRoom"
SHADOW_PLURAL = "benchrooms"
VERSION = "v1alpha1"


def shadow_crd() -> dict[str, Any]:
    """The Room CRD, renamed into a group and kind of the benchmark's own."""
    crd = custom_resource_definition(Room)
    crd["metadata"] = {"name": f"{SHADOW_PLURAL}.{SHADOW_GROUP}"}
    spec = crd["spec"]
    spec["group"] = SHADOW_GROUP
    spec["names"] = {
        "kind": SHADOW_KIND,
        "listKind": f"{SHADOW_KIND}List",
        "plural": SHADOW_PLURAL,
        "singular": SHADOW_KIND.lower(),
    }
    assert spec["versions"][0]["name"] == VERSION
    return crd


def placed_status(pod: str, generation: int = 1) -> dict[str, Any]:
    """The status the operator writes for a placement (the same pure function makes it)."""
    outcome = RoomOutcome(
        placed=PlacedOn(
            region="bench-eu",
            pod=pod,
            pod_uid="00000000-0000-0000-0000-000000000000",
            endpoint=f"wss://{pod}.sfu.example/ws",
            reservation=1.3,
        )
    )
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return room_status({}, generation, outcome, now)


@dataclass(frozen=True)
class Ceiling:
    objects: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.objects / self.seconds


async def _bounded(count: int, concurrency: int, job: Callable[[int], Any]) -> float:
    slots = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with slots:
            await job(i)

    started = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(count)))
    return time.monotonic() - started


async def create_and_place(
    api: client.ApiClient,
    namespace: str,
    names: Sequence[str],
    spec: dict[str, Any],
    concurrency: int,
) -> Ceiling:
    """Each object created, then its placement status written, `concurrency` at a time."""
    objects = client.CustomObjectsApi(api)
    status = {"status": placed_status("bench-pod-a")}
    # Creates and status writes are two pipelines, as with the operator: a status write
    # waits for its create, never for another object's.
    creates, writes = asyncio.Semaphore(concurrency), asyncio.Semaphore(concurrency)

    async def job(i: int) -> None:
        name = names[i]
        body = {
            "apiVersion": f"{SHADOW_GROUP}/{VERSION}",
            "kind": SHADOW_KIND,
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        }
        async with creates:
            await objects.create_namespaced_custom_object(
                SHADOW_GROUP, VERSION, namespace, SHADOW_PLURAL, body
            )
        async with writes:
            await objects.patch_namespaced_custom_object_status(
                SHADOW_GROUP,
                VERSION,
                namespace,
                SHADOW_PLURAL,
                name,
                status,
                _content_type="application/merge-patch+json",
            )

    started = time.monotonic()
    await asyncio.gather(*(job(i) for i in range(len(names))))
    return Ceiling(len(names), time.monotonic() - started)


async def move(
    api: client.ApiClient,
    namespace: str,
    names: Sequence[str],
    concurrency: int,
    to_pod: str = "bench-pod-b",
) -> Ceiling:
    """Each object's placement status rewritten to `to_pod` (another pod than its last
    one): a failover's writes."""
    objects = client.CustomObjectsApi(api)
    status = {"status": placed_status(to_pod)}

    async def job(i: int) -> None:
        await objects.patch_namespaced_custom_object_status(
            SHADOW_GROUP,
            VERSION,
            namespace,
            SHADOW_PLURAL,
            names[i],
            status,
            _content_type="application/merge-patch+json",
        )

    return Ceiling(len(names), await _bounded(len(names), concurrency, job))
