"""Which SFU pods a Region trusts, as the Region pass records and announces it: the pods
the operator created, by UID (`logic/sfu_trust.py`, `docs/security.md` finding 1)."""

from __future__ import annotations

import logging
from typing import Any

from kubernetes_asyncio import client

from switchboard_operator.cache import ClusterCache
from switchboard_operator.kube import objects
from switchboard_operator.kube.client import patch_region_status
from switchboard_operator.logic.notices import Notice
from switchboard_operator.logic.sfu_trust import reserved_pods, unrecorded_pods

log = logging.getLogger(__name__)


def sfu_pod_records(cache: ClusterCache, region: str, now: float) -> list[dict[str, str]]:
    """The Region's `status.sfu.pods`: the SFU pods it trusts that are not known to be
    gone (a pod missing from the cache is no evidence: `logic/sfu_trust.py`)."""
    return cache.sfu_ledger.records(
        region, cache.recorded_sfu_pods(region), cache.labelled_sfu_pods(region), now
    )


async def confirm_missing_sfu_pods(
    api: client.ApiClient, cache: ClusterCache, region: str, namespace: str
) -> None:
    """Read each recorded pod the cache does not show: only a 404 (or another UID under
    its name) is evidence that it is gone. A pod deleted while no operator watched leaves
    no DELETED event, and its name is never reused."""
    present = cache.labelled_sfu_pods(region)
    for uid, name in cache.recorded_sfu_pods(region).items():
        if uid in present or cache.sfu_ledger.known_deleted(uid):
            continue
        pod = await objects.find(api, "Pod", name, namespace)
        if pod is None or pod["metadata"].get("uid") != uid:
            log.info("recorded sfu pod is gone region=%s pod=%s uid=%s", region, name, uid)
            cache.sfu_ledger.deleted(uid)


async def reserve_sfu_pod_names(api: client.ApiClient, region: str, names: list[str]) -> None:
    """Reserve the names of pods about to be created, before the create (`logic/sfu_trust.py`);
    no names releases every reservation."""
    await patch_region_status(api, region, {"sfu": {"reservedPods": names or None}})


async def record_sfu_pods(
    api: client.ApiClient, cache: ClusterCache, region: str, still_reserved: list[str], now: float
) -> None:
    """Record the trusted pods' UIDs and release the reservations they settle, in one write."""
    records = sfu_pod_records(cache, region, now)
    sfu = {"pods": records, "reservedPods": still_reserved or None}
    await patch_region_status(api, region, {"sfu": sfu})


async def settle_reserved_sfu_pods(
    api: client.ApiClient, cache: ClusterCache, body: dict[str, Any], namespace: str
) -> list[Notice]:
    """Settle the names a previous pass or process reserved and did not release: delete
    each pod under one whose UID was never recorded (it is replaced like any lost pod), and
    forget them all. Reads each name from the API server: a cache may not show a pod yet."""
    reserved = reserved_pods(body)
    if not reserved:
        return []
    region = body["metadata"]["name"]
    found: dict[str, str | None] = {}
    for name in reserved:
        pod = await objects.find(api, "Pod", name, namespace)
        found[name] = None if pod is None else pod["metadata"]["uid"]

    def trusted(uid: str) -> bool:
        return cache.trusts_sfu_pod(region, namespace, uid)

    notices = []
    for name, uid in unrecorded_pods(reserved, found, trusted):
        await objects.delete(api, "Pod", name, namespace, uid=uid)
        cache.sfu_ledger.first_warning(uid)  # it is gone: no UntrustedSfuPod for it
        log.warning("unrecorded sfu pod deleted region=%s pod=%s uid=%s", region, name, uid)
        notices.append(
            Notice(
                "Warning",
                "UnrecordedSfuPodDeleted",
                f"Deleted pod {namespace}/{name} (uid {uid}): its name was reserved for an "
                "SFU pod, but its UID was never recorded in status.sfu.pods (the operator "
                "stopped, or lost the create's answer, in between), so it is not trusted. "
                "It held no room; a new pod replaces it.",
            )
        )
    await reserve_sfu_pod_names(api, region, [])
    return notices


def untrusted_pod_notices(cache: ClusterCache, region: str, namespace: str) -> list[Notice]:
    """One Warning per pod that carries the Region's SFU labels but was not created by the
    operator, the first time it is seen: it is ignored, so whoever made it should learn why."""
    notices = []
    for pod in cache.untrusted_sfu_pods(region):
        meta = pod["metadata"]
        if not cache.sfu_ledger.first_warning(meta["uid"]):
            continue
        where = f"{meta.get('namespace')}/{meta['name']}"
        log.warning("untrusted sfu pod region=%s pod=%s uid=%s", region, where, meta["uid"])
        notices.append(
            Notice(
                "Warning",
                "UntrustedSfuPod",
                f"Pod {where} (uid {meta['uid']}) carries this Region's SFU labels but "
                "the operator did not create it: it is not counted, no rooms are placed "
                "on it and its capacity reports are refused. Delete it, and allow only "
                f"the operator to create pods in {namespace}.",
            )
        )
    return notices
