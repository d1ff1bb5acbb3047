"""Leader election with a coordination.k8s.io Lease: of several operator replicas exactly one
reconciles, places rooms and serves the control-plane HTTP endpoint at a time.

A replica that cannot renew its lease within the renew deadline (shorter than the lease
duration) gives up before anyone else may take over, so two leaders never overlap.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from dataclasses import dataclass

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

log = logging.getLogger(__name__)


class LeadershipLost(Exception):
    """This replica could not renew its lease in time and must stop acting as leader."""


@dataclass(frozen=True)
class LeaseSettings:
    name: str = "switchboard-operator"
    duration_seconds: int = 4
    """A standby takes over at most this long after the leader's last renewal. Kept well
    under the SFU failover timeout, so SFUs never fence themselves during a takeover."""
    renew_deadline_seconds: float = 3.0
    """A leader that could not renew for this long stops (before its lease can expire)."""
    retry_seconds: float = 1.0
    """Renewal period (one Lease write per period: the only write of an idle operator)."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class LeaderElector:
    def __init__(
        self,
        api: client.ApiClient,
        namespace: str,
        identity: str,
        settings: LeaseSettings | None = None,
    ) -> None:
        self._leases = client.CoordinationV1Api(api)
        self._namespace = namespace
        self.identity = identity
        self.settings = settings or LeaseSettings()

    async def acquire(self) -> None:
        """Wait until this replica holds the lease."""
        announced = False
        while not await self._try_acquire_or_renew():
            if not announced:
                log.info("standing by: another replica leads lease=%s", self.settings.name)
                announced = True
            await asyncio.sleep(self.settings.retry_seconds)
        log.info("leading lease=%s identity=%s", self.settings.name, self.identity)

    async def hold(self) -> None:
        """Renew the lease until cancelled; raise LeadershipLost if renewal fails too long."""
        renewed = time.monotonic()
        while True:
            await asyncio.sleep(self.settings.retry_seconds)
            try:
                if await self._try_acquire_or_renew():
                    renewed = time.monotonic()
                    continue
            except (TimeoutError, ApiException, OSError) as error:
                log.warning("lease renewal failed error=%s", error)
            if time.monotonic() - renewed > self.settings.renew_deadline_seconds:
                raise LeadershipLost(f"lease {self.settings.name} not renewed in time")

    async def release(self) -> None:
        """Hand the lease back at shutdown so a standby takes over at once."""
        try:
            lease = await self._leases.read_namespaced_lease(self.settings.name, self._namespace)
            if lease.spec.holder_identity == self.identity:
                lease.spec.holder_identity = None
                lease.spec.renew_time = None
                await self._leases.replace_namespaced_lease(
                    self.settings.name, self._namespace, lease
                )
        except (ApiException, OSError) as error:
            log.warning("lease not released error=%s", error)

    async def _try_acquire_or_renew(self) -> bool:
        now = _now()
        try:
            lease = await self._leases.read_namespaced_lease(self.settings.name, self._namespace)
        except ApiException as error:
            if error.status != 404:
                raise
            body = client.V1Lease(
                metadata=client.V1ObjectMeta(name=self.settings.name, namespace=self._namespace),
                spec=self._spec(now, transitions=0, acquired=now),
            )
            try:
                await self._leases.create_namespaced_lease(self._namespace, body)
            except ApiException as conflict:
                if conflict.status == 409:
                    return False
                raise
            return True
        spec = lease.spec
        holder = spec.holder_identity
        expired = (
            spec.renew_time is None
            or spec.renew_time + dt.timedelta(seconds=spec.lease_duration_seconds or 0) < now
        )
        if holder not in (None, "", self.identity) and not expired:
            return False
        ours = holder == self.identity
        lease.spec = self._spec(
            now,
            transitions=(spec.lease_transitions or 0) + (0 if ours else 1),
            acquired=spec.acquire_time if ours and spec.acquire_time else now,
        )
        try:
            # resourceVersion in the body makes this a compare-and-swap.
            await self._leases.replace_namespaced_lease(self.settings.name, self._namespace, lease)
        except ApiException as error:
            if error.status == 409:
                return False
            raise
        return True

    def _spec(
        self, now: dt.datetime, transitions: int, acquired: dt.datetime
    ) -> client.V1LeaseSpec:
        return client.V1LeaseSpec(
            holder_identity=self.identity,
            lease_duration_seconds=self.settings.duration_seconds,
            acquire_time=acquired,
            renew_time=now,
            lease_transitions=transitions,
        )
