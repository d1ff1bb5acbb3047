"""A client that vanishes without a goodbye (a crashed tab: kill -9; a closed laptop lid:
SIGSTOP) is dropped: gone from the participants gauge, from the room (the others hear
`participantLeft`) and from the capacity report. A healthy participant that sends no media
stays: it still answers ICE consent checks.

Each client runs in its own process (`fixtures.sfu_client_process`). How long each drop
took is a benchmark figure (`bench/vanish_drop.py`), never asserted here.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

from fixtures.sfu_client_process import ClientProcess
from fixtures.sfu_clients import SignallingClient
from fixtures.sfu_harness import ReportReceiver, SfuProcess
from fixtures.vanishing import (
    DROP_DEADLINE_SECONDS,
    OBSERVER_TRACKS,
    counted,
    observer_joins,
    vanish,
)
from fixtures.waiting import eventually
from switchboard_api.contract import RoomAssignment

pytestmark = pytest.mark.slow

ROOM = "default/vanish"
VANISH = ["killed", "frozen"]


@pytest.fixture
async def sfu(start_sfu: Callable[..., object], receiver: ReportReceiver) -> SfuProcess:
    """An SFU reporting to a control plane that placed ROOM on it."""
    receiver.assignments = [RoomAssignment(room=ROOM, max_participants=10)]
    return await start_sfu(report_url=receiver.url)  # type: ignore[misc]


@pytest.fixture
async def observer(sfu: SfuProcess, token: Callable[..., str]) -> AsyncIterator[SignallingClient]:
    client = await observer_joins(sfu.ws_url, token(room=ROOM, identity="observer"))
    yield client
    await client.close()


@dataclass
class VanishRoom:
    """ROOM on an SFU, with the observer in it and clients that come and vanish."""

    sfu: SfuProcess
    receiver: ReportReceiver
    observer: SignallingClient
    token: Callable[..., str]
    clients: list[ClientProcess] = field(default_factory=list)

    async def start(self, transport: str, identity: str, silent: bool = False) -> ClientProcess:
        """A connected client process (WHIP, WHEP or WebSocket) in ROOM."""
        client = await ClientProcess.start(
            transport,
            self.sfu.base_url,
            ROOM,
            self.token(room=ROOM, identity=identity),
            silent=silent,
        )
        self.clients.append(client)
        return client

    async def joins_then_vanishes(
        self, transport: str, how: str, *, forwarded: int, reason: str, tracks: int
    ) -> None:
        """A client joins (then `forwarded` tracks flow), vanishes `how`, and nothing of it
        is left: it was dropped with `reason` and its `tracks` were unpublished."""
        client = await self.start(transport, transport)
        await counted(self.sfu, participants=2, forwarded=forwarded)
        drop = await vanish(client, how, self.observer, transport)
        dropped_at = time.monotonic()
        assert drop.reason == reason
        await counted(self.sfu, participants=1, forwarded=0)
        metrics = await self.sfu.metrics()
        assert metrics["switchboard_sfu_published_tracks"] == OBSERVER_TRACKS
        if reason == "consent-expired":  # a closed WebSocket is a departure, not a drop
            assert (
                metrics["switchboard_sfu_participants_dropped_total{reason=consent-expired}"] == 1
            )
        assert len(self.observer.of_type("trackUnpublished")) == tracks
        await reported_alone(self.receiver, since=dropped_at)


@pytest.fixture
async def room(
    sfu: SfuProcess,
    receiver: ReportReceiver,
    observer: SignallingClient,
    token: Callable[..., str],
) -> AsyncIterator[VanishRoom]:
    room = VanishRoom(sfu, receiver, observer, token)
    yield room
    for client in room.clients:
        await client.stop()


async def reported_alone(receiver: ReportReceiver, since: float) -> None:
    """A report sent after `since` shows only the observer in the room, its tracks unwatched."""

    def shows_alone(report: dict) -> bool:
        usage = next((r for r in report["rooms"] if r["room"] == ROOM), None)
        return (
            usage is not None
            and report["participants"] == 1
            and usage["participants"] == 1
            and usage["publishedTracks"] == OBSERVER_TRACKS
            and usage["forwardedTracks"] == 0
            and usage["load"] == 0
        )

    async def alone() -> bool:
        return any(shows_alone(report) for at, report, _ in receiver.reports if at > since)

    await eventually(alone, DROP_DEADLINE_SECONDS, "a report with the observer alone")


@pytest.mark.parametrize("how", VANISH)
async def test_a_vanished_whip_publisher_is_dropped(how, room) -> None:
    # The observer receives its two tracks, unpublished when it goes.
    await room.joins_then_vanishes("whip", how, forwarded=2, reason="consent-expired", tracks=2)


@pytest.mark.parametrize("how", VANISH)
async def test_a_vanished_whep_player_is_dropped(how, room) -> None:
    # It plays the observer's two tracks.
    await room.joins_then_vanishes("whep", how, forwarded=2, reason="consent-expired", tracks=0)


@pytest.mark.parametrize("how", VANISH)
async def test_a_vanished_websocket_participant_is_dropped(how, room) -> None:
    # Two tracks each way. Killed, its WebSocket closes at once; frozen, only consent
    # checks notice.
    reason = "disconnected" if how == "killed" else "consent-expired"
    await room.joins_then_vanishes("ws", how, forwarded=4, reason=reason, tracks=2)


async def test_a_silent_participant_is_not_dropped(room) -> None:
    """Muted (no RTP ever) yet healthy: kept while a frozen participant that joined after
    it is dropped, so a whole consent expiry passed without media from the muted one."""
    await room.start("ws", "muted", silent=True)
    control = await room.start("whip", "frozen")
    await counted(room.sfu, participants=3, forwarded=7)  # the frozen one's two reach both
    drop = await vanish(control, "frozen", room.observer, "frozen")
    assert drop.reason == "consent-expired"
    await counted(room.sfu, participants=2, forwarded=3)
    assert [m["identity"] for m in room.observer.of_type("participantLeft")] == ["frozen"]
