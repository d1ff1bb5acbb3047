"""The controller kit's informer against the real API server: list, watch, and a fresh
list when its resourceVersion has expired, reporting every key that changed meanwhile; and
only the objects its namespace and label selector name."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from kubernetes_asyncio import client, config

from fixtures.cluster import Cluster, apply
from fixtures.waiting import eventually
from switchboard_api.resources import GROUP, ROOM, VERSION
from switchboard_operator.cache import ROOMS
from switchboard_operator.kit.informer import Informer, Resource

pytestmark = pytest.mark.cluster


def _room(namespace: str, name: str, max_participants: int = 4) -> dict:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": ROOM.kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"maxParticipants": max_participants},
    }


@pytest.fixture
def namespace(crds_installed: Cluster) -> Iterator[str]:
    name = crds_installed.create_namespace(f"informer-{uuid.uuid4().hex[:6]}")
    yield name
    # Its Rooms must not outlive the test: an operator in later tests would place them.
    crds_installed.kubectl("delete", "namespace", name, "--wait=false")


@pytest.fixture
def other_namespace(crds_installed: Cluster) -> Iterator[str]:
    name = crds_installed.create_namespace(f"informer-{uuid.uuid4().hex[:6]}")
    yield name
    crds_installed.kubectl("delete", "namespace", name, "--wait=false")


@pytest.fixture
async def api(crds_installed: Cluster) -> AsyncIterator[client.ApiClient]:
    await config.load_kube_config(config_file=str(crds_installed.kubeconfig))
    async with client.ApiClient() as api:
        yield api


class Informed:
    def __init__(self, api: client.ApiClient, resource: Resource = ROOMS) -> None:
        self.changes: list[str] = []
        self.informer = Informer(api, resource)
        self.informer.subscribe(on_change=self.changes.append)
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self.informer.run())

    async def stop(self) -> None:
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)

    async def until(self, predicate, what: str) -> None:
        async def check() -> bool:
            assert self.task is not None
            if self.task.done():
                self.task.result()
            return bool(predicate())

        await eventually(check, 30, what, interval=0.02)


def _max(informed: Informed, key: str) -> int | None:
    body = informed.informer.get(key)
    return body["spec"]["maxParticipants"] if body else None


async def test_lists_then_follows_creates_changes_and_deletes(
    crds_installed: Cluster, namespace: str, api: client.ApiClient
) -> None:
    apply(crds_installed, _room(namespace, "before"))
    informed = Informed(api)
    informed.start()
    try:
        before, during = f"{namespace}/before", f"{namespace}/during"
        await informed.until(informed.informer.synced.is_set, "the first list")
        assert informed.informer.get(before) is not None
        assert before in informed.changes
        # Bodies are kept as the API server has them, minus managedFields.
        assert "managedFields" not in informed.informer.get(before)["metadata"]

        apply(crds_installed, _room(namespace, "during"))
        await informed.until(lambda: informed.informer.get(during), "the created room")
        apply(crds_installed, _room(namespace, "during", max_participants=9))
        await informed.until(lambda: _max(informed, during) == 9, "the changed room")
        crds_installed.kubectl("delete", "room", "before", "-n", namespace)
        await informed.until(lambda: informed.informer.get(before) is None, "the deleted room")
        assert informed.changes.count(before) >= 2  # listed, then deleted
    finally:
        await informed.stop()


async def test_an_expired_watch_lists_again_and_reports_what_changed_meanwhile(
    crds_installed: Cluster, namespace: str, api: client.ApiClient
) -> None:
    apply(crds_installed, _room(namespace, "stays"))
    apply(crds_installed, _room(namespace, "goes"))
    informed = Informed(api)
    informed.start()
    stays, goes, comes = (f"{namespace}/{n}" for n in ("stays", "goes", "comes"))
    try:
        await informed.until(lambda: informed.informer.get(goes), "the first list")
    finally:
        await informed.stop()

    crds_installed.kubectl("delete", "room", "goes", "-n", namespace)
    apply(crds_installed, _room(namespace, "comes"))
    # As after a long disconnection: the version it would resume from is long gone (410).
    informed.informer.forget_version()
    informed.changes.clear()
    informed.start()
    try:
        await informed.until(
            lambda: informed.informer.get(comes) and informed.informer.get(goes) is None,
            "the fresh list",
        )
        assert informed.informer.get(stays) is not None
        assert set(informed.changes) >= {goes, comes}
        assert stays not in informed.changes  # unchanged objects are not reported again
    finally:
        await informed.stop()


async def test_only_objects_of_its_namespace_matching_its_selector_are_seen(
    crds_installed: Cluster, namespace: str, other_namespace: str, api: client.ApiClient
) -> None:
    for where, name, labelled in (
        (namespace, "wanted", True),
        (namespace, "unlabelled", False),
        (other_namespace, "elsewhere", True),
    ):
        labels = {"informer-test": "yes"} if labelled else {}
        configmap = {"name": name, "namespace": where, "labels": labels}
        apply(crds_installed, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": configmap})
    resource = Resource(
        "v1", "ConfigMap", "configmaps", namespace=namespace, label_selector="informer-test=yes"
    )
    informed = Informed(api, resource)
    informed.start()
    try:
        await informed.until(informed.informer.synced.is_set, "the first list")
        assert [b["metadata"]["name"] for b in informed.informer.values()] == ["wanted"]
        # An object that comes to match arrives as an event: the watch filters server-side.
        crds_installed.kubectl(
            "label", "configmap", "unlabelled", "-n", namespace, "informer-test=yes"
        )
        await informed.until(
            lambda: informed.informer.get(f"{namespace}/unlabelled"), "the newly labelled one"
        )
        assert informed.informer.get(f"{other_namespace}/elsewhere") is None
    finally:
        await informed.stop()
