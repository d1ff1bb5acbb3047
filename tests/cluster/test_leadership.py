"""Leader election against the real API server, with a fault proxy in between: a leader
whose API server black-holes its requests steps down within its renew deadline instead of
hanging; a standby takes over only after a whole lease duration and with a newer term; a
standby rides out API errors instead of exiting; a leader shown a newer term steps down at
once; a leader whose event loop is slow keeps its lease, one whose loop is wedged loses it."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import yaml
from kubernetes_asyncio import client, config

from fixtures.cluster import Cluster
from fixtures.waiting import eventually
from switchboard_dev.faults import FaultProxy, ProxyMode
from switchboard_operator.kit.leadership import LeaderElector, LeadershipLost
from switchboard_operator.kit.loop_thread import LoopThread
from switchboard_operator.logic.leader_election import LeaderTiming

pytestmark = pytest.mark.cluster

NAMESPACE = "leadership-test"
TIMING = LeaderTiming()


@pytest.fixture(scope="module")
def namespace(control_plane: Cluster) -> str:
    if control_plane.kubectl("get", "namespace", NAMESPACE, check=False).returncode:
        control_plane.create_namespace(NAMESPACE)
    return NAMESPACE


def kubeconfig_through(proxy: FaultProxy, kubeconfig: Path, tmp_path: Path) -> Path:
    doc = yaml.safe_load(kubeconfig.read_text())
    doc["clusters"][0]["cluster"]["server"] = f"https://{proxy.address}"
    path = tmp_path / f"via-{proxy.port}.kubeconfig"
    path.write_text(yaml.safe_dump(doc))
    return path


async def client_through(proxy: FaultProxy, kubeconfig: Path, tmp_path: Path) -> client.ApiClient:
    path = kubeconfig_through(proxy, kubeconfig, tmp_path)
    configuration = client.Configuration()
    await config.load_kube_config(config_file=str(path), client_configuration=configuration)
    return client.ApiClient(configuration)


@pytest.fixture
async def proxies(control_plane: Cluster) -> AsyncIterator[list[FaultProxy]]:
    plane = control_plane.require_local("puts a proxy in front of the API server")
    made = [FaultProxy([("127.0.0.1", plane.port)]).start() for _ in range(2)]
    yield made
    for proxy in made:
        proxy.stop()


async def test_a_black_holed_leader_steps_down_in_time_and_a_standby_takes_over(
    control_plane: Cluster, namespace: str, proxies: list[FaultProxy], tmp_path: Path
) -> None:
    kubeconfig = control_plane.kubeconfig
    lease = f"elect-{time.monotonic_ns()}"
    async with (
        await client_through(proxies[0], kubeconfig, tmp_path) as first_api,
        await client_through(proxies[1], kubeconfig, tmp_path) as second_api,
    ):
        leader = LeaderElector(first_api, namespace, "first", name=lease)
        standby = LeaderElector(second_api, namespace, "second", name=lease)
        await asyncio.wait_for(leader.acquire(), 30)
        assert leader.acting() and leader.term == 1
        holding = asyncio.ensure_future(leader.hold())
        taking_over = asyncio.ensure_future(standby.acquire())

        proxies[0].set_mode(ProxyMode.BLACKHOLE)
        cut = time.monotonic()
        with pytest.raises(LeadershipLost):
            await asyncio.wait_for(holding, TIMING.lease_duration_seconds * 3)
        stepped_down = time.monotonic() - cut
        assert not leader.acting()
        await asyncio.wait_for(taking_over, 30)
        took_over = time.monotonic() - cut
    print(
        f"\nblack-holed leader stepped down after {stepped_down:.1f}s; "
        f"standby led after {took_over:.1f}s"
    )
    # The leader stopped acting before its last renewal's lease could expire for anyone.
    assert stepped_down <= TIMING.renew_deadline_seconds + TIMING.call_timeout_seconds
    assert took_over >= stepped_down
    assert standby.term == 2


async def test_a_standby_rides_out_api_errors(
    control_plane: Cluster, namespace: str, proxies: list[FaultProxy], tmp_path: Path
) -> None:
    lease = f"elect-{time.monotonic_ns()}"
    proxies[0].set_mode(ProxyMode.REFUSE)
    async with await client_through(proxies[0], control_plane.kubeconfig, tmp_path) as api:
        standby = LeaderElector(api, namespace, "patient", name=lease)
        acquiring = asyncio.ensure_future(standby.acquire())
        done, _ = await asyncio.wait({acquiring}, timeout=3 * TIMING.retry_seconds)
        assert not done, "acquire gave up on a refused connection"
        proxies[0].set_mode(ProxyMode.PASS)
        await asyncio.wait_for(acquiring, 30)
    assert standby.term == 1


async def test_a_leader_shown_a_newer_term_stops_acting_at_once(
    control_plane: Cluster, namespace: str, proxies: list[FaultProxy], tmp_path: Path
) -> None:
    """An SFU reported a term newer than ours: another replica leads, so this one stops
    every act now and stands by again, without waiting for its window to close."""
    lease = f"elect-{time.monotonic_ns()}"
    async with await client_through(proxies[0], control_plane.kubeconfig, tmp_path) as api:
        leader = LeaderElector(api, namespace, "deposed", name=lease)
        await asyncio.wait_for(leader.acquire(), 30)
        holding = asyncio.ensure_future(leader.hold())
        leader.step_down("an SFU applied term 9")
        assert not leader.acting() and leader.remaining() == 0.0
        with pytest.raises(LeadershipLost, match="term 9"):
            await asyncio.wait_for(holding, 30)


async def test_a_lease_deleted_under_its_leader_is_recreated_in_the_same_term(
    control_plane: Cluster, namespace: str, proxies: list[FaultProxy], tmp_path: Path
) -> None:
    """The leader recreates its Lease at its next renewal, in its own term (SFUs refuse an
    older one); the standby, which saw the Lease held, waits the absence out and does not
    take it."""
    lease = f"elect-{time.monotonic_ns()}"
    kubeconfig = control_plane.kubeconfig
    async with (
        await client_through(proxies[0], kubeconfig, tmp_path) as first_api,
        await client_through(proxies[1], kubeconfig, tmp_path) as second_api,
    ):
        leases = client.CoordinationV1Api(first_api)
        # A Lease with a history: term 1 would be what a fresh Lease starts at anyway.
        await leases.create_namespaced_lease(
            namespace,
            client.V1Lease(
                metadata=client.V1ObjectMeta(name=lease),
                spec=client.V1LeaseSpec(lease_transitions=5),
            ),
        )
        leader = LeaderElector(first_api, namespace, "first", name=lease)
        standby = LeaderElector(second_api, namespace, "second", name=lease)
        await asyncio.wait_for(leader.acquire(), 30)
        term = leader.term
        assert term == 6
        holding = asyncio.ensure_future(leader.hold())
        taking_over = asyncio.ensure_future(standby.acquire())
        await eventually(lambda: standby.saw_a_holder, 30, "the standby to see the Lease held")
        await leases.delete_namespaced_lease(lease, namespace)

        async def recreated() -> client.V1Lease:
            while True:
                try:
                    return await leases.read_namespaced_lease(lease, namespace)
                except client.ApiException as error:
                    if error.status != 404:
                        raise
                await asyncio.sleep(0.1)

        again = await asyncio.wait_for(recreated(), 30)
        assert again.spec.holder_identity == "first"
        assert again.spec.lease_transitions == term
        # Longer than a lease duration: the standby would have taken an absent Lease.
        done, _ = await asyncio.wait(
            {holding, taking_over}, timeout=2 * TIMING.lease_duration_seconds
        )
        assert not done, "the leader lost its Lease or the standby took it"
        assert leader.acting() and leader.term == term
        for task in (holding, taking_over):
            task.cancel()
        await asyncio.gather(holding, taking_over, return_exceptions=True)


async def test_a_leader_outranked_by_a_reported_term_hands_on_past_it(
    control_plane: Cluster, namespace: str, proxies: list[FaultProxy], tmp_path: Path
) -> None:
    """The Lease was recreated while no leader ran: its new holder leads term 1 under SFU
    pods that applied term 7. It steps down and releases the Lease at 7, so the next leader
    leads term 8 (not 2, 3, ... one step-down per term)."""
    lease = f"elect-{time.monotonic_ns()}"
    kubeconfig = control_plane.kubeconfig
    async with (
        await client_through(proxies[0], kubeconfig, tmp_path) as first_api,
        await client_through(proxies[1], kubeconfig, tmp_path) as second_api,
    ):
        reset = LeaderElector(first_api, namespace, "reset", name=lease)
        await asyncio.wait_for(reset.acquire(), 30)
        assert reset.term == 1
        reset.saw_term(7)
        assert reset.outranked
        reset.step_down("an SFU applied term 7")
        await reset.release()
        successor = LeaderElector(second_api, namespace, "successor", name=lease)
        await asyncio.wait_for(successor.acquire(), 30)
    assert successor.term == 8


async def test_a_leader_whose_lease_another_replica_took_stops_at_its_next_renewal(
    control_plane: Cluster, namespace: str, proxies: list[FaultProxy], tmp_path: Path
) -> None:
    """A renewal writes over the record the leader last wrote, guarded by its
    resourceVersion: a Lease taken meanwhile (by hand here) is not overwritten; the leader
    reads it, sees another holder and stops."""
    lease = f"elect-{time.monotonic_ns()}"
    async with await client_through(proxies[0], control_plane.kubeconfig, tmp_path) as api:
        leader = LeaderElector(api, namespace, "first", name=lease)
        await asyncio.wait_for(leader.acquire(), 30)
        holding = asyncio.ensure_future(leader.hold())
        leases = client.CoordinationV1Api(api)
        taken = await leases.read_namespaced_lease(lease, namespace)
        taken.spec.holder_identity = "intruder"
        await leases.replace_namespaced_lease(lease, namespace, taken)
        with pytest.raises(LeadershipLost, match="another replica"):
            await asyncio.wait_for(holding, 30)
        assert not leader.acting()
        after = await leases.read_namespaced_lease(lease, namespace)
    assert after.spec.holder_identity == "intruder"


def busy(seconds: float, until: Callable[[], bool] = lambda: False) -> float:
    """Keep this thread's event loop busy (CPU-bound, as a long placement batch would) for
    `seconds`, or until `until()`; returns how long it was."""
    started = time.monotonic()
    while time.monotonic() - started < seconds and not until():
        sum(range(1000))
    return time.monotonic() - started


class Standby:
    """A standby replica on an event loop and a thread of its own (another process)."""

    def __init__(self, configuration: client.Configuration, lease: str) -> None:
        self._lease = lease
        self.elector: LeaderElector | None = None
        self.acquired = threading.Event()
        self.thread = LoopThread(configuration, "standby", self._take).start()

    @property
    def saw_a_holder(self) -> bool:
        return self.elector is not None and self.elector.saw_a_holder

    async def _take(self, api: client.ApiClient) -> None:
        self.elector = LeaderElector(api, NAMESPACE, "standby", name=self._lease)
        await self.elector.acquire()
        self.acquired.set()


async def test_a_leader_whose_event_loop_is_slow_keeps_its_lease(
    control_plane: Cluster, namespace: str, proxies: list[FaultProxy], tmp_path: Path
) -> None:
    """The leader's loop is busy for longer than a whole lease duration, but within the
    stall bound: its Lease is renewed from the election's thread meanwhile, so it keeps
    acting in the same term and the standby never takes over."""
    lease = f"elect-{time.monotonic_ns()}"
    timing = LeaderTiming(loop_stall_seconds=4 * TIMING.lease_duration_seconds)
    async with await client_through(proxies[0], control_plane.kubeconfig, tmp_path) as api:
        leader = LeaderElector(api, namespace, "slow", timing=timing, name=lease)
        await asyncio.wait_for(leader.acquire(), 30)
        term = leader.term
        holding = asyncio.ensure_future(leader.hold())
        async with await client_through(proxies[1], control_plane.kubeconfig, tmp_path) as other:
            standby = Standby(other.configuration, lease)
        await eventually(lambda: standby.saw_a_holder, 30, "the standby to see the Lease held")
        blocked = busy(TIMING.lease_duration_seconds + TIMING.renew_deadline_seconds)
        assert blocked < timing.loop_stall_seconds
        assert leader.acting() and leader.term == term, "the leader lost its lease"
        assert not holding.done() and not standby.acquired.is_set(), "the standby took over"
        holding.cancel()
        await asyncio.gather(holding, return_exceptions=True)
        await standby.thread.stopped()
    print(f"\nloop busy {blocked:.1f}s: the leader kept term {term}")


async def test_a_leader_whose_event_loop_is_wedged_lets_a_standby_take_over(
    control_plane: Cluster, namespace: str, proxies: list[FaultProxy], tmp_path: Path
) -> None:
    """The leader's loop runs nothing for longer than the stall bound: the election's
    thread renews for it no more, so a standby takes the Lease in a newer term, and the
    leader, once its loop runs again, finds its window closed and stops."""
    lease = f"elect-{time.monotonic_ns()}"
    async with await client_through(proxies[0], control_plane.kubeconfig, tmp_path) as api:
        leader = LeaderElector(api, namespace, "wedged", name=lease)
        await asyncio.wait_for(leader.acquire(), 30)
        term = leader.term
        assert term is not None
        holding = asyncio.ensure_future(leader.hold())
        async with await client_through(proxies[1], control_plane.kubeconfig, tmp_path) as other:
            standby = Standby(other.configuration, lease)
        await eventually(lambda: standby.saw_a_holder, 30, "the standby to see the Lease held")
        wedged = busy(60, until=standby.acquired.is_set)
        assert standby.acquired.is_set(), "the standby never took over a wedged leader"
        assert not leader.acting()
        with pytest.raises(LeadershipLost):
            await asyncio.wait_for(holding, 30)
        await asyncio.wrap_future(standby.thread.outcome)
    print(f"\nloop wedged: the standby led after {wedged:.1f}s")
    assert wedged >= TIMING.loop_stall_seconds
    assert standby.elector is not None and standby.elector.term == term + 1
