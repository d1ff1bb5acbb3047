"""A control plane that has not yet restored its placements (start-up, a new leader)
refuses capacity reports instead of answering from an empty picture, which would tell
every SFU to end every room it serves."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from fixtures.operator_cache import cluster_cache
from fixtures.placement_builders import report, usage
from switchboard_api.contract import CapacityReport
from switchboard_operator.logic.capacity import CapacityPicture
from switchboard_operator.reconcilers.capacity_feed import CapacityFeed
from switchboard_operator.reportapi import receiver
from switchboard_operator.reportapi.receiver import ReportReceiver


def capacity_report() -> CapacityReport:
    live = usage("rooms/live", participants=3, load=2.0)
    return report("sfu-0", sequence=1, load=2.0, participants=3, rooms=(live,))


@pytest.fixture
def authenticated(monkeypatch: pytest.MonkeyPatch) -> None:
    """Token checks pass (they are tested against the real API server elsewhere)."""

    monkeypatch.setattr(receiver, "verify_report_token", lambda *_: SimpleNamespace())
    monkeypatch.setattr(receiver, "check_reporter", lambda _identity, _report: None)


async def post(feed: CapacityFeed) -> tuple[int, dict]:
    app = web.Application()
    keys = SimpleNamespace(jwks={"keys": []}, issuer="https://kubernetes.default.svc")
    app.router.add_post("/report", ReportReceiver(keys, feed).handle)  # type: ignore[arg-type]
    async with TestClient(TestServer(app)) as client:
        reply = await client.post(
            "/report",
            data=capacity_report().model_dump_json(by_alias=True),
            headers={"Authorization": "Bearer token"},
        )
        return reply.status, await reply.json()


async def test_reports_are_refused_until_placements_are_restored(authenticated) -> None:
    restored = asyncio.Event()  # what the Room reconciler sets once placements are restored
    feed = CapacityFeed(
        cluster_cache(),
        CapacityPicture(),
        capacity_appeared=lambda: None,
        pod_lost=lambda: None,
        ready=restored.is_set,
    )
    status, body = await post(feed)
    assert status == 503
    assert body["error"]["code"] == "starting"

    restored.set()
    status, body = await post(feed)
    assert status == 200
    assert body["acknowledged"] is True
