"""The SFU service: admission of joins, room lifecycle commands from the control plane,
fencing, draining and the numbers reported upstream. Transports (WebSocket signalling,
WHIP, WHEP) call in here; the media core does the forwarding.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from switchboard_api.contract import (
    CapacityReport,
    JoinGrants,
    JoinTokenClaims,
    LeaseStatus,
    MigrateMessage,
    MigrateReason,
    ReportResponse,
    join_url,
)
from switchboard_sfu.config import SfuConfig
from switchboard_sfu.iceservers import IceServer, IceServerProvider
from switchboard_sfu.jointokens import JoinKeyring, JoinTokenVerifier, PodIdentity
from switchboard_sfu.lease import LeaseState
from switchboard_sfu.lifecycle import Lifecycle
from switchboard_sfu.loadmeter import LoadMeter
from switchboard_sfu.media import DropReason, IceSettings, MediaCounters, Publication, RoomMedia
from switchboard_sfu.metrics import PodGauges, SfuMetrics
from switchboard_sfu.peers import PeerKey
from switchboard_sfu.refusals import JoinRefused, RefusalCode
from switchboard_sfu.rooms import Member, MemberKind, Room, RoomRegistry

if TYPE_CHECKING:
    from switchboard_sfu.participant import Participant

log = logging.getLogger(__name__)


class Grant(StrEnum):
    """The join-token grants (fields of JoinGrants) an action needs."""

    PUBLISH = "publish"
    SUBSCRIBE = "subscribe"
    DATA = "data"


def require_grant(grants: JoinGrants, grant: Grant) -> None:
    if not getattr(grants, grant):
        raise JoinRefused(RefusalCode.MISSING_GRANT, f"the join token does not grant {grant}")


class SfuService:
    """Everything per pod that outlives a single participant."""

    def __init__(self, config: SfuConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self.lifecycle = Lifecycle()
        self.lease = LeaseState(config.failover_timeout_seconds, time.monotonic())
        self.peer_key = PeerKey()
        self.metrics = SfuMetrics()
        self.media_counters = MediaCounters()
        self.ice_settings = IceSettings(announce_address=config.announce_address)
        self.registry = RoomRegistry(
            self.lifecycle,
            default_max_participants=config.default_max_participants,
            managed=config.report_url is not None,
        )
        self.join_keys = JoinKeyring(config.join_keys_dir)
        self.verifier = JoinTokenVerifier(
            self.join_keys, PodIdentity(config.pod_name, config.pod_uid)
        )
        self.ice_servers = IceServerProvider(
            config.turn_uris, config.turn_secret_file, config.turn_credential_ttl_seconds
        )
        self.load = LoadMeter(self.media_counters)
        self.metrics.register_pod(self.pod_gauges, self.media_counters)
        self.stopped = asyncio.Event()
        """Set when the process should exit (drain finished)."""
        self._drain_grace = config.drain_grace_seconds
        self._membership_changed = asyncio.Event()
        self._background: set[asyncio.Future[None]] = set()

    # Admission.

    def admit(
        self,
        token: str | None,
        kind: MemberKind,
        needs: tuple[Grant, ...],
        room_key: str | None = None,
    ) -> tuple[JoinTokenClaims, Room, Member | None]:
        """Verify `token`, check grants and admission; the caller adds its member next,
        without awaiting in between. Nothing is allocated when this raises JoinRefused."""
        try:
            claims = self.verifier.verify(token, self.clock())
            if room_key is not None and claims.room != room_key:
                raise JoinRefused(
                    RefusalCode.WRONG_ROOM,
                    f"token is for room {claims.room}, not {room_key}",
                )
            for grant in needs:
                require_grant(claims.grants, grant)
            self._check_term(claims)
            admission = self.registry.admit(claims, kind)
        except JoinRefused as refusal:
            self._refused(kind, refusal)
            raise
        room = admission.room
        if room.media is None:
            room.media = RoomMedia(
                room.key,
                counters=self.media_counters,
                on_drop=lambda session_id, reason: self._media_dropped(room, session_id, reason),
            )
        self.metrics.joins.labels(str(kind)).inc()
        return claims, room, admission.replaces

    def check_open(self, kind: MemberKind) -> None:
        """JoinRefused if the pod takes no joins at all now (draining or fenced): said
        before a join message is awaited, whatever the token."""
        try:
            self.lifecycle.check_admission()
        except JoinRefused as refusal:
            self._refused(kind, refusal)
            raise

    def _refused(self, kind: MemberKind, refusal: JoinRefused) -> None:
        self.metrics.joins_refused.labels(str(refusal.code)).inc()
        log.info("join refused transport=%s code=%s", kind, refusal.code)

    def _check_term(self, claims: JoinTokenClaims) -> None:
        """A token of an older term than the newest applied is good only for a room that
        the newer term assigns here: the older leader may have placed it from a picture
        its successor no longer holds."""
        term = self.lease.term
        if claims.term is None or term is None or claims.term >= term:
            return
        room = self.registry.get(claims.room)
        if room is None or not room.assigned:
            raise JoinRefused(
                RefusalCode.ROOM_NOT_ASSIGNED,
                f"token of term {claims.term} names a room that term {term} has not "
                "placed on this pod; ask the join API",
            )

    def add_member(self, room: Room, member: Member) -> None:
        self.registry.add(room, member)
        log.info(
            "participant joined room=%s identity=%s session=%s transport=%s",
            room.key,
            member.identity,
            member.session_id,
            member.kind,
        )

    async def remove_member(self, room: Room, member: Member, reason: str) -> None:
        """Account for a participant that is gone (its session cleans up its own media)."""
        if not self.registry.remove(member, room):
            return
        self._membership_changed.set()
        log.info(
            "participant left room=%s identity=%s session=%s reason=%s",
            room.key,
            member.identity,
            member.session_id,
            reason,
        )
        room.broadcast(
            {
                "type": "participantLeft",
                "sessionId": member.session_id,
                "identity": member.identity,
                "reason": reason,
            }
        )
        if self.registry.get(room.key) is not room:
            await self._close_media(room)

    def _media_dropped(self, room: Room, session_id: str, reason: DropReason) -> None:
        member = room.members.get(session_id)
        if member is None:
            return
        self.metrics.participants_dropped.labels(str(reason)).inc()
        self._spawn(member.close(str(reason)))

    # Publications.

    def track_info(self, room: Room, publication: Publication) -> dict[str, object]:
        publisher = room.members.get(publication.participant_id)
        codec = publication.codec
        info: dict[str, object] = {
            "trackId": publication.id,
            "sessionId": publication.participant_id,
            "identity": publisher.identity if publisher is not None else None,
            "kind": publication.kind,
            "codec": codec.mimeType if codec is not None else None,
        }
        if publication.simulcast:
            info["layers"] = list(publication.layer_names)
        return info

    def room_tracks(self, room: Room) -> list[dict[str, object]]:
        media = room.media
        if media is None:
            return []
        return [self.track_info(room, publication) for publication in media.publications]

    def announce_publications(
        self, room: Room, publisher: "Participant", publications: list[Publication]
    ) -> None:
        """Tell the room about new tracks; members that auto-subscribe subscribe."""
        for publication in publications:
            log.info(
                "track published room=%s session=%s kind=%s",
                room.key,
                publisher.session_id,
                publication.kind,
            )
            room.broadcast({"type": "trackPublished", "track": self.track_info(room, publication)})
            for member in list(room.members.values()):
                if member is not publisher:
                    member.publication_added(publication, publisher)

    async def withdraw_publication(self, room: Room, publication: Publication) -> None:
        """Stop a track and tell the room (subscriptions to it end too)."""
        media = room.media
        if media is not None:
            await media.unpublish(publication)
        room.broadcast(
            {"type": "trackUnpublished", "trackId": publication.id},
            exclude=publication.participant_id,
        )
        for member in list(room.members.values()):
            if member.session_id != publication.participant_id:
                member.publication_removed(publication)

    def ice_servers_for(self, identity: str) -> list[IceServer]:
        return self.ice_servers.for_identity(identity, self.clock())

    # Control-plane commands, fencing and draining.

    def end_room(self, room: Room, reason: MigrateReason) -> "asyncio.Future[None]":
        """Forget a room now, tell its participants to move (reason given) and disconnect
        them in the background; returns the background work.

        Never awaited by the report loop: a slow client must not delay the next report.
        `migrate` is queued ahead of the disconnect notice on each participant's channel.
        """
        self.registry.discard(room)
        message = self.migrate_message(room, reason)
        members = list(room.members.values())
        for member in members:
            self.send_migrate(member, message)
        log.info("room ended room=%s reason=%s participants=%d", room.key, reason, len(members))
        return self._spawn(self._disconnect(room, members, str(reason)))

    async def _disconnect(self, room: Room, members: list[Member], reason: str) -> None:
        await asyncio.gather(*(member.close(reason) for member in members), return_exceptions=True)
        await self._close_media(room)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> "asyncio.Future[None]":
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def migrate_message(self, room: Room, reason: MigrateReason) -> MigrateMessage:
        """The `migrate` for `room`'s participants: `rejoin` names the room's join endpoint,
        unless the room is closing (nowhere to go) or the pod knows no join API."""
        base = self.config.join_api_url
        rejoin = (
            None if base is None or reason == MigrateReason.CLOSING else join_url(base, room.key)
        )
        return MigrateMessage(room=room.key, reason=reason, rejoin=rejoin)

    def send_migrate(self, member: Member, message: MigrateMessage) -> None:
        if member.send_migrate(message):
            self.metrics.migrations_requested.labels(str(message.reason)).inc()

    async def apply_response(self, response: ReportResponse, report_sent_at: float) -> None:
        """Apply an acknowledged ReportResponse: assignments, closes, drain."""
        if self.lifecycle.unfence():
            log.info("accepting joins again after fencing")
        closed = set(response.close)
        # A room both assigned and closed in one response is closed, not recreated.
        assignments = [a for a in response.assignments if a.room not in closed]
        for room in self.registry.apply_assignments(assignments, report_sent_at):
            if room.key not in closed:
                self.end_room(room, MigrateReason.ROOM_MOVED)
        for key in response.close:
            room = self.registry.get(key)
            if room is not None:
                self.end_room(room, MigrateReason.CLOSING)
        if response.drain:
            deadline = _seconds_until(response.drain_deadline, self.clock())
            self.start_drain("control-plane", deadline)

    async def fence(self) -> None:
        """The lease ended while the control plane is evidently up without this pod (or,
        without a lease, reports went unacknowledged past the failover timeout): it may
        have placed these rooms elsewhere, so stop serving them."""
        if not self.lifecycle.fence():
            return
        for room in list(self.registry):
            self.end_room(room, MigrateReason.FENCED)

    def lease_status(self, nonce: str) -> LeaseStatus:
        """This pod's answer to a peer's lease check (signed by the peer port)."""
        last = self.lease.last
        return LeaseStatus(
            pod=self.config.pod_name,
            pod_uid=self.config.pod_uid,
            nonce=nonce,
            term=last.term if last is not None else None,
            ack_age_seconds=self.lease.ack_age(time.monotonic()),
            fenced=self.lifecycle.fenced,
        )

    def start_drain(self, cause: str, deadline_seconds: float | None = None) -> None:
        grace = self.config.drain_grace_seconds
        if deadline_seconds is not None:
            grace = min(grace, max(0.0, deadline_seconds))
        if not self.lifecycle.start_drain(cause):
            return
        self._drain_grace = grace
        for room in list(self.registry):
            room_message = self.migrate_message(room, MigrateReason.DRAINING)
            for member in list(room.members.values()):
                self.send_migrate(member, room_message)

    async def run_drain(self) -> None:
        """Wait for a drain to start, then until rooms are empty or the grace period ends;
        then disconnect whoever is left and set `stopped`."""
        await self.lifecycle.drain_requested.wait()
        grace = self._drain_grace
        deadline = time.monotonic() + grace
        log.info("drain waiting for participants to leave grace_seconds=%.1f", grace)
        while self.registry.participants and time.monotonic() < deadline:
            self._membership_changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    await self._membership_changed.wait()
        remaining = self.registry.participants
        for room in list(self.registry):
            await self._disconnect(room, list(room.members.values()), "draining")
        log.info("drain finished participants_disconnected=%d", remaining)
        self.stopped.set()

    async def close_all(self) -> None:
        """Disconnect everyone (process exit) and let background disconnects finish."""
        for room in list(self.registry):
            await self._disconnect(room, list(room.members.values()), "shutdown")
        await asyncio.gather(*self._background, return_exceptions=True)

    async def _close_media(self, room: Room) -> None:
        media, room.media = room.media, None
        if media is not None:
            await media.close()

    # Reporting.

    def build_report(self, sequence: int, sent_at: datetime) -> CapacityReport:
        self.join_keys.refresh()
        sample = self.load.sample()
        rooms = self.registry.usage(self.load.room_usage)
        return CapacityReport(
            pod_name=self.config.pod_name,
            pod_uid=self.config.pod_uid,
            namespace=self.config.pod_namespace,
            region=self.config.region,
            sequence=sequence,
            sent_at=sent_at,
            draining=self.lifecycle.draining,
            fenced=self.lifecycle.fenced,
            capacity=self.config.capacity,
            load=sum(room.load for room in rooms),
            cpu_cores=sample.cpu_cores,
            participants=self.registry.participants,
            published_tracks=sum(room.published_tracks for room in rooms),
            forwarded_tracks=sum(room.forwarded_tracks for room in rooms),
            bitrate_in_bps=sample.bitrate_in_bps,
            bitrate_out_bps=sample.bitrate_out_bps,
            rooms=rooms,
            join_key_ids=self.join_keys.kids(),
        )

    def pod_gauges(self) -> PodGauges:
        rooms = self.registry.usage(self.load.room_usage)
        return PodGauges(
            rooms=len(rooms),
            participants=self.registry.participants,
            published_tracks=sum(room.published_tracks for room in rooms),
            forwarded_tracks=sum(room.forwarded_tracks for room in rooms),
            load_units=sum(room.load for room in rooms),
            capacity_units=self.config.capacity,
            draining=self.lifecycle.draining,
            fenced=self.lifecycle.fenced,
        )


def _seconds_until(deadline: datetime | None, now_unix: float) -> float | None:
    return None if deadline is None else deadline.timestamp() - now_unix
