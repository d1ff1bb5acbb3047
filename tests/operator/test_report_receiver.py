"""A control plane that has not yet restored its placements (start-up, a new leader)
refuses capacity reports instead of answering from an empty picture, which would tell
every SFU to end every room it serves."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from fixtures.placement_builders import report, usage
from switchboard_api.contract import CapacityReport
from switchboard_operator.adapters import reports
from switchboard_operator.adapters.reports import ReportReceiver
from switchboard_operator.adapters.scheduling import Scheduler


def capacity_report() -> CapacityReport:
    live = usage("rooms/live", participants=3, load=2.0)
    return report("sfu-0", sequence=1, load=2.0, participants=3, rooms=(live,))


@pytest.fixture
def authenticated(monkeypatch: pytest.MonkeyPatch) -> None:
    """Token checks pass (they are tested against the real API server elsewhere)."""

    async def verify(_self: ReportReceiver, _token: str) -> object:
        return SimpleNamespace()

    monkeypatch.setattr(ReportReceiver, "_verify", verify)
    monkeypatch.setattr(reports, "check_reporter", lambda _identity, _report: None)


async def post(scheduler: Scheduler) -> tuple[int, dict]:
    app = web.Application()
    app.router.add_post("/report", ReportReceiver(None, scheduler).handle)  # type: ignore[arg-type]
    async with TestClient(TestServer(app)) as client:
        reply = await client.post(
            "/report",
            data=capacity_report().model_dump_json(by_alias=True),
            headers={"Authorization": "Bearer token"},
        )
        return reply.status, await reply.json()


async def test_reports_are_refused_until_placements_are_restored(authenticated) -> None:
    scheduler = Scheduler(api=None)
    status, body = await post(scheduler)
    assert status == 503
    assert body["error"]["code"] == "starting"

    scheduler._restored.set()  # what the first list of Rooms and the restore end with
    status, body = await post(scheduler)
    assert status == 200
    assert body["acknowledged"] is True
