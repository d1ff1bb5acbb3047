"""Leader election with a coordination.k8s.io Lease: of several operator replicas exactly one
reconciles, places rooms and serves the control-plane HTTP endpoint at a time.

The decisions are `logic/leader_election.py`'s (docs/contract.md, "Leases", C1): every Lease
call has a deadline; a leader acts only within the renew deadline of the start of its last
successful renewal, so it rides out shorter API blips and stops before anyone else could
take over; a candidate waits a whole lease duration, on its own clock, after the record last
changed; every acquisition starts a new term.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from switchboard_operator.logic.leader_election import (
    ActingWindow,
    LeaderTiming,
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
        """`owners`: owner references of a Lease this replica creates (its installation)."""
        self._owners = owners or None
        self._leases = client.CoordinationV1Api(api)
        self._namespace = namespace
        self.identity = identity
        self.name = name
        self.timing = timing or LeaderTiming()
        self.term: int | None = None
        """This replica's term once it leads (the Lease's transitions after it took it)."""
        self._window = ActingWindow(self.timing.renew_deadline_seconds)
        self._observer = RecordObserver()
        self._deposed: str | None = None
        self._wake = asyncio.Event()
        self.highest_reported_term: int | None = None
        """The newest term an SFU reported to this replica: a term it takes, or leaves in
        the Lease it releases, is above it."""

    def acting(self) -> bool:
        """Whether this replica may act as leader now (acknowledge, issue tokens, write)."""
        return self._deposed is None and self._window.acting(time.monotonic())

    def remaining(self) -> float:
        """Seconds left in the acting window (0 when not acting)."""
        return self._window.remaining(time.monotonic()) if self._deposed is None else 0.0

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
        if self._deposed is None:
            log.warning("stepping down lease=%s term=%s reason=%s", self.name, self.term, reason)
            self._deposed = reason
        self._window.close()
        self._wake.set()

    async def acquire(self) -> None:
        """Wait until this replica holds the lease; API errors only delay it."""
        announced = False
        while True:
            try:
                if await self._try_acquire_or_renew():
                    break
            except (TimeoutError, ApiException, OSError) as error:
                log.warning("lease not acquired error=%r", error)
            if not announced:
                log.info("standing by: another replica leads lease=%s", self.name)
                announced = True
            await asyncio.sleep(self.timing.retry_seconds)
        log.info("leading lease=%s identity=%s term=%s", self.name, self.identity, self.term)

    async def hold(self) -> None:
        """Renew the lease until cancelled; raise LeadershipLost as soon as the acting
        window closes (however long the failing calls take: each has a deadline)."""
        while True:
            remaining = self.remaining()
            if remaining <= 0:
                raise LeadershipLost(self._deposed or f"lease {self.name} not renewed in time")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), min(self.timing.retry_seconds, remaining))
            if not self.acting():
                raise LeadershipLost(self._deposed or f"lease {self.name} not renewed in time")
            try:
                async with asyncio.timeout(self._window.remaining(time.monotonic())):
                    if not await self._try_acquire_or_renew(self._renewal_deadline):
                        raise LeadershipLost(f"lease {self.name} is held by another replica")
            except (TimeoutError, ApiException, OSError) as error:
                log.warning("lease renewal failed error=%r", error)

    async def release(self) -> None:
        """Hand the lease back, once every act has stopped (at shutdown, or stepping down
        for a newer term), so a standby takes over at once; the transitions left in it are
        past every term an SFU reported."""
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

    async def _try_acquire_or_renew(self, deadline_of: Callable[[], float] | None = None) -> bool:
        started = time.monotonic()
        deadline_of = deadline_of or self._call_deadline
        now = _now()
        try:
            lease = await self._leases.read_namespaced_lease(
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
                await self._leases.create_namespaced_lease(
                    self._namespace, body, _request_timeout=deadline_of()
                )
            except ApiException as conflict:
                if conflict.status == 409:
                    return False
                raise
            return self._took(term, started)
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
            await self._leases.replace_namespaced_lease(
                self.name, self._namespace, lease, _request_timeout=deadline_of()
            )
        except ApiException as error:
            if error.status == 409:
                return False
            raise
        return self._took(term, started)

    def _took(self, term: int, started: float) -> bool:
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
