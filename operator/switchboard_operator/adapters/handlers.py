"""kopf handlers: thin adapters that observe Regions and Rooms and write what the logic decides.

Handlers react to watch events but act level-based: each computes the desired status from
the object as it is now and writes only the difference, so replays and resyncs are free.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf
from kubernetes_asyncio import client
from switchboard_api.resources import GROUP, REGION, ROOM, VERSION

from switchboard_operator.adapters import kube
from switchboard_operator.adapters.retry import with_retries
from switchboard_operator.logic import observation

log = logging.getLogger(__name__)


def _api(memo: kopf.Memo) -> client.ApiClient:
    api: client.ApiClient = memo["api"]
    return api


@kopf.on.startup()
async def connect(memo: kopf.Memo, **_: Any) -> None:
    memo["api"] = await kube.load_client()


@kopf.on.cleanup()
async def disconnect(memo: kopf.Memo, **_: Any) -> None:
    api = memo.get("api")
    if api is not None:
        await api.close()


@kopf.on.event(GROUP, VERSION, REGION.plural)
async def region_seen(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    if event["type"] == "DELETED" or body.metadata.get("deletionTimestamp"):
        return
    desired = observation.region_status(body, kube.now_rfc3339())
    patch = observation.status_patch(body.get("status"), desired)
    if patch:
        name = body.metadata.name
        await with_retries(
            lambda: kube.patch_region_status(_api(memo), name, patch), f"region {name} status"
        )
        log.info("region status written region=%s fields=%s", body.metadata.name, sorted(patch))


@kopf.on.event(GROUP, VERSION, ROOM.plural)
async def room_seen(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    if event["type"] == "DELETED" or body.metadata.get("deletionTimestamp"):
        return
    desired = observation.room_status(body, kube.now_rfc3339())
    patch = observation.status_patch(body.get("status"), desired)
    if patch:
        namespace, name = body.metadata.namespace, body.metadata.name
        await with_retries(
            lambda: kube.patch_room_status(_api(memo), namespace, name, patch),
            f"room {namespace}/{name} status",
        )
        log.info(
            "room status written room=%s/%s fields=%s",
            body.metadata.namespace,
            body.metadata.name,
            sorted(patch),
        )
