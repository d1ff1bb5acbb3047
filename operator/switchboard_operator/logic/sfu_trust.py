"""Which SFU pods the operator trusts: the ones it created, by the UID the API server gave them.

Labels, ownerReferences and a pod's ServiceAccount can be copied by anyone who may create
pods in a namespace; the UID of a pod the operator created cannot. The operator records
each SFU pod's UID as soon as its create call returns: first here, in memory, so the pod
is trusted before its status write lands, then in the Region's `status.sfu.pods`, so a
restarted operator trusts exactly the same pods. Only trusted pods enter the capacity
picture, count as the Region's pods, are placed on, carry the hosts-rooms label, and have
their capacity reports accepted. Nothing here does I/O.

A process can stop between a create and the status write that records the UID. So before
it creates pods, the operator reserves their names in `status.sfu.reservedPods`. A reserved
name whose UID was never recorded is a pod from that window, or a pod someone else made
under the name. It is deleted and replaced (`unrecorded_pods`): no room can be on it, as
only the process that created it trusted it, in memory, until the status write that follows
the create at once, and a new pod is Ready and reporting only well after that. A pod under
a name the operator did not reserve is never touched.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

RECORD_GRACE_SECONDS: Final = 120.0
"""A pod created this recently stays recorded even if the Pod watch has not shown it yet."""
_WARNED_MEMORY: Final = 4096
"""UIDs of untrusted pods already announced (an Event each), newest kept."""
_DELETED_MEMORY: Final = 4096
"""UIDs of pods seen deleted, newest kept, until the Region's status no longer lists them."""


@dataclass(frozen=True)
class CreatedPod:
    name: str
    uid: str
    at: float


def recorded_pods(region_body: Mapping[str, Any] | None) -> dict[str, str]:
    """`status.sfu.pods` of a Region body, as {uid: name} (empty if none or unreadable)."""
    status = (region_body or {}).get("status") or {}
    sfu = status.get("sfu") or {}
    found: dict[str, str] = {}
    for entry in sfu.get("pods") or []:
        if isinstance(entry, Mapping) and entry.get("uid") and entry.get("name"):
            found[str(entry["uid"])] = str(entry["name"])
    return found


def reserved_pods(region_body: Mapping[str, Any] | None) -> list[str]:
    """`status.sfu.reservedPods` of a Region body: names reserved before their create."""
    status = (region_body or {}).get("status") or {}
    sfu = status.get("sfu") or {}
    return [str(name) for name in sfu.get("reservedPods") or [] if name]


def unrecorded_pods(
    reserved: Iterable[str], found: Mapping[str, str | None], trusted: Callable[[str], bool]
) -> list[tuple[str, str]]:
    """The pods to delete, as (name, uid), when the reservations a previous pass or process
    left are settled (all are then forgotten). A reserved name with no pod (`found` maps it
    to None) was never created, and a trusted UID was recorded after all. Any other pod
    under a reserved name is one whose create answer was lost, to a crash or a timeout, or
    one someone else made under the name. It is deleted by UID, never a successor."""
    return [
        (name, uid)
        for name in dict.fromkeys(reserved)
        if (uid := found.get(name)) is not None and not trusted(uid)
    ]


class SfuPodLedger:
    """The SFU pods this operator process created, per Region, until the Region's status
    records them; and which untrusted pods have been announced."""

    def __init__(self) -> None:
        self._created: dict[str, dict[str, CreatedPod]] = {}
        self._warned: OrderedDict[str, None] = OrderedDict()
        self._deleted: OrderedDict[str, None] = OrderedDict()

    def created(self, region: str, name: str, uid: str, now: float) -> None:
        """The API server answered a create of pod `name` with `uid`."""
        self._created.setdefault(region, {})[uid] = CreatedPod(name, uid, now)

    def created_uids(self, region: str) -> Iterable[str]:
        return self._created.get(region, {}).keys()

    def deleted(self, uid: str) -> None:
        """The Pod watch showed the pod `uid` deleted: positive evidence that it is gone."""
        self._deleted[uid] = None
        while len(self._deleted) > _DELETED_MEMORY:
            self._deleted.popitem(last=False)

    def known_deleted(self, uid: str) -> bool:
        return uid in self._deleted

    def records(
        self,
        region: str,
        recorded: Mapping[str, str],
        present: Mapping[str, str],
        now: float,
    ) -> list[dict[str, str]]:
        """What `status.sfu.pods` must say: every trusted pod (recorded in the status or
        created here) not known to be gone, sorted by name. `present` is the pods the cache
        shows now ({uid: name}). A pod is known gone only on positive evidence: the watch
        showed it deleted, or its name now belongs to another UID. Merely missing from the
        cache is no evidence (after a relist or a restart the cache may be incomplete),
        and untrusting a live pod would cut its calls. Pods created here are forgotten from
        memory once the status carries them or they are gone."""
        renamed = {name for uid, name in present.items()}
        created = self._created.get(region, {})

        def gone(uid: str, name: str) -> bool:
            return uid in self._deleted or (uid not in present and name in renamed)

        keep: dict[str, str] = {uid: name for uid, name in recorded.items() if not gone(uid, name)}
        for uid, pod in list(created.items()):
            young = now - pod.at < RECORD_GRACE_SECONDS
            if not gone(uid, pod.name):
                keep[uid] = pod.name
            if not young and (uid in recorded or gone(uid, pod.name)):
                del created[uid]
        if not created:
            self._created.pop(region, None)
        return [{"name": name, "uid": uid} for uid, name in sorted(keep.items(), key=_by_name)]

    def first_warning(self, uid: str) -> bool:
        """True the first time an untrusted pod's UID is announced (one Event per pod)."""
        if uid in self._warned:
            return False
        self._warned[uid] = None
        while len(self._warned) > _WARNED_MEMORY:
            self._warned.popitem(last=False)
        return True


def _by_name(item: tuple[str, str]) -> tuple[str, str]:
    uid, name = item
    return name, uid
