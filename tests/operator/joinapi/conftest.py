"""The join API served over HTTP on loopback, mounted the way the operator mounts it, with a
fake control plane behind it and a set of API keys."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from joinapi_fakes import (
    OPS_KEY,
    SLOW_KEY,
    TEAM_KEY,
    VIEWER_KEY,
    FakeClock,
    FakePlacements,
    api_key_secret,
    eu_turn,
)

from switchboard_operator.joinapi import (
    JOIN_API_PREFIX,
    JoinApiSettings,
    SecretApiKeyStore,
    join_api_app,
)
from switchboard_operator.metrics import OperatorMetrics

SETTINGS = JoinApiSettings(placement_timeout_seconds=0.05, max_body_bytes=16 * 1024)


def _key_secrets() -> list[dict[str, object]]:
    return [
        api_key_secret("team-a", {"key": TEAM_KEY, "namespaces": "team-a", "create": "true"}),
        api_key_secret("viewer", {"key": VIEWER_KEY, "namespaces": "team-a", "create": "false"}),
        api_key_secret("ops", {"key": OPS_KEY, "namespaces": "*", "create": "true"}),
        api_key_secret(
            "slow",
            {
                "key": SLOW_KEY,
                "namespaces": "team-a",
                "create": "true",
                "ratePerSecond": "1",
                "burst": "2",
            },
        ),
    ]


@dataclass
class JoinApi:
    client: TestClient
    placements: FakePlacements
    clock: FakeClock
    metrics: OperatorMetrics

    async def join(
        self,
        namespace: str = "team-a",
        name: str = "standup",
        body: object | None = None,
        key: str | None = TEAM_KEY,
        **kwargs: object,
    ):
        headers = dict(kwargs.pop("headers", {}) or {})  # type: ignore[call-overload]
        if key is not None:
            headers.setdefault("Authorization", f"Bearer {key}")
        if body is None and "data" not in kwargs:
            body = {"identity": "alice"}
        return await self.client.post(
            f"{JOIN_API_PREFIX}/{namespace}/rooms/{name}/join",
            json=body,
            headers=headers,
            **kwargs,
        )


@pytest.fixture
async def join_api() -> AsyncIterator[JoinApi]:
    placements = FakePlacements(turn={"eu-west": eu_turn()})
    clock = FakeClock()
    metrics = OperatorMetrics()
    root = web.Application()

    async def other_endpoint(request: web.Request) -> web.Response:
        return web.json_response({"other": True})

    # The operator's server carries other endpoints beside the join API.
    root.router.add_post("/v1/capacity/reports", other_endpoint)
    root.add_subapp(
        JOIN_API_PREFIX,
        join_api_app(
            placements,
            SecretApiKeyStore(_key_secrets()),
            settings=SETTINGS,
            wall_clock=clock.wall,
            monotonic_clock=clock.monotonic,
            metrics=metrics,
        ),
    )
    client = TestClient(TestServer(root, host="127.0.0.1"))
    await client.start_server()
    try:
        yield JoinApi(client, placements, clock, metrics)
    finally:
        await client.close()
