"""The leader label: the operator Service selects the replica that leads.

Every replica is Ready while it is healthy (a standby too, so a rolling update can
proceed), and the Service routes SFU reports and joins to the pod carrying
`switchboard.dev/leader=true`, which only the leader sets, on itself. A replica removes
the label from itself when it starts (a restarted container keeps its pod and labels)
and when it stops leading.
"""

from __future__ import annotations

import asyncio
import logging

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from switchboard_api import labels

log = logging.getLogger(__name__)

RETRY_SECONDS = 1.0


class LeaderLabel:
    def __init__(self, api: client.ApiClient, namespace: str, pod_name: str) -> None:
        self._core = client.CoreV1Api(api)
        self._namespace = namespace
        self._pod = pod_name

    async def _patch(self, leading: bool) -> None:
        value = "true" if leading else None
        await self._core.patch_namespaced_pod(
            self._pod,
            self._namespace,
            {"metadata": {"labels": {labels.LEADER: value}}},
            _content_type="application/merge-patch+json",
        )

    async def clear(self) -> None:
        """Best effort: this replica does not lead (start-up and shutdown)."""
        try:
            await self._patch(leading=False)
        except (ApiException, OSError, TimeoutError) as error:
            log.warning("leader label not removed pod=%s error=%s", self._pod, error)

    async def mark(self) -> None:
        """Label this pod as the leader; retried until it holds (cancelled with leadership)."""
        while True:
            try:
                await self._patch(leading=True)
                log.info("leader label set pod=%s", self._pod)
                return
            except (ApiException, OSError, TimeoutError) as error:
                log.warning("leader label not set pod=%s error=%s", self._pod, error)
                await asyncio.sleep(RETRY_SECONDS)
