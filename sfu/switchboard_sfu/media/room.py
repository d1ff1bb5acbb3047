"""A room's media: who publishes what, who receives it, and the room's data channels."""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass

from aiortc import RTCDataChannel, RTCPeerConnection, RTCRtpTransceiver
from aiortc.mediastreams import MediaStreamTrack

from . import aiortc_adapter
from .codecs import CodecMismatchError, pin_to_codec
from .counters import MediaCounters
from .datachannels import DataChannelFanout, Envelope
from .publication import Publication
from .settings import ForwardingSettings
from .subscription import Subscription
from .tracks import ForwardedTrack

logger = logging.getLogger(__name__)


class DropReason(enum.StrEnum):
    """Why the media layer gave up on a participant (the signalling layer disconnects it)."""

    DATA_CHANNEL_STALLED = "data-channel-stalled"
    CONSENT_EXPIRED = "consent-expired"
    """The peer stopped answering ICE consent checks: it is gone (crashed, lid closed, offline)."""
    ICE_FAILED = "ice-failed"
    """ICE or DTLS never connected (aiortc cannot restart ICE: the client joins again)."""
    PEER_CLOSED = "disconnected"
    """The peer closed its peer connection (DTLS close) without leaving."""


ParticipantDropped = Callable[[str, DropReason], None]


@dataclass(frozen=True)
class RoomMediaUsage:
    """A room's media load right now, plus cumulative payload bytes for rate computation."""

    published_tracks: int
    forwarded_video_tracks: int
    forwarded_audio_tracks: int
    payload_bytes_received: int
    payload_bytes_sent: int

    @property
    def forwarded_tracks(self) -> int:
        return self.forwarded_video_tracks + self.forwarded_audio_tracks


class RoomMedia:
    """Media routing for one room; everything runs on the event loop that created it."""

    def __init__(
        self,
        room: str,
        *,
        counters: MediaCounters,
        settings: ForwardingSettings | None = None,
        on_drop: ParticipantDropped | None = None,
        data_envelope: Envelope | None = None,
    ) -> None:
        self.room = room
        self._counters = counters
        self._settings = settings or ForwardingSettings()
        self._on_drop = on_drop
        self._publications: dict[str, Publication] = {}
        self._subscriptions: dict[str, Subscription] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._data = DataChannelFanout(
            counters=counters,
            max_buffered_bytes=self._settings.max_data_channel_buffered_bytes,
            on_stalled=lambda participant: self._drop(participant, DropReason.DATA_CHANNEL_STALLED),
            envelope=data_envelope,
        )

    @property
    def publications(self) -> tuple[Publication, ...]:
        return tuple(self._publications.values())

    @property
    def subscriptions(self) -> tuple[Subscription, ...]:
        return tuple(self._subscriptions.values())

    def publish(
        self, participant_id: str, pc: RTCPeerConnection, track: MediaStreamTrack
    ) -> Publication:
        """Start forwarding a remote `track` of `pc`; call from the "track" event handler.

        The track itself is never read (its receiver's decoder is stopped): subscribe others
        to the returned publication instead.
        """
        transceiver = aiortc_adapter.transceiver_of(pc, track)
        publication = Publication(
            participant_id=participant_id,
            transceiver=transceiver,
            track=track,
            settings=self._settings,
            counters=self._counters,
        )
        self._publications[publication.id] = publication
        return publication

    def subscribe(
        self,
        participant_id: str,
        pc: RTCPeerConnection,
        publication: Publication,
        transceiver: RTCRtpTransceiver | None = None,
    ) -> Subscription:
        """Forward `publication` to `participant_id` over `pc`; renegotiate `pc` afterwards.

        Without `transceiver` a sendonly one is added (the SFU then offers); pass the
        transceiver of a subscriber's recvonly offer (WHEP) to answer it instead. Either way
        it is pinned to the publication's codec: CodecMismatchError if impossible.
        """
        codec = publication.codec
        if codec is None:
            raise CodecMismatchError("the publication has no negotiated codec yet")
        if transceiver is None:
            transceiver = pc.addTransceiver(publication.kind, direction="sendonly")
        else:
            transceiver.direction = "sendonly"
        pin_to_codec(transceiver, codec)
        track = ForwardedTrack(publication.kind, track_id=publication.id)
        transceiver.sender.replaceTrack(track)
        # Tracks of one publisher share a stream, so browsers lip-sync them.
        aiortc_adapter.set_sender_stream(transceiver.sender, publication.participant_id)
        subscription = Subscription(
            subscriber_id=participant_id,
            publication=publication,
            transceiver=transceiver,
            track=track,
            settings=self._settings,
            counters=self._counters,
        )
        publication.add_subscription(subscription)
        self._subscriptions[subscription.id] = subscription
        return subscription

    async def unsubscribe(self, subscription: Subscription) -> None:
        """Stop forwarding; the caller renegotiates (e.g. sets the transceiver inactive)."""
        self._subscriptions.pop(subscription.id, None)
        await subscription.close()

    async def unpublish(self, publication: Publication) -> None:
        """Stop a publication and every subscription to it."""
        self._publications.pop(publication.id, None)
        for subscription in publication.subscriptions:
            self._subscriptions.pop(subscription.id, None)
        await publication.close()

    def add_data_channel(self, participant_id: str, channel: RTCDataChannel) -> None:
        """Fan messages on `channel` out to the room's other channels with the same label."""
        self._data.add_channel(participant_id, channel)

    def data_channels(self, participant_id: str) -> dict[str, RTCDataChannel]:
        """The data channels of `participant_id` that the room routes, by label."""
        return self._data.channels_of(participant_id)

    async def remove_participant(self, participant_id: str) -> None:
        """Forget everything `participant_id` published, received or sent (PC is the caller's)."""
        self._data.remove_participant(participant_id)
        for subscription in self.subscriptions:
            if subscription.subscriber_id == participant_id:
                await self.unsubscribe(subscription)
        for publication in self.publications:
            if publication.participant_id == participant_id:
                await self.unpublish(publication)

    def usage(self) -> RoomMediaUsage:
        active = [s for s in self._subscriptions.values() if s.active]
        return RoomMediaUsage(
            published_tracks=len(self._publications),
            forwarded_video_tracks=sum(1 for s in active if s.kind == "video"),
            forwarded_audio_tracks=sum(1 for s in active if s.kind == "audio"),
            payload_bytes_received=sum(p.bytes_received for p in self._publications.values()),
            payload_bytes_sent=sum(s.bytes_sent for s in self._subscriptions.values()),
        )

    async def close(self) -> None:
        for publication in self.publications:
            await self.unpublish(publication)
        for subscription in self.subscriptions:
            await self.unsubscribe(subscription)

    def _drop(self, participant_id: str, reason: DropReason) -> None:
        logger.warning(
            "dropping participant room=%s participant=%s reason=%s",
            self.room,
            participant_id,
            reason,
        )
        self._counters.participants_dropped += 1
        task = asyncio.get_running_loop().create_task(self.remove_participant(participant_id))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
        if self._on_drop is not None:
            self._on_drop(participant_id, reason)
