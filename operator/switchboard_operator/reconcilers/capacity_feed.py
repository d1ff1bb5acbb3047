"""The capacity feed: SFU Pod watch events and capacity reports into the capacity picture,
and each report's answer from it. No API call per report.

What it learns that others act on, it signals: a pod lost (failover runs at once) and
capacity that may have appeared (rooms waiting for some are looked at again). It answers
only for an acting leader, grants leases in its term, and records per pod incarnation
which acknowledgements arrived (docs/contract.md, "Leases", C1-C3).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from switchboard_api import defaults
from switchboard_api import labels as keys
from switchboard_api.contract import CapacityReport, ReportResponse, RoomAssignment
from switchboard_operator.cache import ClusterCache
from switchboard_operator.kube import bodies
from switchboard_operator.logic.capacity import CapacityPicture, PodObservation
from switchboard_operator.logic.leader_election import Leadership
from switchboard_operator.logic.pod_readiness import has_been_ready
from switchboard_operator.logic.report_response import report_response
from switchboard_operator.logic.reportauth import ReporterIdentity
from switchboard_operator.logic.timestamps import parse_time

log = logging.getLogger(__name__)


class CapacityFeed:
    def __init__(
        self,
        cache: ClusterCache,
        picture: CapacityPicture,
        *,
        capacity_appeared: Callable[[], None],
        pod_lost: Callable[[], None],
        ready: Callable[[], bool],
        leadership: Leadership,
        failover_timeout: float = defaults.FAILOVER_TIMEOUT_SECONDS,
        lease_seconds: float = defaults.LEASE_SECONDS,
    ) -> None:
        self._leadership = leadership
        self._lease_seconds = lease_seconds
        self.first_acknowledged_at: float | None = None
        """When this term first acknowledged a report: what C5 counts a lease of the
        previous term from (the restore before it is no part of any pod's lease)."""
        self._cache = cache
        self._picture = picture
        self._capacity_appeared = capacity_appeared
        self._pod_lost = pod_lost
        self._ready = ready
        self._failover_timeout = failover_timeout
        self._answered: dict[str, dict[str, RoomAssignment]] = {}
        """The assignments of each pod's last answer, by pod key, then room: the next answer
        takes over those that have not changed instead of validating them again."""

    @property
    def ready(self) -> bool:
        """Whether placements are known: before that, an answer would be from an empty
        picture and tell the SFU to drop every room it serves."""
        return self._ready()

    def leading(self, report: CapacityReport) -> bool:
        """Whether this replica may answer `report` (C1). A report showing a newer term
        than ours means another replica acknowledged it, or the Lease was reset below the
        SFUs' terms: either way this one steps down at once (and releases the Lease past
        that term, manager)."""
        term = self._leadership.term
        if report.term is not None:
            self._leadership.saw_term(report.term)
        if report.term is not None and term is not None and report.term > term:
            self._leadership.step_down(
                f"pod {report.namespace}/{report.pod_name} applied term {report.term}"
            )
            return False
        return self._leadership.acting()

    def on_pod(self, body: Mapping[str, Any], deleted: bool) -> None:
        """An SFU Pod watch event."""
        meta = body["metadata"]
        key = f"{meta['namespace']}/{meta['name']}"
        region = (meta.get("labels") or {}).get(keys.REGION, "")
        if not deleted and not self._cache.trusts_sfu_pod(region, meta["namespace"], meta["uid"]):
            # Labels are no credential: a pod the operator did not create never enters the
            # picture (a pod it just created is trusted before its next event arrives).
            return
        if deleted:
            self._cache.sfu_ledger.deleted(meta["uid"])
            self._answered.pop(key, None)
            lost = self._picture.remove_pod(key, meta.get("uid"))
            if lost is not None and lost.rooms:
                log.info("sfu pod deleted with rooms pod=%s rooms=%d", key, len(lost.rooms))
                self._pod_lost()
            return
        annotations = meta.get("annotations") or {}
        draining = annotations.get(keys.DRAIN) == "true" or bool(meta.get("deletionTimestamp"))
        ready = bodies.pod_ready(body)
        failed = bodies.pod_failed(body)
        ended = bodies.pod_ended(body)
        self._picture.apply_pod(
            PodObservation(
                namespace=meta["namespace"],
                name=meta["name"],
                uid=meta["uid"],
                region=region,
                ready=ready,
                been_ready=has_been_ready(body),
                draining=draining,
                drain_deadline=parse_time(annotations.get(keys.DRAIN_DEADLINE)),
                failed=failed,
                ended=ended,
                cordoned=bool(annotations.get(keys.CORDONED)),
            ),
            time.time(),
        )
        # A failed pod ends the wait of rooms for its region: they go elsewhere now.
        if (ready and not draining) or failed:
            self._capacity_appeared()
        # An ended pod's rooms are lost (its process will not serve again): fail over now,
        # not at the next periodic check nor when the Pod is deleted.
        state = self._picture.incarnation(key, meta["uid"])
        if ended and state is not None and state.rooms:
            self._pod_lost()

    def trusts(self, identity: ReporterIdentity, report: CapacityReport) -> bool:
        """Whether the reporting pod is an SFU pod the operator created for the report's
        Region (its token already proved it is the pod it names)."""
        return self._cache.trusts_sfu_pod(report.region, identity.namespace, identity.pod_uid)

    def on_report(self, report: CapacityReport, now: float) -> ReportResponse:
        """An authenticated capacity report, received at `now`, answered while leading."""
        term = self._leadership.term
        outcome = self._picture.apply_report(report, now)
        pod = f"{report.namespace}/{report.pod_name}"
        state = self._picture.incarnation(pod, report.pod_uid)
        if outcome.accepted and state is not None and term is not None:
            state.acks.on_report(report.acked_sequence, report.term, term, now)
        if outcome.new_incarnation or (outcome.accepted and report.fenced):
            self._pod_lost()
        if outcome.capacity_freed:
            self._capacity_appeared()
        response = report_response(
            self._picture,
            report,
            outcome,
            max_participants=self._max_participants,
            failover_timeout=self._failover_timeout,
            term=term,
            lease_seconds=self._lease_seconds if term is not None else None,
            previous=self._answered.get(pod),
        )
        if outcome.accepted:
            self._answered[pod] = {a.room: a for a in response.assignments}
        if outcome.accepted and state is not None:
            state.acks.acknowledged(report.sequence, now)
            if self.first_acknowledged_at is None:
                self.first_acknowledged_at = now
        return response

    def _max_participants(self, room: str) -> int:
        spec = (self._cache.room(room) or {}).get("spec") or {}
        return int(spec.get("maxParticipants", defaults.ROOM_MAX_PARTICIPANTS))
