"""The SFU's test-only setting that makes it speak the previous contract version (before the
lease protocol), which the fault suite's mixed-version rolling update runs as the old pods:
it must announce nothing of the lease protocol and ignore its fields, fencing on
`failoverTimeoutSeconds` alone, however long the lease it is granted."""

from __future__ import annotations

import time
from collections.abc import Callable

from fixtures.sfu_clients import SignallingClient
from fixtures.sfu_harness import SFU_WAIT_SECONDS, ReportReceiver
from fixtures.waiting import eventually
from switchboard_api.contract import RoomAssignment
from switchboard_sfu.config import PREVIOUS_CONTRACT_ENV

ROOM = "default/old-pod-room"
PEER_CHECKS = (
    "switchboard_sfu_peer_checks_total{verdict=serve}",
    "switchboard_sfu_peer_checks_total{verdict=fence}",
)


async def test_an_old_sfu_ignores_the_lease_and_fences_on_the_failover_timeout(
    start_sfu: Callable, receiver: ReportReceiver, token: Callable[..., str]
) -> None:
    receiver.term = 3
    receiver.lease_seconds = 60.0  # far longer than the failover timeout: an old pod ignores it
    receiver.assignments = [RoomAssignment(room=ROOM, max_participants=5)]
    sfu = await start_sfu(report_url=receiver.url, extra_env={PREVIOUS_CONTRACT_ENV: "1"})
    client = SignallingClient(sfu.ws_url)
    try:
        assert (await client.connect(token(room=ROOM, identity="p")))["type"] == "joined"
        await eventually(lambda: len(receiver.reports) > 3, SFU_WAIT_SECONDS, "reports")
        for field in ("peer", "term", "ackedSequence"):
            assert receiver.latest().get(field) is None, field

        receiver.status = 503
        cut = time.monotonic()
        migrate = await client.next_of("migrate")
        fenced_after = time.monotonic() - cut
    finally:
        await client.close()
    assert migrate["reason"] == "fenced"
    # On the failover timeout (6 s here), not the 60 s lease.
    assert fenced_after < receiver.lease_seconds
    metrics = await sfu.metrics()
    assert all(metrics.get(name, 0.0) == 0 for name in PEER_CHECKS), "an old pod asked peers"
