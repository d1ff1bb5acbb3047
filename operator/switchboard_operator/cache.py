"""The operator's view of the cluster, shared by every reconciler: kopf's indexes (Regions,
SFU and TURN pods, what Regions own, namespaces) and the Room informer. Reconcilers read
it and never keep copies; nothing here writes to the API.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

import kopf
import pydantic

from switchboard_api.region import Region
from switchboard_api.resources import GROUP, ROOM, VERSION
from switchboard_api.room import Room
from switchboard_operator.kit.informer import Resource
from switchboard_operator.logic.sfu_trust import SfuPodLedger, recorded_pods

log = logging.getLogger(__name__)

ROOMS = Resource(api_version=f"{GROUP}/{VERSION}", kind=ROOM.kind, plural=ROOM.plural)
OWNED_KINDS = (
    "serviceaccounts",
    "services",
    "deployments",
    "poddisruptionbudgets",
    "networkpolicies",
)
"""What a Region produces besides pods (kopf indexes them by Region)."""
NAMESPACE_LABELS = "namespace_labels"
REGION_BODIES = "region_bodies"
REGION_SFU_PODS = "region_sfu_pods"
REGION_TURN_PODS = "region_turn_pods"
INDEXES = (
    NAMESPACE_LABELS,
    REGION_BODIES,
    REGION_SFU_PODS,
    REGION_TURN_PODS,
    *(f"region_owned_{plural}" for plural in OWNED_KINDS),
)
"""kopf's indexes, by the ids `watches.py` registers them under."""
PARSED_ROOMS = 4096
"""Room versions kept parsed: a failover reads a room, then reconciles it, from one version."""

Body = dict[str, Any]


class RoomStore(Protocol):
    """Room bodies by `<namespace>/<name>` (the Room informer)."""

    def get(self, key: str) -> Body | None: ...

    def __iter__(self) -> Iterator[str]: ...


class ClusterCache:
    def __init__(self, rooms: RoomStore, sfu_ledger: SfuPodLedger) -> None:
        self.rooms = rooms
        self.sfu_ledger = sfu_ledger
        """The SFU pods this process created and the Regions' statuses have not recorded yet."""
        self._recorded: dict[str, tuple[str, dict[str, str]]] = {}
        self._indexes: dict[str, kopf.Index[Any, Any]] = {}
        self._parsed_regions: dict[str, tuple[str, Region | None]] = {}
        self._parsed_rooms: OrderedDict[tuple[str, str], Room] = OrderedDict()
        self.indexed = asyncio.Event()
        """Set once kopf's indexes are filled: placements need every Region, SFU pod
        and namespace known before the first Room is read."""

    def capture(self, kwargs: Mapping[str, Any]) -> None:
        """Take kopf's indexes from a handler's kwargs. kopf calls handlers only once every
        index is filled, so the first call is also when the indexes become readable."""
        if not self._indexes:
            self._indexes = {name: kwargs[name] for name in INDEXES}
            self.indexed.set()

    # Regions.

    def regions(self) -> dict[str, Region]:
        """The Regions rooms may be placed in (not being deleted), each parsed once per
        resourceVersion; an unreadable Region is logged and left out."""
        regions: dict[str, Region] = {}
        parsed: dict[str, tuple[str, Region | None]] = {}
        for name, store in self._index(REGION_BODIES).items():
            for body in store:
                meta = body["metadata"]
                if meta.get("deletionTimestamp"):
                    continue
                version = str(meta.get("resourceVersion"))
                cached = self._parsed_regions.get(name)
                if cached is not None and cached[0] == version:
                    region = cached[1]
                else:
                    try:
                        region = Region.model_validate(body)
                    except pydantic.ValidationError:
                        log.warning("region unreadable, not placing rooms in it region=%s", name)
                        region = None
                parsed[name] = (version, region)
                if region is not None:
                    regions[name] = region
        self._parsed_regions = parsed
        return regions

    def region_bodies(self) -> dict[str, Body]:
        """Every Region's body as watched (not being deleted), by name."""
        return {
            name: body
            for name, store in self._index(REGION_BODIES).items()
            for body in store
            if not body["metadata"].get("deletionTimestamp")
        }

    def room_bodies(self) -> Iterator[Body]:
        """Every Room's body as watched."""
        for key in self.rooms:
            body = self.rooms.get(key)
            if body is not None:
                yield body

    def region_body(self, name: str) -> Body | None:
        return self._first(REGION_BODIES, name)

    def sfu_pods(self, region: str) -> list[Body]:
        """The Region's SFU pods: those the operator created (by UID, `logic/sfu_trust.py`),
        in the Region's namespace. A pod that merely carries the labels is not one."""
        return [p for p in self._values(REGION_SFU_PODS, region) if self._trusted(region, p)]

    def untrusted_sfu_pods(self, region: str) -> list[Body]:
        """Pods labelled as the Region's SFU pods that the operator did not create."""
        return [p for p in self._values(REGION_SFU_PODS, region) if not self._trusted(region, p)]

    def labelled_sfu_pods(self, region: str) -> dict[str, str]:
        """Every pod in the Region's namespace labelled as its SFU pod, as {uid: name}."""
        namespace = self._region_namespace(region)
        return {
            p["metadata"]["uid"]: p["metadata"]["name"]
            for p in self._values(REGION_SFU_PODS, region)
            if p["metadata"].get("namespace") == namespace
        }

    def recorded_sfu_pods(self, region: str) -> dict[str, str]:
        """The Region's `status.sfu.pods` as {uid: name}, parsed once per resourceVersion."""
        body = self.region_body(region)
        if body is None:
            return {}
        version = str(body["metadata"].get("resourceVersion"))
        cached = self._recorded.get(region)
        if cached is None or cached[0] != version:
            cached = (version, recorded_pods(body))
            self._recorded[region] = cached
        return cached[1]

    def trusts_sfu_pod(self, region: str, namespace: str, uid: str) -> bool:
        """Whether the pod `uid` in `namespace` is an SFU pod the operator created for
        `region`."""
        if not region or namespace != self._region_namespace(region):
            return False
        return uid in self.recorded_sfu_pods(region) or uid in self.sfu_ledger.created_uids(region)

    def _trusted(self, region: str, pod: Body) -> bool:
        meta = pod["metadata"]
        return self.trusts_sfu_pod(region, str(meta.get("namespace")), str(meta.get("uid")))

    def _region_namespace(self, region: str) -> str | None:
        spec = (self.region_body(region) or {}).get("spec") or {}
        namespace = spec.get("namespace")
        return str(namespace) if namespace else None

    def sfu_pod(self, region: str, pod_name: str) -> Body | None:
        """The Region's SFU pod of that name, if the operator created it (by name first:
        every placement and move looks one up, and trust is checked for that pod alone)."""
        named = (
            p for p in self._values(REGION_SFU_PODS, region) if p["metadata"]["name"] == pod_name
        )
        return next((p for p in named if self._trusted(region, p)), None)

    def pod_address(self, region: str, pod_name: str) -> str | None:
        """An SFU pod's IP, as the Pod watch shows it (None before it has one)."""
        pod = self.sfu_pod(region, pod_name)
        address = ((pod or {}).get("status") or {}).get("podIP")
        return str(address) if address else None

    def turn_pods(self, region: str) -> list[Body]:
        return self._values(REGION_TURN_PODS, region)

    def owned(self, region: str) -> dict[tuple[str, str], Body]:
        """What the Region owns besides pods, by (kind, name)."""
        found: dict[tuple[str, str], Body] = {}
        for plural in OWNED_KINDS:
            for obj in self._values(f"region_owned_{plural}", region):
                found[(obj["kind"], obj["metadata"]["name"])] = obj
        return found

    def namespace_labels(self, namespace: str) -> dict[str, str]:
        return self._first(NAMESPACE_LABELS, namespace) or {}

    # Rooms.

    def room(self, key: str) -> Body | None:
        return self.rooms.get(key)

    def room_keys(self) -> Iterator[str]:
        return iter(self.rooms)

    def read_room(self, body: Mapping[str, Any]) -> Room:
        """The Room a body holds, parsed once per resourceVersion (pydantic's
        ValidationError if it cannot be read)."""
        meta = body["metadata"]
        version = (f"{meta.get('namespace')}/{meta.get('name')}", str(meta.get("resourceVersion")))
        room = self._parsed_rooms.get(version)
        if room is None:
            room = Room.model_validate(body)
            self._parsed_rooms[version] = room
            if len(self._parsed_rooms) > PARSED_ROOMS:
                self._parsed_rooms.popitem(last=False)
        return room

    def _index(self, name: str) -> kopf.Index[Any, Any]:
        return self._indexes[name]

    def _values(self, index: str, key: str) -> list[Body]:
        store = self._index(index).get(key)
        return list(store) if store is not None else []

    def _first(self, index: str, key: str) -> Any:
        store = self._index(index).get(key)
        return next(iter(store), None) if store is not None else None
