"""A join that creates its room survives the API server dropping the connection the create
was sent on, as a restarted API server does to the operator's pooled keep-alive ones."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from fixtures.operator_cache import cluster_cache
from switchboard_operator.joinapi.placements import ControlPlanePlacements
from switchboard_operator.kit.waiters import Waiters
from switchboard_operator.kube import client as kube
from switchboard_operator.logic.capacity import CapacityPicture
from switchboard_operator.logic.room_lifecycle import RoomAnswer
from switchboard_operator.logic.room_status import PlacedOn

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {{server: "{server}"}}
users:
- name: u
  user: {{token: not-a-secret}}
contexts:
- name: x
  context: {{cluster: c, user: u}}
current-context: x
"""
ROOMS = "/apis/switchboard.dev/v1alpha1/namespaces/team/rooms"
PLACED = PlacedOn("eu", "sfu-0", "uid-0", "wss://sfu-0.example/ws", 1.0)


class DroppingApiServer:
    """Drops the connection of the first `drops` Room creates without an answer (the first
    one lands: only its answer is lost), then answers as the API server does: 201, or 409
    once the room exists."""

    def __init__(self, drops: int) -> None:
        self.drops = drops
        self.creates: list[dict[str, Any]] = []
        self.created = False
        self.answered: int | None = None
        app = web.Application()
        app.router.add_post(ROOMS, self._create)
        self.server = TestServer(app, host="127.0.0.1")

    async def _create(self, request: web.Request) -> web.StreamResponse:
        self.creates.append(await request.json())
        if len(self.creates) <= self.drops:
            self.created = True
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        if self.created:
            self.answered = 409
            return web.json_response({"kind": "Status", "code": 409}, status=409)
        self.created = True
        self.answered = 201
        return web.json_response(self.creates[-1], status=201)


@contextlib.asynccontextmanager
async def placements_against(
    server: DroppingApiServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[ControlPlanePlacements]:
    """The join API's placements, talking to `server` (both closed on the way out)."""
    await server.server.start_server()
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG.format(server=server.server.make_url("")))
    monkeypatch.setenv("KUBECONFIG", str(path))
    api = await kube.load_client()
    answers: Waiters[RoomAnswer] = Waiters()
    restored = asyncio.Event()
    restored.set()
    placements = ControlPlanePlacements(
        api,
        cluster_cache(),
        CapacityPicture(),
        answers,
        # The Room reconciler places the room once its watch shows it.
        trigger_room=lambda key: answers.answer(key, PLACED),
        restored=restored,
        turn_access=lambda _region: None,
        join_keys=None,  # type: ignore[arg-type]  # placing needs no keys
        leadership=None,  # type: ignore[arg-type]
    )
    try:
        yield placements
    finally:
        await api.close()
        await server.server.close()


async def place(placements: ControlPlanePlacements) -> Any:
    return await placements.ensure_placed(
        "team",
        "standup",
        create=True,
        max_participants=4,
        location=None,
        region_hint=None,
        timeout=10.0,
    )


async def test_a_create_whose_connection_was_dropped_is_sent_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = DroppingApiServer(drops=1)
    async with placements_against(server, tmp_path, monkeypatch) as placements:
        placed = await place(placements)
    assert (placed.room_key, placed.pod) == ("team/standup", "sfu-0")
    # Sent again; the first had landed, so the API server answered 409, which is done.
    assert [c["metadata"]["name"] for c in server.creates] == ["standup", "standup"]
    assert server.answered == 409
    assert server.creates[-1]["spec"] == {"maxParticipants": 4}


async def test_a_create_that_keeps_failing_in_transit_gives_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = DroppingApiServer(drops=100)
    async with placements_against(server, tmp_path, monkeypatch) as placements:
        with pytest.raises(aiohttp.ClientError):
            await place(placements)
    assert len(server.creates) == 3  # CREATE_ATTEMPTS, then the join is answered an error
