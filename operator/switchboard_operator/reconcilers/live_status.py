"""The live-status reconciler: what SFU reports change about placed rooms and their pods
reaches the cluster at most every two seconds, and only on change. A room whose
participants differ from its status, or that has been empty past its timeout, goes to the
Room reconciler; each SFU pod's hosts-rooms label (its PDB's selector) is kept true
exactly while it has rooms. Reports themselves cost no API write.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from kubernetes_asyncio import client

from switchboard_operator.cache import ClusterCache
from switchboard_operator.kit.ticker import Periodic
from switchboard_operator.kube import objects
from switchboard_operator.logic import manifests
from switchboard_operator.logic.capacity import CapacityPicture
from switchboard_operator.logic.room_lifecycle import needs_reconcile

LIVE_FLUSH_SECONDS = 2.0
"""Live counters (participants) reach Room statuses at most this often, only on change."""


class LiveStatusReconciler:
    def __init__(
        self,
        api: client.ApiClient,
        cache: ClusterCache,
        picture: CapacityPicture,
        *,
        trigger_room: Callable[[str], None],
        ready: Callable[[], bool],
    ) -> None:
        self._api = api
        self._cache = cache
        self._picture = picture
        self._trigger_room = trigger_room
        self._periodic = Periodic("live-status", LIVE_FLUSH_SECONDS, self.run, when=ready)

    def start(self) -> None:
        self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()

    async def run(self) -> None:
        self.refresh_rooms()
        await self.sync_hosts_labels()

    def refresh_rooms(self) -> None:
        """Send every placed room whose latest report changes it to the Room reconciler."""
        now = time.time()
        for state in list(self._picture.incarnations()):
            for key, measurement in list(state.measured.items()):
                if key not in state.rooms:
                    continue
                body = self._cache.room(key)
                if body is None:
                    continue
                spec, status = body.get("spec") or {}, body.get("status") or {}
                carried = self._picture.empty_since(key)
                if needs_reconcile(spec, status, measurement, carried, now):
                    self._trigger_room(key)

    async def sync_hosts_labels(self) -> None:
        for name, region in self._cache.regions().items():
            for pod in self._cache.sfu_pods(name):
                meta = pod["metadata"]
                if meta.get("deletionTimestamp"):
                    continue
                key = f"{region.spec.namespace}/{meta['name']}"
                hosts = self._picture.hosts_rooms(key, meta["uid"])
                patch = manifests.hosts_rooms_patch(pod, hosts)
                if patch is not None:
                    await objects.patch_merge(
                        self._api, "Pod", meta["name"], region.spec.namespace, patch
                    )
