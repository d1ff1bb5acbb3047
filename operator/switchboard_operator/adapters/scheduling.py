"""Room scheduling at the I/O edge: the capacity picture fed by reports and Pod watches,
the Room reconciler that places rooms, failover, and coalesced live-status writes.

Everything runs on the operator's one event loop: a placement is decided and committed
in one synchronous step (`place` + `commit`), so two rooms never take the same last slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import kopf
import pydantic
from kubernetes_asyncio import client

from switchboard_api import defaults
from switchboard_api import labels as keys
from switchboard_api.contract import ReportResponse, RoomAssignment, room_key, split_room_key
from switchboard_api.geo import GeoLocation
from switchboard_api.region import Region
from switchboard_api.resources import GROUP, ROOM, VERSION
from switchboard_api.room import Room, RoomPhase
from switchboard_operator.adapters import events, kube, objects
from switchboard_operator.adapters.joinapi.port import (
    NamespaceNotFound,
    PlacedRoomInfo,
    PlacementTimeout,
    RoomNotFound,
    RoomUnschedulable,
)
from switchboard_operator.adapters.metrics import OperatorMetrics
from switchboard_operator.adapters.rebalancing import REBALANCE_CHECK_SECONDS, Rebalancer
from switchboard_operator.adapters.retry import with_retries
from switchboard_operator.adapters.room_informer import RoomInformer
from switchboard_operator.adapters.workqueue import Result, WorkQueue
from switchboard_operator.logic import manifests
from switchboard_operator.logic.capacity import (
    CapacityPicture,
    PodObservation,
    RoomMeasurement,
    RoomToMove,
    apply_pod,
    apply_report,
    assign,
    region_totals,
    remove_pod,
    rooms_to_move,
    unassign,
)
from switchboard_operator.logic.observation import status_patch
from switchboard_operator.logic.placement import (
    Placement,
    PlacementRegion,
    RoomRequest,
    Unschedulable,
    Waiting,
    commit,
    place,
    replace_rooms,
)
from switchboard_operator.logic.region_figures import ControlPlaneFigures, control_plane_figures
from switchboard_operator.logic.region_status import RegionLoad
from switchboard_operator.logic.room_status import PlacedOn, RoomOutcome, room_status

log = logging.getLogger(__name__)

FAILOVER_CHECK_SECONDS = 0.5
ROOM_WORKERS = 32
"""Room reconciles in flight: each mostly waits on its status write, so enough of them
keep the API server busy during a failover (bench/placement_e2e.py)."""
NOTICE_DELAY_SECONDS = 10.0
"""The longest a Migrating Event waits for an idle room queue (a busy one never starves it):
until then, every moved room's new status is written before an Event competes with it."""
LIVE_FLUSH_SECONDS = 2.0
"""Live counters (participants) reach Room statuses at most this often, only on change."""


@kopf.index("namespaces")
async def namespace_labels(name: str, labels: kopf.Labels, **_: Any) -> dict[str, dict[str, str]]:
    return {name: dict(labels)}


INDEXES = ("namespace_labels", "region_bodies", "region_sfu_pods")
"""kopf's indexes the scheduler reads. Rooms come from its own informer (room_informer)."""


@dataclass
class Scheduler:
    api: client.ApiClient
    failover_timeout: float = defaults.FAILOVER_TIMEOUT_SECONDS
    picture: CapacityPicture = field(default_factory=CapacityPicture)
    queue: WorkQueue | None = None
    rooms: RoomInformer | None = None
    indexes: dict[str, kopf.Index[Any, Any]] = field(default_factory=dict)
    pending: set[str] = field(default_factory=set)
    unschedulable: dict[str, str] = field(default_factory=dict)
    migrating: dict[str, tuple[str, str]] = field(default_factory=dict)
    closed: dict[str, str] = field(default_factory=dict)
    waiters: dict[str, list[asyncio.Future[PlacedRoomInfo]]] = field(default_factory=dict)
    on_region_load_change: Callable[[str], None] = lambda _region: None
    _region_loads: dict[str, RegionLoad] = field(default_factory=dict)
    rebalancer: Rebalancer = field(default_factory=Rebalancer)
    metrics: OperatorMetrics = field(default_factory=OperatorMetrics)
    _parsed_regions: dict[str, tuple[str, Region | None]] = field(default_factory=dict)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _pod_lost: asyncio.Event = field(default_factory=asyncio.Event)
    _restored: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once the first list of Rooms is in and their placements are restored."""
    """Set when a watch or report shows a pod lost: failover runs now, not at its next tick."""
    _notices: asyncio.Queue[tuple[float, Mapping[str, Any], str]] = field(
        default_factory=asyncio.Queue
    )
    """Warning Events about moved rooms (monotonic time queued, Room, message), posted once
    the moves are written."""
    _empty_since: dict[str, float] = field(default_factory=dict)
    """Rooms rebalance moved while empty: since when (Unix time) they have been empty, as
    their new SFU starts counting again from the move."""

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        self.queue = WorkQueue(
            lambda key: self.reconcile_room(str(key)),
            "rooms",
            workers=ROOM_WORKERS,
            observe=lambda seconds, failed: self.metrics.reconciled("Room", seconds, failed),
        )
        self.queue.start()
        self._tasks = [
            asyncio.create_task(
                self._every(FAILOVER_CHECK_SECONDS, self.failover, self._pod_lost),
                name="failover",
            ),
            asyncio.create_task(self._every(LIVE_FLUSH_SECONDS, self.flush_live), name="live"),
            asyncio.create_task(
                self._every(REBALANCE_CHECK_SECONDS, self.rebalance), name="rebalance"
            ),
            asyncio.create_task(self._post_notices(), name="notices"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.queue is not None:
            await self.queue.stop()

    async def _every(self, seconds: float, job: Any, wakeup: asyncio.Event | None = None) -> None:
        """Run `job` every `seconds`, or as soon as `wakeup` is set."""
        while True:
            if wakeup is None:
                await asyncio.sleep(seconds)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wakeup.wait(), seconds)
                wakeup.clear()
            if not self.ready:
                continue
            try:
                await job()
            except Exception:
                log.exception("periodic job failed job=%s", getattr(job, "__name__", job))

    def capture(self, kwargs: Mapping[str, Any]) -> None:
        """Take kopf's indexes from a handler's kwargs. kopf calls handlers only once every
        index is filled, so this is also when the Room informer may start: placements are
        made only after Regions, SFU pods and namespaces are all known."""
        if self.indexes:
            return
        self.indexes = {name: kwargs[name] for name in INDEXES}
        self.rooms = RoomInformer(self.api, self.trigger, on_synced=self._restore_all)
        self._tasks.append(asyncio.create_task(self.rooms.run(), name="room-informer"))

    def _restore_all(self) -> None:
        """After a restart, take back every placement recorded in Room statuses before any
        room is reconciled, so that no new room is placed on capacity they still hold."""
        assert self.rooms is not None
        regions = self._regions()
        now = time.time()
        for key in self.rooms:
            body = self.rooms.get(key) or {}
            try:
                room = Room.model_validate(body)
                status = body.get("status") or {}
                if status.get("phase") != RoomPhase.CLOSED.value:
                    self._restore(key, room, status, regions, now)
            except Exception as error:  # one odd Room must not keep the control plane down
                log.warning("placement not restored room=%s error=%s", key, error)
        log.info("placements restored rooms=%d", self.picture.room_count())
        self._restored.set()

    def _room(self, key: str) -> dict[str, Any] | None:
        return self.rooms.get(key) if self.rooms is not None else None

    @property
    def ready(self) -> bool:
        """Whether placements are known: Rooms listed and their placements restored. Until
        then reports are refused and joins wait (an answer would be from an empty picture)."""
        return self._restored.is_set()

    def trigger(self, key: str) -> None:
        if self.queue is not None:
            self.queue.trigger(key)

    def trigger_pending(self) -> None:
        for key in sorted(self.pending):
            self.trigger(key)

    # -- cluster views -----------------------------------------------------------------

    def _one(self, index: str, key: str) -> dict[str, Any] | None:
        store = self.indexes[index].get(key)
        return next(iter(store), None) if store is not None else None

    def _regions(self) -> dict[str, Region]:
        """The Regions rooms may be placed in, each parsed once per resourceVersion."""
        regions: dict[str, Region] = {}
        parsed: dict[str, tuple[str, Region | None]] = {}
        for name, store in self.indexes["region_bodies"].items():
            for body in store:
                meta = body["metadata"]
                if meta.get("deletionTimestamp"):
                    continue
                version = str(meta.get("resourceVersion"))
                cached = self._parsed_regions.get(name)
                if cached is not None and cached[0] == version:
                    region = cached[1]
                else:
                    try:
                        region = Region.model_validate(body)
                    except pydantic.ValidationError:
                        log.warning("region unreadable, not placing rooms in it region=%s", name)
                        region = None
                parsed[name] = (version, region)
                if region is not None:
                    regions[name] = region
        self._parsed_regions = parsed
        return regions

    def _pod_body(self, region: str, pod_name: str) -> dict[str, Any] | None:
        store = self.indexes["region_sfu_pods"].get(region)
        return next((p for p in store or () if p["metadata"]["name"] == pod_name), None)

    def _endpoint(self, region: Region, pod_name: str) -> str | None:
        pod = self._pod_body(region.metadata.name or "", pod_name)
        pod_ip = ((pod or {}).get("status") or {}).get("podIP")
        try:
            return manifests.sfu_public_url(region, pod_name, pod_ip)
        except manifests.ManifestError:
            return None

    # -- capacity feed -----------------------------------------------------------------

    def on_pod(self, body: Mapping[str, Any], deleted: bool) -> None:
        meta = body["metadata"]
        key = f"{meta['namespace']}/{meta['name']}"
        if deleted:
            lost = remove_pod(self.picture, key, meta.get("uid"))
            if lost is not None and lost.rooms:
                log.info("sfu pod deleted with rooms pod=%s rooms=%d", key, len(lost.rooms))
                self._pod_lost.set()
            return
        annotations = meta.get("annotations") or {}
        draining = annotations.get(keys.DRAIN) == "true" or bool(meta.get("deletionTimestamp"))
        ready = kube.pod_ready(body)
        failed = kube.pod_failed(body)
        apply_pod(
            self.picture,
            PodObservation(
                namespace=meta["namespace"],
                name=meta["name"],
                uid=meta["uid"],
                region=(meta.get("labels") or {}).get(keys.REGION, ""),
                ready=ready,
                draining=draining,
                drain_deadline=kube.parse_time(annotations.get(keys.DRAIN_DEADLINE)),
                failed=failed,
            ),
            time.time(),
        )
        # A failed pod ends the wait of rooms for its region: they go elsewhere now.
        if (ready and not draining) or failed:
            self.trigger_pending()

    def on_report(self, report: Any, now: float) -> ReportResponse:
        outcome = apply_report(self.picture, report, now)
        pod = f"{report.namespace}/{report.pod_name}"
        if outcome.new_incarnation or (outcome.accepted and report.fenced):
            self._pod_lost.set()
        if outcome.capacity_freed:
            self.trigger_pending()
        state = self.picture.incarnation(pod, report.pod_uid)
        assignments = []
        for placed in self.picture.rooms_on(pod, report.pod_uid) if outcome.accepted else []:
            spec = (self._room(placed.room) or {}).get("spec") or {}
            limit = int(spec.get("maxParticipants", defaults.ROOM_MAX_PARTICIPANTS))
            assignments.append(RoomAssignment(room=placed.room, max_participants=limit))
        deadline = state.drain_deadline if state is not None else None
        return ReportResponse(
            acknowledged=outcome.accepted,
            sequence=report.sequence,
            failover_timeout_seconds=self.failover_timeout,
            assignments=assignments,
            drain=bool(state is not None and state.draining),
            drain_deadline=kube.format_time(deadline) if deadline else None,
            # A stray that lives on another pod now has moved: the SFU sees it missing from
            # its assignments and says `room-moved`. Only rooms placed nowhere are closed.
            close=[r for r in outcome.strays if self.picture.placement_of(r) is None],
        )

    # -- room reconcile ----------------------------------------------------------------

    async def reconcile_room(self, key: str) -> Result | None:  # noqa: PLR0912, PLR0915 - one pass
        body = self._room(key)
        if body is None or body["metadata"].get("deletionTimestamp"):
            await self._release(key)
            if body is not None:
                # A missing body may be a Room the join API just created and the watch has
                # not delivered yet: its waiters stay until it arrives or they time out.
                self._resolve(key, error=RoomNotFound(key))
            return None
        try:
            room = Room.model_validate(body)
        except pydantic.ValidationError as error:
            log.warning("room unreadable room=%s error=%s", key, error)
            return None
        current = body.get("status") or {}
        regions = self._regions()
        now = time.time()
        if current.get("phase") == RoomPhase.CLOSED.value or key in self.closed:
            await self._release(key)
            return await self._after_closed(room, body, now)
        self._restore(key, room, current, regions, now)
        placed = self.picture.placement_of(key)
        outcome: RoomOutcome
        if placed is None:
            request = self._request(room)
            decision = place(
                request,
                [PlacementRegion.of(r) for r in regions.values()],
                self.picture,
                now,
                wait=key not in self.migrating,
            )
            if isinstance(decision, Placement):
                commit(self.picture, decision, now)
                log.info("room placed room=%s pod=%s region=%s", key, decision.pod, decision.region)
                created = room.metadata.creation_timestamp
                first = key not in self.migrating and not current.get("pod") and created
                self.metrics.placed(decision.region, now - created.timestamp() if first else None)
                placed = self.picture.placement_of(key)
                self.pending.discard(key)
                self.migrating.pop(key, None)
                if key in self.unschedulable:
                    self.unschedulable.pop(key)
            else:
                # Pending rooms are retried whenever capacity may have appeared: say so
                # once per reason (the status already carries a repeated one).
                repeated = _scheduled_condition(current).get("reason") == str(decision.reason)
                log.log(
                    logging.DEBUG if repeated else logging.INFO,
                    "room not placed room=%s reason=%s message=%s",
                    key,
                    decision.reason,
                    decision.message,
                )
        if placed is not None:
            region = self._region_of_pod(placed.pod, regions)
            pod_name = placed.pod.split("/", 1)[1]
            endpoint = self._endpoint(region, pod_name) if region else None
            outcome = RoomOutcome(
                placed=PlacedOn(
                    region=region.metadata.name or "" if region else "",
                    pod=pod_name,
                    pod_uid=placed.pod_uid,
                    endpoint=endpoint,
                    reservation=placed.reservation,
                ),
                participants=self._participants(key),
            )
        elif key in self.migrating:
            # Retried, like an unschedulable room, as soon as capacity appears.
            self.pending.add(key)
            outcome = RoomOutcome(migrating=self.migrating[key])
        elif isinstance(decision, Waiting):
            outcome = self._wait(key, decision)
        else:
            assert isinstance(decision, Unschedulable)
            self.pending.add(key)
            outcome = RoomOutcome(unschedulable=(decision.reason.value, decision.message))
            if self.unschedulable.get(key) != decision.reason.value:
                self.unschedulable[key] = decision.reason.value
                await events.post(
                    self.api, body, "Warning", decision.reason.value, decision.message
                )
        await self._write(body, outcome)
        if outcome.placed is not None:
            await self._sync_hosts_label(outcome.placed, regions)
            self._resolve(
                key,
                info=PlacedRoomInfo(
                    key,
                    outcome.placed.region,
                    outcome.placed.pod,
                    outcome.placed.pod_uid,
                    outcome.placed.endpoint,
                ),
            )
        elif outcome.unschedulable is not None:
            assert isinstance(decision, Unschedulable)
            self._resolve(key, error=RoomUnschedulable.of(decision))
        elif outcome.waiting is not None:
            assert isinstance(decision, Waiting)
            return Result(requeue_after=max(0.0, decision.recheck_at - now))
        return None

    def _wait(self, key: str, decision: Waiting) -> RoomOutcome:
        """A room whose region's SFU pods are starting stays Pending, with no Event. It is
        retried when a pod turns Ready or reports capacity (`trigger_pending`), and at the
        latest when the startup grace runs out (`recheck_at`). Join API waiters keep waiting."""
        self.pending.add(key)
        self.unschedulable.pop(key, None)
        return RoomOutcome(waiting=(decision.reason, decision.message))

    def _request(self, room: Room) -> RoomRequest:
        namespace = room.metadata.namespace or ""
        labels = self._one("namespace_labels", namespace) or {}
        return RoomRequest.for_room(room, self.picture.model, namespace_labels=labels)

    def _region_of_pod(self, pod: str, regions: Mapping[str, Region]) -> Region | None:
        state = self.picture.pod(pod)
        if state is not None and state.region in regions:
            return regions[state.region]
        namespace = pod.split("/", 1)[0]
        return next((r for r in regions.values() if r.spec.namespace == namespace), None)

    def _restore(
        self,
        key: str,
        room: Room,
        current: Mapping[str, Any],
        regions: Mapping[str, Region],
        now: float,
    ) -> None:
        """After a restart, take the placement recorded in the Room status back as it was."""
        if self.picture.placement_of(key) is not None or key in self.migrating:
            return
        pod, uid, region_name = current.get("pod"), current.get("podUID"), current.get("region")
        if not (pod and uid and region_name in regions):
            return
        if current.get("phase") not in (RoomPhase.SCHEDULED.value, RoomPhase.RUNNING.value):
            return
        scheduled = _scheduled_condition(current)
        region = regions[region_name]
        assign(
            self.picture,
            key,
            self.picture.model.reservation(room.spec),
            pod=f"{region.spec.namespace}/{pod}",
            pod_uid=uid,
            now=now,
            placed_at=kube.parse_time(scheduled.get("lastTransitionTime")) or now,
        )

    def _participants(self, key: str) -> int:
        placed = self.picture.placement_of(key)
        if placed is None:
            return 0
        state = self.picture.incarnation(placed.pod, placed.pod_uid)
        measurement = state.measured.get(key) if state is not None else None
        return measurement.participants if measurement is not None else 0

    async def _release(self, key: str) -> None:
        placed = unassign(self.picture, key)
        self._empty_since.pop(key, None)
        self.pending.discard(key)
        self.unschedulable.pop(key, None)
        self.migrating.pop(key, None)
        if placed is not None:
            self.trigger_pending()

    async def _after_closed(self, room: Room, body: dict[str, Any], now: float) -> Result | None:
        key = room.key
        closed_at = self.closed.get(key) or (body.get("status") or {}).get("closedAt")
        if key in self.closed:
            await self._write(body, RoomOutcome(closed_at=closed_at))
        ttl = room.spec.ttl_seconds_after_closed
        if ttl is None or not closed_at:
            return None
        due = (kube.parse_time(closed_at) or now) + ttl
        if now < due:
            return Result(requeue_after=due - now)
        namespace, name = split_room_key(key)
        await _delete_room(self.api, namespace, name)
        return None

    async def _write(self, body: Mapping[str, Any], outcome: RoomOutcome) -> None:
        current = body.get("status") or {}
        desired = room_status(
            current, body["metadata"].get("generation"), outcome, kube.now_rfc3339()
        )
        patch = status_patch(current, desired)
        if not patch:
            return
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        await with_retries(
            lambda: kube.patch_room_status(self.api, namespace, name, patch),
            f"room {namespace}/{name} status",
        )

    async def _sync_hosts_label(self, placed: PlacedOn, regions: Mapping[str, Region]) -> None:
        """Keep the SFU pod's hosts-rooms label (which its PDB selects) true while it has rooms."""
        region = regions.get(placed.region)
        if region is None:
            return
        pod = self._pod_body(placed.region, placed.pod)
        if pod is None:
            return
        await _sync_label(self.api, self.picture, region.spec.namespace, pod)

    # -- failover and live counters ----------------------------------------------------

    async def failover(self) -> None:
        now = time.time()
        moves = rooms_to_move(self.picture, now, self.failover_timeout)
        if not moves:
            return
        regions = self._regions()
        requests = {}
        for move in moves:
            body = self._room(move.room)
            if body is None:
                continue
            try:
                requests[move.room] = self._request(Room.model_validate(body))
            except pydantic.ValidationError:
                continue
        lost = self._lost_pods(moves)
        replacements = replace_rooms(
            self.picture, moves, requests, [PlacementRegion.of(r) for r in regions.values()], now
        )
        for (region, _, reason), rooms in lost.items():
            self.metrics.pod_lost(region, reason, rooms)
        for replacement in replacements:
            if isinstance(replacement.decision, Placement):
                self.metrics.placed(replacement.decision.region, None)
        for replacement in replacements:
            key = replacement.room
            message = f"Left SFU pod {replacement.previous.pod} ({replacement.reason.value})."
            if not isinstance(replacement.decision, Placement):
                self.migrating[key] = (replacement.reason.value, message)
            self.trigger(key)
            body = self._room(key)
            if body is not None:
                self._notices.put_nowait((time.monotonic(), body, message))
        log.info("rooms re-placed count=%d", len(replacements))

    def _lost_pods(self, moves: Sequence[RoomToMove]) -> dict[tuple[str, str, str], int]:
        """Rooms to move per lost pod: {(region, pod, reason): rooms}."""
        lost: dict[tuple[str, str, str], int] = {}
        for move in moves:
            state = self.picture.incarnation(move.placed.pod, move.placed.pod_uid)
            pod = (state.region if state is not None else "", move.placed.pod, move.reason.value)
            lost[pod] = lost.get(pod, 0) + 1
        return lost

    async def _post_notices(self) -> None:
        """Post the Events about moved rooms, a few at a time, once the room queue is idle
        (the moves' status writes go first) or the oldest has waited NOTICE_DELAY_SECONDS."""
        while True:
            batch = [await self._notices.get()]
            while len(batch) < events.CONCURRENCY and not self._notices.empty():
                batch.append(self._notices.get_nowait())
            left = batch[0][0] + NOTICE_DELAY_SECONDS - time.monotonic()
            if self.queue is not None and left > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.queue.wait_idle(), left)
            await asyncio.gather(
                *(
                    events.post(self.api, body, "Warning", "Migrating", message)
                    for _, body, message in batch
                )
            )

    async def rebalance(self) -> None:
        """Regions that opt in move still-empty rooms off hot pods (adapters/rebalancing.py);
        the Room reconciler writes each moved Room's status. A moved room keeps the time it
        has been empty, so moving it never postpones its closing."""
        now = time.time()
        moves = await self.rebalancer.run(
            self.api, self.picture, self._regions(), self._room, self.trigger
        )
        for move in moves:
            source = self.picture.incarnation(move.source.pod, move.source.pod_uid)
            region = source.region if source is not None else ""
            self.metrics.rooms_moved(region)
            self.metrics.placed(region, None)
            measured = source.measured.get(move.room) if source is not None else None
            if measured is not None and measured.empty_since_seconds is not None:
                since = now - measured.empty_since_seconds
                self._empty_since[move.room] = min(since, self._empty_since.get(move.room, now))

    async def flush_live(self) -> None:
        """Write participants/phase changes, close rooms empty past their timeout, and keep
        each SFU pod's hosts-rooms label (its PDB's selector) true exactly while it has rooms."""
        await self._close_and_count()
        self._publish_region_loads()
        for region in self._regions().values():
            store = self.indexes["region_sfu_pods"].get(region.metadata.name or "")
            for pod in list(store or ()):
                if not pod["metadata"].get("deletionTimestamp"):
                    await _sync_label(self.api, self.picture, region.spec.namespace, pod)

    def figures(self) -> ControlPlaneFigures | None:
        """The figures the metrics export (None until placements are restored)."""
        if not self.ready or self.rooms is None:
            return None
        rooms = self.rooms
        regions = {
            name: body
            for name, store in self.indexes["region_bodies"].items()
            for body in store
            if not body["metadata"].get("deletionTimestamp")
        }
        pods = {name: list(store) for name, store in self.indexes["region_sfu_pods"].items()}
        bodies = (body for body in (rooms.get(key) for key in rooms) if body is not None)
        return control_plane_figures(regions, pods, bodies, self.picture, time.time())

    def region_load(self, region: str) -> RegionLoad | None:
        return self._region_loads.get(region)

    def _publish_region_loads(self) -> None:
        """Recompute per-region aggregates; a change (after rounding) re-reconciles the
        Region, so its status follows the reports without a write per report."""
        now = time.time()
        for name in self._regions():
            totals = region_totals(self.picture, name, now)
            if not totals.pods:
                continue
            # Capacity of the pods that are up (ready, not draining) — not of those with a
            # fresh report this instant, which flickers and would cost a write per flicker.
            capacity = sum(p.capacity for p in self.picture.region_pods(name) if p.open)
            load = RegionLoad(
                rooms=totals.rooms, capacity=round(capacity, 1), load=round(totals.load, 1)
            )
            if self._region_loads.get(name) != load:
                self._region_loads[name] = load
                self.on_region_load_change(name)

    async def _close_and_count(self) -> None:
        for pod_state in list(self.picture.incarnations()):
            for key, measurement in list(pod_state.measured.items()):
                if key not in pod_state.rooms:
                    continue
                body = self._room(key)
                if body is None:
                    continue
                spec = body.get("spec") or {}
                timeout = float(
                    spec.get("emptyTimeoutSeconds", defaults.ROOM_EMPTY_TIMEOUT_SECONDS)
                )
                empty = self._empty_for(key, measurement)
                status = body.get("status") or {}
                if empty is not None and empty >= timeout:
                    self.closed[key] = kube.now_rfc3339()
                    unassign(self.picture, key)
                    await events.post(
                        self.api,
                        body,
                        "Normal",
                        "Closed",
                        f"The room was empty for {timeout:g}s and is closed.",
                    )
                    self.trigger(key)
                    self.trigger_pending()
                elif status.get("participants") != measurement.participants:
                    self.trigger(key)

    def _empty_for(self, key: str, measurement: RoomMeasurement) -> float | None:
        """Seconds a room has been empty: as its SFU reports, or since before rebalance
        moved it (the SFU it moved to counts from the move)."""
        empty = measurement.empty_since_seconds
        if measurement.participants > 0:
            self._empty_since.pop(key, None)
            return empty
        since = self._empty_since.get(key)
        if since is None:
            return empty
        return max(empty or 0.0, time.time() - since)

    # -- join API port -----------------------------------------------------------------

    async def ensure_placed(
        self,
        namespace: str,
        name: str,
        *,
        create: bool,
        max_participants: int | None,
        location: GeoLocation | None,
        region_hint: str | None,
        timeout: float,  # noqa: ASYNC109 - the join API's deadline for placement
    ) -> PlacedRoomInfo:
        key = room_key(namespace, name)
        started = time.monotonic()
        try:
            await asyncio.wait_for(self._restored.wait(), timeout)
        except TimeoutError:
            raise PlacementTimeout("the control plane is still starting") from None
        timeout -= time.monotonic() - started
        body = self._room(key)
        if body is None:
            if not create:
                raise RoomNotFound(key)
            spec: dict[str, Any] = {}
            if max_participants is not None:
                spec["maxParticipants"] = max_participants
            if location is not None:
                spec["location"] = location.model_dump(by_alias=True)
            await _create_room(self.api, namespace, name, spec)
        placed = self.picture.placement_of(key)
        if placed is not None and body is not None:
            status = body.get("status") or {}
            if status.get("podUID") == placed.pod_uid and status.get("endpoint"):
                return PlacedRoomInfo(
                    key, status.get("region", ""), status["pod"], placed.pod_uid, status["endpoint"]
                )
        future: asyncio.Future[PlacedRoomInfo] = asyncio.get_running_loop().create_future()
        self.waiters.setdefault(key, []).append(future)
        self.trigger(key)
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise PlacementTimeout(f"room {key} was not placed within {timeout:g}s") from None
        finally:
            waiters = self.waiters.get(key, [])
            if future in waiters:
                waiters.remove(future)

    def _resolve(
        self, key: str, *, info: PlacedRoomInfo | None = None, error: Exception | None = None
    ) -> None:
        for future in self.waiters.pop(key, []):
            if future.done():
                continue
            if info is not None:
                future.set_result(info)
            elif error is not None:
                future.set_exception(error)


def _scheduled_condition(status: Mapping[str, Any]) -> Mapping[str, Any]:
    conditions = status.get("conditions") or []
    return next((c for c in conditions if c.get("type") == "Scheduled"), {})


async def _sync_label(
    api: client.ApiClient, picture: CapacityPicture, namespace: str, pod: Mapping[str, Any]
) -> None:
    meta = pod["metadata"]
    hosts = picture.hosts_rooms(f"{namespace}/{meta['name']}", meta["uid"])
    current = (meta.get("labels") or {}).get(manifests.HOSTS_ROOMS) == manifests.HOSTS_ROOMS_VALUE
    if hosts != current:
        value = manifests.HOSTS_ROOMS_VALUE if hosts else None
        await objects.patch_merge(
            api,
            "Pod",
            meta["name"],
            namespace,
            {"metadata": {"labels": {manifests.HOSTS_ROOMS: value}}},
        )


async def _create_room(
    api: client.ApiClient, namespace: str, name: str, spec: Mapping[str, Any]
) -> None:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": ROOM.kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": dict(spec),
    }
    try:
        await client.CustomObjectsApi(api).create_namespaced_custom_object(
            GROUP, VERSION, namespace, ROOM.plural, body
        )
    except client.ApiException as error:
        if error.status == 409:
            return
        # The API server answers 404 for a missing namespace and 403 "being terminated" for
        # one being deleted; any other 403 is the operator's own RBAC, a real failure.
        if error.status == 404 or (error.status == 403 and "being terminated" in str(error.body)):
            raise NamespaceNotFound(namespace) from None
        raise


async def _delete_room(api: client.ApiClient, namespace: str, name: str) -> None:
    try:
        await client.CustomObjectsApi(api).delete_namespaced_custom_object(
            GROUP, VERSION, namespace, ROOM.plural, name
        )
    except client.ApiException as error:
        if error.status != 404:
            raise


# -- kopf handlers: feed the scheduler from watch events ----------------------------------


def _scheduler(memo: kopf.Memo) -> Scheduler:
    scheduler: Scheduler = memo["scheduler"]
    return scheduler


@kopf.on.event("namespaces")
async def namespace_changed(memo: kopf.Memo, **kwargs: Any) -> None:
    """Namespaces always exist, so this is the first handler kopf calls once its indexes
    are filled; a label change may admit waiting rooms into a Region (tenancy)."""
    scheduler = _scheduler(memo)
    scheduler.capture(kwargs)
    scheduler.trigger_pending()


@kopf.on.event(
    "pods",
    labels={keys.APP_MANAGED_BY: keys.MANAGED_BY_VALUE, keys.APP_COMPONENT: keys.COMPONENT_SFU},
)
async def sfu_pod_changed(
    event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **kwargs: Any
) -> None:
    scheduler = _scheduler(memo)
    scheduler.capture(kwargs)
    scheduler.on_pod(kube.snapshot(body), deleted=event["type"] == "DELETED")
