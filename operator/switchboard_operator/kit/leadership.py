"""Leader election with a coordination.k8s.io Lease: of several operator replicas exactly one
reconciles, places rooms and serves the control-plane HTTP endpoint at a time.

The decisions are `logic/leader_election.py`'s (docs/contract.md, "Leases", C1): every Lease
call has a deadline; a leader acts only within the renew deadline of the start of its last
successful renewal, so it rides out shorter API blips and stops before anyone else could
take over; a candidate waits a whole lease duration, on its own clock, after the record last
changed; every acquisition starts a new term.

The Lease is taken and renewed from a thread of its own (`kit/loop_thread.py`), with its own
event loop and API client: the operator's loop, busy placing rooms on a loaded machine, would
start renewals late and lose the lease. The thread does so only while that loop beats
(`LoopHeartbeat`): a wedged loop is not held leader for nothing. It still shares the GIL:
pure-Python work on the loop hands it over every switch interval (5 ms), but C code that
holds it for seconds stalls the thread too, and the window then runs out as before.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from switchboard_operator.kit.loop_thread import LoopThread
from switchboard_operator.logic.leader_election import (
    ActingWindow,
    LeaderTiming,
    LoopHeartbeat,
    RecordObserver,
    next_term,
    released_transitions,
)

log = logging.getLogger(__name__)

LEASE_NAME = "switchboard-operator"


class LeadershipLost(Exception):
    """This replica could not renew its lease in time and must stop acting as leader."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class LeaderElector:
    def __init__(
        self,
        api: client.ApiClient,
        namespace: str,
        identity: str,
        timing: LeaderTiming | None = None,
        name: str = LEASE_NAME,
        *,
        owners: list[client.V1OwnerReference] | None = None,
    ) -> None:
        """`api`: releases go through it; takes and renewals through a client of the same
        configuration on the election's own thread. `owners`: owner references of a Lease
        this replica creates (its installation)."""
        self._owners = owners or None
        self._leases = client.CoordinationV1Api(api)
        self._configuration = api.configuration
        self._namespace = namespace
        self.identity = identity
        self.name = name
        self.timing = timing or LeaderTiming()
        self.term: int | None = None
        """This replica's term once it leads (the Lease's transitions after it took it)."""
        # The window and the deposition are written by the election's thread and read by
        # the operator's loop (and the other way round).
        self._lock = threading.Lock()
        self._window = ActingWindow(self.timing.renew_deadline_seconds)
        self._observer = RecordObserver()
        self._heartbeat = LoopHeartbeat()
        self._deposed: str | None = None
        self._campaign: LoopThread[None] | None = None
        self._acquired: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._beating: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._written: client.V1Lease | None = None
        """The Lease as this leader last wrote it (the election's thread's alone)."""
        self.highest_reported_term: int | None = None
        """The newest term an SFU reported to this replica: a term it takes, or leaves in
        the Lease it releases, is above it."""

    def acting(self) -> bool:
        """Whether this replica may act as leader now (acknowledge, issue tokens, write)."""
        with self._lock:
            return self._deposed is None and self._window.acting(time.monotonic())

    def remaining(self) -> float:
        """Seconds left in the acting window (0 when not acting)."""
        with self._lock:
            if self._deposed is not None:
                return 0.0
            return self._window.remaining(time.monotonic())

    @property
    def saw_a_holder(self) -> bool:
        """Whether this replica, standing by, has seen another hold the Lease (a missing
        Lease is then waited out, not created at once)."""
        return self._observer.seen

    def saw_term(self, term: int) -> None:
        """An SFU reported having applied `term`."""
        self.highest_reported_term = max(term, self.highest_reported_term or 0)

    @property
    def outranked(self) -> bool:
        """Whether an SFU reported a newer term than this replica's (it stepped down)."""
        reported, term = self.highest_reported_term, self.term
        return reported is not None and term is not None and reported > term

    def step_down(self, reason: str) -> None:
        """Stop acting at once (an SFU showed a newer term: another replica leads); `hold`
        then raises LeadershipLost, and the replica stands by again."""
        with self._lock:
            if self._deposed is None:
                log.warning(
                    "stepping down lease=%s term=%s reason=%s", self.name, self.term, reason
                )
                self._deposed = reason
            self._window.close()
        if self._campaign is not None:
            self._campaign.call_soon(self._wake_up)

    async def acquire(self) -> None:
        """Wait until this replica holds the lease; API errors only delay it. From then on
        the election's thread renews it, for as long as this event loop runs, until `hold`
        raises or is cancelled, or `release`."""
        if self._campaign is not None:
            raise RuntimeError("this elector already campaigned")
        self._heartbeat.beat(time.monotonic())
        self._campaign = LoopThread(self._configuration, f"lease-{self.name}", self._campaign_of)
        self._campaign.start()
        self._beating = asyncio.create_task(self._beat(self._campaign), name="lease-heartbeat")
        try:
            await asyncio.wrap_future(self._acquired)
        except BaseException:
            await self._campaign.stopped()
            raise
        log.info("leading lease=%s identity=%s term=%s", self.name, self.identity, self.term)

    async def hold(self) -> None:
        """Wait while the election's thread renews the lease; raise LeadershipLost as soon as
        the acting window closes (however long the failing calls take: each has a deadline).
        Cancelling it stops the renewals."""
        campaign = self._campaign
        if campaign is None:
            raise RuntimeError("hold before acquire")
        try:
            await asyncio.wrap_future(campaign.outcome)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                await campaign.stopped()
                raise
            raise LeadershipLost(f"lease {self.name}: renewals stopped") from None

    async def _beat(self, campaign: LoopThread[None]) -> None:
        """Show the election's thread that this loop runs, until the campaign ends; stop it
        if this loop ends first."""
        try:
            while not campaign.outcome.done():
                self._heartbeat.beat(time.monotonic())
                await asyncio.sleep(self.timing.heartbeat_seconds)
        finally:
            campaign.stop()

    def _loop_runs(self) -> bool:
        now = time.monotonic()
        if self._heartbeat.fresh(now, self.timing.loop_stall_seconds):
            return True
        log.warning(
            "event loop stalled: not touching the lease lease=%s stalled_for=%.1fs",
            self.name,
            self._heartbeat.stalled_for(now) or 0.0,
        )
        return False

    def _wake_up(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def _campaign_of(self, api: client.ApiClient) -> None:
        """On the election's thread: take the Lease, then renew it until the window closes
        (LeadershipLost) or the thread is stopped."""
        leases = client.CoordinationV1Api(api)
        self._wake = asyncio.Event()
        try:
            await self._take(leases)
        except asyncio.CancelledError:
            self._acquired.cancel()
            raise
        except BaseException as error:
            self._acquired.set_exception(error)
            raise
        self._acquired.set_result(None)
        await self._renew(leases, self._wake)

    async def _take(self, leases: client.CoordinationV1Api) -> None:
        announced = False
        while True:
            try:
                if self._loop_runs() and await self._try_acquire_or_renew(leases):
                    return
            except (TimeoutError, ApiException, OSError) as error:
                log.warning("lease not acquired error=%r", error)
            if not announced:
                log.info("standing by: another replica leads lease=%s", self.name)
                announced = True
            await asyncio.sleep(self.timing.retry_seconds)

    async def _renew(self, leases: client.CoordinationV1Api, wake: asyncio.Event) -> None:
        attempted = time.monotonic()
        while True:
            remaining = self.remaining()
            if remaining <= 0:
                raise LeadershipLost(self._deposed or f"lease {self.name} not renewed in time")
            # Every retry period from the start of the last attempt, not from its end: a slow
            # API server leaves as many attempts in the window as a fast one.
            pause = self.timing.retry_seconds - (time.monotonic() - attempted)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), max(0.0, min(pause, remaining)))
            attempted = time.monotonic()
            if not self.acting():
                raise LeadershipLost(self._deposed or f"lease {self.name} not renewed in time")
            if not self._loop_runs():
                continue
            try:
                async with asyncio.timeout(self.remaining()):
                    deadline = self._renewal_deadline
                    if not (
                        await self._renewed_as_written(leases, deadline)
                        or await self._try_acquire_or_renew(leases, deadline)
                    ):
                        held = f"lease {self.name} is held by another replica"
                        self.step_down(held)  # whatever the window still allowed
                        raise LeadershipLost(held)
            except (TimeoutError, ApiException, OSError) as error:
                log.warning("lease renewal failed error=%r", error)

    async def release(self) -> None:
        """Hand the lease back, once every act has stopped (at shutdown, or stepping down
        for a newer term), so a standby takes over at once; the transitions left in it are
        past every term an SFU reported."""
        if self._campaign is not None:
            await self._campaign.stopped()  # no renewal races the release
        try:
            lease = await self._leases.read_namespaced_lease(
                self.name, self._namespace, _request_timeout=self.timing.call_timeout_seconds
            )
            if lease.spec.holder_identity == self.identity:
                lease.spec.holder_identity = None
                lease.spec.renew_time = None
                lease.spec.lease_transitions = released_transitions(
                    lease.spec.lease_transitions, self.highest_reported_term
                )
                await self._leases.replace_namespaced_lease(
                    self.name,
                    self._namespace,
                    lease,
                    _request_timeout=self.timing.call_timeout_seconds,
                )
        except (TimeoutError, ApiException, OSError) as error:
            log.warning("lease not released error=%r", error)

    def _renewal_deadline(self) -> float:
        """A renewal's call may take what the acting window leaves (at least the call
        timeout): a slow API server under load does not cost the lease a healthy one keeps;
        the window's own end still bounds the renewal."""
        return max(self.timing.call_timeout_seconds, self.remaining())

    def _call_deadline(self) -> float:
        return self.timing.call_timeout_seconds

    async def _try_acquire_or_renew(
        self,
        leases: client.CoordinationV1Api,
        deadline_of: Callable[[], float] | None = None,
    ) -> bool:
        started = time.monotonic()
        deadline_of = deadline_of or self._call_deadline
        now = _now()
        try:
            lease = await leases.read_namespaced_lease(
                self.name, self._namespace, _request_timeout=deadline_of()
            )
        except ApiException as error:
            if error.status != 404:
                raise
            if self.term is not None:
                # Deleted under this leader: it is still the one acting, so it recreates the
                # Lease in its own term (a standby waits the absence out, RecordObserver).
                term = self.term
            elif self._observer.may_create(time.monotonic(), self.timing.lease_duration_seconds):
                term = next_term(None, self.highest_reported_term)
            else:
                return False
            body = client.V1Lease(
                metadata=client.V1ObjectMeta(
                    name=self.name,
                    namespace=self._namespace,
                    owner_references=self._owners,
                ),
                spec=self._spec(now, transitions=term, acquired=now),
            )
            try:
                created = await leases.create_namespaced_lease(
                    self._namespace, body, _request_timeout=deadline_of()
                )
            except ApiException as conflict:
                if conflict.status == 409:
                    return False
                raise
            return self._took(term, started, created)
        spec = lease.spec
        holder = spec.holder_identity
        leading = self.term is not None and holder == self.identity
        if not leading and holder:
            # Someone else's (or a previous process's with our name): expired only once the
            # record has stood still for a whole lease duration on our own clock.
            self._observer.observe(lease.metadata.resource_version, time.monotonic())
            duration = spec.lease_duration_seconds or self.timing.lease_duration_seconds
            if not self._observer.expired(time.monotonic(), duration):
                return False
        term = (
            self.term if leading else next_term(spec.lease_transitions, self.highest_reported_term)
        )
        assert term is not None
        lease.spec = self._spec(
            now,
            transitions=term,
            acquired=spec.acquire_time if leading and spec.acquire_time else now,
        )
        try:
            # resourceVersion in the body makes this a compare-and-swap.
            written = await leases.replace_namespaced_lease(
                self.name, self._namespace, lease, _request_timeout=deadline_of()
            )
        except ApiException as error:
            if error.status == 409:
                return False
            raise
        return self._took(term, started, written)

    async def _renewed_as_written(
        self, leases: client.CoordinationV1Api, deadline_of: Callable[[], float]
    ) -> bool:
        """client-go's fast path: a leader renews the record it wrote last, a compare-and-
        swap on its resourceVersion, in one call; only a conflict or the Lease gone costs
        a read (False)."""
        started, written, term = time.monotonic(), self._written, self.term
        if written is None or term is None:
            return False
        now = _now()
        written.spec = self._spec(now, transitions=term, acquired=written.spec.acquire_time or now)
        try:
            renewed = await leases.replace_namespaced_lease(
                self.name, self._namespace, written, _request_timeout=deadline_of()
            )
        except ApiException as error:
            if error.status not in (404, 409):
                raise
            self._written = None
            return False
        return self._took(term, started, renewed)

    def _took(self, term: int, started: float, written: client.V1Lease) -> bool:
        self._written = written
        with self._lock:
            self.term = term
            self._window.renewed(started)
        return True

    def _spec(
        self, now: dt.datetime, transitions: int, acquired: dt.datetime
    ) -> client.V1LeaseSpec:
        return client.V1LeaseSpec(
            holder_identity=self.identity,
            lease_duration_seconds=int(self.timing.lease_duration_seconds),
            acquire_time=acquired,
            renew_time=now,
            lease_transitions=transitions,
        )
