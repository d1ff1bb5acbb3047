"""What every participant session shares, whatever its transport (WebSocket signalling,
WHIP or WHEP): its peer connections, what it publishes and receives, and the one way
it leaves the room.
"""

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from aiortc import RTCDataChannel, RTCPeerConnection
from aiortc.mediastreams import MediaStreamTrack

from switchboard_api.contract import JoinGrants, JoinTokenClaims, MigrateMessage
from switchboard_sfu.media import (
    DropReason,
    Publication,
    Subscription,
    create_peer_connection,
    watch_peer_connection,
)
from switchboard_sfu.rooms import MemberKind, Room

if TYPE_CHECKING:
    from switchboard_sfu.service import SfuService

log = logging.getLogger(__name__)


def new_session_id(prefix: str) -> str:
    """An unguessable session id: WHIP/WHEP resource URLs are capabilities built from it."""
    return f"{prefix}_{secrets.token_urlsafe(16)}"


class Participant:
    """One participant session in one room; subclasses add the transport."""

    kind: MemberKind
    id_prefix = "PA"

    def __init__(self, service: "SfuService", room: Room, claims: JoinTokenClaims) -> None:
        self.session_id = new_session_id(self.id_prefix)
        self.identity = claims.sub
        self.grants: JoinGrants = claims.grants
        self.room = room
        self.service = service
        self.metadata = ""
        self.publications: dict[str, Publication] = {}
        self.subscriptions: dict[str, Subscription] = {}
        """Keyed by the publication id they forward."""
        self.closed = False
        self.released = asyncio.Event()
        self._peer_connections: list[RTCPeerConnection] = []
        self._new_publications: list[Publication] = []
        self._tasks: set[asyncio.Task[None]] = set()

    # Member protocol defaults (transports that can talk to the client override them).

    def send_event(self, event: dict[str, object]) -> None:
        """Transports without a message channel drop room events."""

    def send_migrate(self, message: MigrateMessage) -> bool:
        """Transports without a message channel cannot be told to migrate."""
        return False

    async def close(self, reason: str) -> None:
        await self.release(reason)

    def publication_added(self, publication: Publication, publisher: "Participant") -> None:
        """Another participant published a track."""

    def publication_removed(self, publication: Publication) -> None:
        """A track this participant may receive is gone; its subscription is already closed."""
        self.subscriptions.pop(publication.id, None)

    # Peer connections.

    def new_peer_connection(self) -> RTCPeerConnection:
        pc = create_peer_connection(self.service.ice_settings)
        self._peer_connections.append(pc)
        watch_peer_connection(pc, lambda reason: self._peer_connection_ended(pc, reason))
        return pc

    def _peer_connection_ended(self, pc: RTCPeerConnection, reason: DropReason) -> None:
        """A peer connection stopped working without this session closing it: its client is
        gone (or, aiortc having no ICE restart, must join again), so the session ends."""
        if self.closed or pc not in self._peer_connections:
            return
        log.warning(
            "peer connection lost room=%s session=%s reason=%s",
            self.room.key,
            self.session_id,
            reason,
        )
        self.service.metrics.participants_dropped.labels(str(reason)).inc()
        self.spawn(self.close(str(reason)))

    async def close_peer_connection(self, pc: RTCPeerConnection) -> None:
        if pc in self._peer_connections:
            self._peer_connections.remove(pc)
        with contextlib.suppress(Exception):
            await pc.close()

    def accept_published_tracks(self, pc: RTCPeerConnection) -> None:
        """Publish every remote track and data channel `pc` receives into the room."""

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            media = self.room.media
            if media is None or self.closed:
                return
            publication = media.publish(self.session_id, pc, track)
            self.publications[publication.id] = publication
            self._new_publications.append(publication)

        @pc.on("datachannel")
        def on_datachannel(channel: RTCDataChannel) -> None:
            media = self.room.media
            if media is None or self.closed or not self.grants.data:
                channel.close()
                return
            media.add_data_channel(self.session_id, channel)

    def take_new_publications(self) -> list[Publication]:
        """Publications created since the last call (after an offer was applied)."""
        new, self._new_publications = self._new_publications, []
        return new

    def info(self) -> dict[str, object]:
        return {
            "sessionId": self.session_id,
            "identity": self.identity,
            "transport": str(self.kind),
            "metadata": self.metadata,
        }

    # Leaving.

    def spawn(self, work: Coroutine[Any, Any, None] | asyncio.Future[None]) -> None:
        """Run `work` in the background, holding a reference until it is done."""
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def release(self, reason: str) -> None:
        """Leave the room and free everything this session holds; idempotent."""
        if self.closed:
            await self.released.wait()
            return
        self.closed = True
        try:
            for publication in list(self.publications.values()):
                await self.service.withdraw_publication(self.room, publication)
            self.publications.clear()
            media = self.room.media
            if media is not None:
                await media.remove_participant(self.session_id)
            self.subscriptions.clear()
            await self.service.remove_member(self.room, self, reason)
            for pc in self._peer_connections:
                with contextlib.suppress(Exception):
                    await pc.close()
            self._peer_connections.clear()
        finally:
            self.released.set()
