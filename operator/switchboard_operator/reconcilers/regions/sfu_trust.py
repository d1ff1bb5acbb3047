"""Which SFU pods a Region trusts, as the Region pass records and announces it: the pods
the operator created, by UID (`logic/sfu_trust.py`, `docs/security.md` finding 1)."""

from __future__ import annotations

import logging

from switchboard_operator.cache import ClusterCache
from switchboard_operator.logic.notices import Notice

log = logging.getLogger(__name__)


def sfu_pod_records(cache: ClusterCache, region: str, now: float) -> list[dict[str, str]]:
    """The Region's `status.sfu.pods`: the SFU pods it trusts that are not known to be
    gone (a pod missing from the cache is no evidence: `logic/sfu_trust.py`)."""
    return cache.sfu_ledger.records(
        region, cache.recorded_sfu_pods(region), cache.labelled_sfu_pods(region), now
    )


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
