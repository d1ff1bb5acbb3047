"""The lease protocol with real SFU processes and a stand-in control plane: a pod whose
lease ends keeps its rooms while its peers are unacknowledged too (the control plane is
away for everyone), and fences when a peer shows the control plane is up without it, or
when no peer answers. Responses of an older term are never applied."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fixtures.sfu_clients import SignallingClient
from fixtures.sfu_harness import (
    SFU_WAIT_SECONDS,
    JoinKeys,
    PodIdentity,
    ReportReceiver,
    SfuProcess,
    sign_join_token,
)
from fixtures.waiting import eventually
from switchboard_api.contract import RoomAssignment

LEASE_SECONDS = 2.0
PODS = ("sfu-a", "sfu-b", "sfu-c")


def room_of(pod: str) -> str:
    return f"default/room-{pod}"


@pytest.fixture
async def trio(
    tmp_path: Path, join_keys: JoinKeys, receiver: ReportReceiver
) -> AsyncIterator[dict[str, SfuProcess]]:
    """Three SFU pods of one Region, each with one assigned room, granted leases."""
    receiver.term = 1
    receiver.lease_seconds = LEASE_SECONDS
    receiver.assignments = []
    sfus: dict[str, SfuProcess] = {}
    try:
        for index, name in enumerate(PODS):
            pod = PodIdentity(name=name, uid=f"3f1c7e55-0000-4000-8000-00000000010{index}")
            workdir = tmp_path / name
            workdir.mkdir()
            sfus[name] = SfuProcess(workdir, join_keys, pod, report_url=receiver.url)
            await sfus[name].start()
        receiver.assignments = [RoomAssignment(room=room_of(p), max_participants=5) for p in PODS]
        # Every pod has heard of both others (peers are listed from their reports).
        await eventually(
            lambda: all(len(receiver.peers_of(p)) == 2 for p in PODS),
            SFU_WAIT_SECONDS,
            "peer endpoints",
        )
        await eventually(
            lambda: all((receiver.latest(p) or {}).get("ackedSequence", 0) > 3 for p in PODS),
            SFU_WAIT_SECONDS,
            "acknowledged reports listing peers",
        )
        yield sfus
    finally:
        for sfu in sfus.values():
            sfu.stop()


def token_for(join_keys: JoinKeys, sfu: SfuProcess, identity: str, **claims: object) -> str:
    return sign_join_token(
        join_keys, sfu.pod, room=room_of(sfu.pod.name), identity=identity, claims=claims or None
    )


SERVE_CHECKS = "switchboard_sfu_peer_checks_total{verdict=serve}"
FENCE_CHECKS = "switchboard_sfu_peer_checks_total{verdict=fence}"


async def metric(sfu: SfuProcess, name: str) -> float:
    return (await sfu.metrics()).get(name, 0.0)


async def at_least(sfu: SfuProcess, name: str, value: float) -> bool:
    return await metric(sfu, name) >= value


async def test_the_control_plane_away_for_every_pod_cuts_nothing(
    trio: dict[str, SfuProcess], receiver: ReportReceiver, join_keys: JoinKeys
) -> None:
    clients = {name: SignallingClient(sfu.ws_url) for name, sfu in trio.items()}
    late = SignallingClient(trio["sfu-a"].ws_url)
    try:
        for name, client in clients.items():
            joined = await client.connect(token_for(join_keys, trio[name], "early"))
            assert joined["type"] == "joined"

        receiver.status = 503  # the control plane answers nobody
        for sfu in trio.values():
            await eventually(
                lambda sfu=sfu: metric(sfu, SERVE_CHECKS),
                SFU_WAIT_SECONDS,
                f"{sfu.pod.name} to outlive its lease on its peers' word",
            )
        # Several checks later, still nobody fenced and every participant is connected.
        await eventually(
            lambda: at_least(trio["sfu-a"], SERVE_CHECKS, 3), SFU_WAIT_SECONDS, "more peer checks"
        )
        for name, sfu in trio.items():
            assert await metric(sfu, "switchboard_sfu_fenced") == 0, name
            assert await metric(sfu, "switchboard_sfu_participants") == 1, name
            assert (await sfu.get("/readyz"))[0] == 200
        assert not any(c.closed.is_set() for c in clients.values())
        # Tokens the pod can verify are still admitted.
        assert (await late.connect(token_for(join_keys, trio["sfu-a"], "late")))["type"] == "joined"

        receiver.status = 200
        await eventually(
            lambda: all(
                (r := receiver.latest(p)) and r["ackedSequence"] >= r["sequence"] - 2 for p in PODS
            ),
            SFU_WAIT_SECONDS,
            "acknowledgements again",
        )
        assert not any(c.closed.is_set() for c in clients.values())
    finally:
        for client in (*clients.values(), late):
            await client.close()
    for client in clients.values():
        assert "migrate" not in [m.get("type") for m in client.messages]
    for name, sfu in trio.items():
        assert await metric(sfu, FENCE_CHECKS) == 0, name


async def test_a_pod_cut_off_alone_fences_and_its_peers_do_not(
    trio: dict[str, SfuProcess], receiver: ReportReceiver, join_keys: JoinKeys
) -> None:
    clients = {name: SignallingClient(sfu.ws_url) for name, sfu in trio.items()}
    try:
        for name, client in clients.items():
            await client.connect(token_for(join_keys, trio[name], "p"))
        receiver.unanswered = {"sfu-a"}  # only sfu-a's report path is cut

        migrate = await clients["sfu-a"].next_of("migrate")
        await eventually(
            clients["sfu-a"].closed.is_set, SFU_WAIT_SECONDS, "the fenced pod to disconnect"
        )
        refused = SignallingClient(trio["sfu-a"].ws_url)
        try:
            answer = await refused.connect(token_for(join_keys, trio["sfu-a"], "q"))
        finally:
            await refused.close()
        assert answer["error"] == "fenced"
        for name in ("sfu-b", "sfu-c"):
            assert await metric(trio[name], "switchboard_sfu_fenced") == 0
            assert not clients[name].closed.is_set()

        receiver.unanswered = set()
        await eventually(
            lambda: (
                (receiver.latest("sfu-a") or {}).get("fenced") is False
                and receiver.latest("sfu-a")["ackedSequence"] > 0
            ),
            SFU_WAIT_SECONDS,
            "the fence lifted by an acknowledgement",
        )
    finally:
        for client in clients.values():
            await client.close()
    assert migrate["reason"] == "fenced"
    assert "migrate" not in [m.get("type") for m in clients["sfu-b"].messages]


async def test_a_pod_that_reaches_no_peer_fences(
    trio: dict[str, SfuProcess], receiver: ReportReceiver, join_keys: JoinKeys
) -> None:
    client = SignallingClient(trio["sfu-a"].ws_url)
    try:
        await client.connect(token_for(join_keys, trio["sfu-a"], "p"))
        # Its peers are frozen: they answer nothing, as if sfu-a were partitioned from all.
        for name in ("sfu-b", "sfu-c"):
            trio[name].signal(signal.SIGSTOP)
        receiver.status = 503
        migrate = await client.next_of("migrate")
    finally:
        for name in ("sfu-b", "sfu-c"):
            trio[name].signal(signal.SIGCONT)
        await client.close()
    assert migrate["reason"] == "fenced"
    assert await metric(trio["sfu-a"], FENCE_CHECKS) >= 1


async def test_an_older_term_is_never_applied(
    trio: dict[str, SfuProcess], receiver: ReportReceiver, join_keys: JoinKeys
) -> None:
    sfu = trio["sfu-a"]
    client = SignallingClient(sfu.ws_url)
    try:
        await client.connect(token_for(join_keys, sfu, "p"))
        receiver.term = 7
        await eventually(
            lambda: receiver.latest("sfu-a")["term"] == 7, SFU_WAIT_SECONDS, "term 7 applied"
        )
        # A deposed leader answers with term 6 and without the room: nothing changes.
        receiver.term = 6
        receiver.assignments = [a for a in receiver.assignments if a.room != room_of("sfu-a")]
        rejected = "switchboard_sfu_capacity_reports_total{outcome=rejected}"
        await eventually(
            lambda: metric(sfu, rejected), SFU_WAIT_SECONDS, "term 6 responses refused"
        )
        assert receiver.latest("sfu-a")["term"] == 7
        assert not client.closed.is_set()
        # The room's participants were never told to move.
        assert "migrate" not in [m.get("type") for m in client.messages]
        # A token of term 6 is good for a room term 7 placed here...
        again = SignallingClient(sfu.ws_url)
        try:
            assert (await again.connect(token_for(join_keys, sfu, "q", term=6)))["type"] == "joined"
        finally:
            await again.close()
        # ...but not for a room term 7 never placed here.
        stray = SignallingClient(sfu.ws_url)
        try:
            refused = await stray.connect(
                sign_join_token(join_keys, sfu.pod, room="default/elsewhere", claims={"term": 6})
            )
        finally:
            await stray.close()
    finally:
        await client.close()
    assert refused["error"] == "room-not-assigned"
