"""WebSocket signalling (sfu/PROTOCOL.md): join with a token, publish over a client-offered
peer connection, subscribe over an SFU-offered one, room events, trickle ICE, `migrate`.

Each participant has up to two peer connections, as in LiveKit: the *publisher* one is
always offered by the client (publishing and data channels), the *subscriber* one always
by the SFU (forwarded tracks), so offers never collide.
"""

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.exceptions import InvalidAccessError, InvalidStateError, OperationError

from switchboard_api.contract import JoinTokenClaims, MigrateMessage
from switchboard_sfu import appkeys
from switchboard_sfu.media import CodecMismatchError, Publication, Subscription
from switchboard_sfu.negotiation import (
    MAX_SDP_BYTES,
    answer_publisher_offer,
    parse_candidate,
    summarize_offer,
)
from switchboard_sfu.outbox import Outbox
from switchboard_sfu.participant import Participant
from switchboard_sfu.refusals import JoinRefused, RefusalCode
from switchboard_sfu.rooms import MemberKind, Room
from switchboard_sfu.service import Grant, require_grant

if TYPE_CHECKING:
    from switchboard_sfu.service import SfuService

log = logging.getLogger(__name__)

JOIN_TIMEOUT_SECONDS = 10.0
"""A connection that has not sent `join` by then is closed."""
NEGOTIATION_TIMEOUT_SECONDS = 20.0
"""An SFU offer unanswered this long ends the session."""
HEARTBEAT_SECONDS = 20.0
MAX_MESSAGE_BYTES = MAX_SDP_BYTES + 4096
MAX_METADATA_BYTES = 4096
CLOSE_TIMEOUT_SECONDS = 2.0
MAX_VIDEO_HEIGHT = 16384


class ProtocolError(Exception):
    """A client message the SFU cannot act on; answered with an `error` message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def refusal_close_code(refusal: JoinRefused) -> int:
    """WebSocket close code for a refused join: 4000 + the HTTP status (4401, 4403, 4503)."""
    return 4000 + int(refusal.http_status)


@dataclass(frozen=True)
class JoinRequest:
    token: str | None
    auto_subscribe: bool
    metadata: str


async def handle_signalling(request: web.Request) -> web.WebSocketResponse:
    """GET /ws: upgrade, wait for `join`, admit or refuse, then serve the session."""
    service = request.app[appkeys.SERVICE]
    ws = web.WebSocketResponse(
        heartbeat=HEARTBEAT_SECONDS, max_msg_size=MAX_MESSAGE_BYTES, compress=False
    )
    await ws.prepare(request)
    try:
        # A pod that takes no joins says so at once, and so does one that starts draining
        # while the join message is awaited: a `draining` refusal sends the client back to
        # the join API, where a `bad-request` timeout would end it; and a socket held open
        # for its join would hold up the drained process's exit.
        service.check_open(MemberKind.SIGNALLING)
        join = await _receive_join(ws, service)
        claims, room, replaced = service.admit(join.token, MemberKind.SIGNALLING, needs=())
    except JoinRefused as refusal:
        with contextlib.suppress(ConnectionError):
            await ws.send_json({"type": "error", **refusal.to_json()})
        with contextlib.suppress(ConnectionError, TimeoutError):
            async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
                await ws.close(code=refusal_close_code(refusal), message=refusal.code.encode())
        return ws
    session = SignallingParticipant(service, room, claims=claims, ws=ws, request=request, join=join)
    service.add_member(room, session)
    if replaced is not None:
        session.spawn(replaced.close("duplicate-identity"))
    await session.serve()
    return ws


async def _receive_join(ws: web.WebSocketResponse, service: "SfuService") -> JoinRequest:
    """The join message, or JoinRefused: malformed, not in time, or the pod started
    draining first (refused as any join on a draining pod is)."""
    receive = asyncio.ensure_future(ws.receive())
    drain = asyncio.ensure_future(service.lifecycle.drain_requested.wait())
    try:
        await asyncio.wait(
            (receive, drain), timeout=JOIN_TIMEOUT_SECONDS, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        for waiting in (receive, drain):
            waiting.cancel()
    if not receive.done():
        if drain.done():
            service.check_open(MemberKind.SIGNALLING)  # draining is one-way: it refuses
        raise JoinRefused(RefusalCode.BAD_REQUEST, "no join message in time")
    message = receive.result()
    if message.type != WSMsgType.TEXT:
        raise JoinRefused(RefusalCode.BAD_REQUEST, "expected a join message")
    try:
        body = json.loads(message.data)
    except ValueError:
        raise JoinRefused(RefusalCode.BAD_REQUEST, "message is not JSON") from None
    if not isinstance(body, dict) or body.get("type") != "join":
        raise JoinRefused(RefusalCode.BAD_REQUEST, "the first message must be join")
    token = body.get("token")
    metadata = body.get("metadata", "")
    if not isinstance(metadata, str) or len(metadata.encode()) > MAX_METADATA_BYTES:
        raise JoinRefused(RefusalCode.BAD_REQUEST, "metadata must be a string of at most 4 KiB")
    return JoinRequest(
        token=token if isinstance(token, str) else None,
        auto_subscribe=bool(body.get("autoSubscribe", True)),
        metadata=metadata,
    )


class SignallingParticipant(Participant):
    """A participant connected over the signalling WebSocket."""

    kind = MemberKind.SIGNALLING

    def __init__(
        self,
        service: "SfuService",
        room: Room,
        *,
        claims: JoinTokenClaims,
        ws: web.WebSocketResponse,
        request: web.Request,
        join: JoinRequest,
    ) -> None:
        super().__init__(service, room, claims)
        self.metadata = join.metadata
        self.auto_subscribe = join.auto_subscribe and claims.grants.subscribe
        self._ws = ws
        self._request = request
        self._outbox = Outbox(ws, on_overflow=self._drop)
        self._publisher_pc: RTCPeerConnection | None = None
        self._subscriber: SubscriberNegotiation | None = None
        self._close_reason = "left"
        self._closing = False

    # Member protocol.

    def send_event(self, event: dict[str, object]) -> None:
        self._outbox.put(event)

    def send_migrate(self, message: MigrateMessage) -> bool:
        self._outbox.put(message.to_wire())
        return True

    async def close(self, reason: str) -> None:
        """Server-side disconnect: say why, close the socket, wait until released."""
        if not self._closing:
            self._closing = True
            self._close_reason = reason
            self._outbox.put({"type": "disconnected", "reason": reason})
            self._outbox.close()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
                    await self._outbox.flush()
            try:
                async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
                    await self._ws.close(message=reason.encode()[:120])
            except (TimeoutError, ConnectionError):
                self._abort()
        await self.released.wait()

    def publication_added(self, publication: Publication, publisher: Participant) -> None:
        if self.auto_subscribe and not self.closed:
            self.spawn(self._subscribe_quietly([publication.id]))

    def publication_removed(self, publication: Publication) -> None:
        subscription = self.subscriptions.pop(publication.id, None)
        if subscription is not None and self._subscriber is not None and not self.closed:
            subscription.transceiver.direction = "inactive"
            self._subscriber.request_offer()

    # Session loop.

    async def serve(self) -> None:
        writer = asyncio.ensure_future(self._outbox.run())
        try:
            self._outbox.put(self._joined_message())
            self.room.broadcast(
                {"type": "participantJoined", "participant": self.info()},
                exclude=self.session_id,
            )
            if self.auto_subscribe:
                await self._subscribe_quietly(
                    [
                        p.id
                        for p in (self.room.media.publications if self.room.media else ())
                        if p.participant_id != self.session_id
                    ]
                )
            async for message in self._ws:
                if message.type != WSMsgType.TEXT:
                    continue
                await self._dispatch(message.data)
                if self._closing:
                    break
        finally:
            self._outbox.close()
            if self._close_reason == "left" and not self._closing:
                self._close_reason = "disconnected"
            await self.release(self._close_reason)
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
                    await writer
            writer.cancel()
            if not self._ws.closed:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
                        await self._ws.close()

    def _joined_message(self) -> dict[str, object]:
        return {
            "type": "joined",
            "room": self.room.key,
            "sessionId": self.session_id,
            "identity": self.identity,
            "grants": self.grants.to_wire(),
            "participants": [
                member.info()
                for member in self.room.members.values()
                if member.session_id != self.session_id
            ],
            "tracks": self.service.room_tracks(self.room),
            "iceServers": [
                server.to_json() for server in self.service.ice_servers_for(self.identity)
            ],
        }

    async def _dispatch(self, text: str) -> None:
        request_id: object = None
        try:
            body = json.loads(text)
            if not isinstance(body, dict):
                raise ProtocolError("bad-request", "messages are JSON objects")
            request_id = body.get("requestId")
            handler = self._handlers().get(str(body.get("type")))
            if handler is None:
                raise ProtocolError("bad-request", f"unknown message type {body.get('type')!r}")
            await handler(body)
        except ValueError as error:
            self._error("bad-request", f"invalid message: {error}", request_id)
        except ProtocolError as error:
            self._error(error.code, error.message, request_id)
        except JoinRefused as refusal:
            self._error(str(refusal.code), refusal.message, request_id)
        except CodecMismatchError as error:
            self._error("codec-mismatch", str(error), request_id)
        except (InvalidAccessError, InvalidStateError, OperationError) as error:
            self._error("bad-request", f"rejected by WebRTC: {error}", request_id)
        except Exception:
            # A bug, not the client's fault: end the session rather than leave it half-done.
            log.exception("signalling message failed session=%s", self.session_id)
            self._error("internal-error", "the SFU could not handle this message", request_id)
            self._close_reason = "internal-error"
            self._closing = True

    def _handlers(self) -> dict[str, Any]:
        return {
            "publish": self._on_publish,
            "unpublish": self._on_unpublish,
            "subscribe": self._on_subscribe,
            "unsubscribe": self._on_unsubscribe,
            "answer": self._on_answer,
            "candidate": self._on_candidate,
            "setMetadata": self._on_set_metadata,
            "setVideoLayer": self._on_set_video_layer,
            "leave": self._on_leave,
            "ping": self._on_ping,
        }

    def _error(self, code: str, message: str, request_id: object) -> None:
        error: dict[str, object] = {"type": "error", "error": code, "message": message}
        if request_id is not None:
            error["requestId"] = request_id
        self._outbox.put(error)

    # Message handlers.

    async def _on_publish(self, body: dict[str, Any]) -> None:
        sdp = _sdp(body)
        offer = summarize_offer(sdp)
        if offer.media_kinds:
            require_grant(self.grants, Grant.PUBLISH)
        if offer.data:
            require_grant(self.grants, Grant.DATA)
        if self._publisher_pc is None:
            self._publisher_pc = self.new_peer_connection()
            self.accept_published_tracks(self._publisher_pc)
        try:
            answer = await answer_publisher_offer(self._publisher_pc, sdp)
        except Exception:
            await self._discard_publisher_connection()
            raise
        publications = self.take_new_publications()
        for publication in publications:
            publication.layers_needed = self._layers_needed
        self._outbox.put(
            {
                "type": "answer",
                "target": "publisher",
                "sdp": answer,
                "tracks": [self.service.track_info(self.room, p) for p in publications],
            }
        )
        self.service.announce_publications(self.room, self, publications)

    async def _discard_publisher_connection(self) -> None:
        """After a failed offer the connection is stuck half-negotiated (aiortc has no
        rollback): withdraw what it published and start afresh on the next offer."""
        for publication in self.take_new_publications():
            self.publications.pop(publication.id, None)
            await self.service.withdraw_publication(self.room, publication)
        pc, self._publisher_pc = self._publisher_pc, None
        if pc is not None:
            await self.close_peer_connection(pc)

    async def _on_unpublish(self, body: dict[str, Any]) -> None:
        for track_id in _track_ids(body):
            publication = self.publications.pop(track_id, None)
            if publication is None:
                raise ProtocolError("track-not-found", f"you do not publish track {track_id}")
            await self.service.withdraw_publication(self.room, publication)

    async def _on_subscribe(self, body: dict[str, Any]) -> None:
        require_grant(self.grants, Grant.SUBSCRIBE)
        missing = await self._subscribe(_track_ids(body))
        if missing:
            raise ProtocolError("track-not-found", f"no such tracks: {', '.join(missing)}")

    async def _subscribe_quietly(self, track_ids: list[str]) -> None:
        # Auto-subscription has no request to answer; failures are reported as events.
        with contextlib.suppress(ProtocolError, JoinRefused):
            await self._subscribe(track_ids)

    async def _subscribe(self, track_ids: list[str]) -> list[str]:
        media = self.room.media
        if media is None or self.closed:
            return track_ids
        publications = {p.id: p for p in media.publications}
        missing = []
        added = False
        for track_id in track_ids:
            publication = publications.get(track_id)
            if publication is None or publication.participant_id == self.session_id:
                missing.append(track_id)
                continue
            if track_id in self.subscriptions:
                continue
            if self._subscriber is None:
                self._subscriber = SubscriberNegotiation(self)
            try:
                subscription = media.subscribe(self.session_id, self._subscriber.pc, publication)
            except CodecMismatchError as error:
                self._outbox.put(
                    {"type": "subscriptionFailed", "trackId": track_id, "reason": str(error)}
                )
                continue
            subscription.layer_changed = self._layer_changed
            self.subscriptions[track_id] = subscription
            added = True
        if added and self._subscriber is not None:
            self._subscriber.request_offer()
        return missing

    async def _on_unsubscribe(self, body: dict[str, Any]) -> None:
        media = self.room.media
        changed = False
        for track_id in _track_ids(body):
            subscription = self.subscriptions.pop(track_id, None)
            if subscription is None:
                continue
            if media is not None:
                await media.unsubscribe(subscription)
            subscription.transceiver.direction = "inactive"
            changed = True
        if changed and self._subscriber is not None:
            self._subscriber.request_offer()

    async def _on_answer(self, body: dict[str, Any]) -> None:
        if self._subscriber is None:
            raise ProtocolError("bad-request", "no subscriber offer is outstanding")
        await self._subscriber.apply_answer(_sdp(body))

    async def _on_candidate(self, body: dict[str, Any]) -> None:
        target = body.get("target")
        pc = (
            self._publisher_pc
            if target == "publisher"
            else self._subscriber.pc
            if target == "subscriber" and self._subscriber
            else None
        )
        if pc is None:
            raise ProtocolError("bad-request", "candidate for an unknown peer connection")
        candidate = body.get("candidate")
        if candidate is None:
            await pc.addIceCandidate(None)
            return
        if not isinstance(candidate, dict) or not isinstance(candidate.get("candidate"), str):
            raise ProtocolError("bad-request", "candidate must be an RTCIceCandidateInit")
        if not candidate["candidate"]:
            await pc.addIceCandidate(None)  # an empty candidate also ends gathering
            return
        mline = candidate.get("sdpMLineIndex")
        await pc.addIceCandidate(
            parse_candidate(
                candidate["candidate"],
                candidate.get("sdpMid"),
                mline if isinstance(mline, int) else None,
            )
        )

    async def _on_set_metadata(self, body: dict[str, Any]) -> None:
        metadata = body.get("metadata")
        if not isinstance(metadata, str) or len(metadata.encode()) > MAX_METADATA_BYTES:
            raise ProtocolError("bad-request", "metadata must be a string of at most 4 KiB")
        self.metadata = metadata
        self.room.broadcast(
            {"type": "participantUpdated", "participant": self.info()}, exclude=self.session_id
        )

    async def _on_set_video_layer(self, body: dict[str, Any]) -> None:
        track_id = body.get("trackId")
        subscription = self.subscriptions.get(track_id) if isinstance(track_id, str) else None
        if subscription is None:
            raise ProtocolError("track-not-found", f"you do not receive track {track_id}")
        rid = body.get("rid")
        if rid is not None and rid not in subscription.publication.layer_names:
            raise ProtocolError("bad-request", f"track {track_id} has no layer {rid!r}")
        max_height = body.get("maxHeight")
        if max_height is not None and (
            not isinstance(max_height, int)
            or isinstance(max_height, bool)
            or not 0 < max_height <= MAX_VIDEO_HEIGHT
        ):
            raise ProtocolError("bad-request", "maxHeight must be a positive number of pixels")
        subscription.request_layer(rid=rid, max_height=max_height)

    async def _on_leave(self, body: dict[str, Any]) -> None:
        self._close_reason = "left"
        self._closing = True

    async def _on_ping(self, body: dict[str, Any]) -> None:
        self._outbox.put({"type": "pong", "requestId": body.get("requestId")})

    # Internals.

    def _drop(self, reason: str) -> None:
        """The client stopped reading: cut the connection now (no farewell can reach it)."""
        self.service.metrics.participants_dropped.labels(reason).inc()
        self._close_reason = reason
        self._closing = True
        self._abort()

    def _abort(self) -> None:
        transport = self._request.transport
        if transport is not None:
            transport.abort()

    def _layers_needed(self, publication: Publication, rids: tuple[str, ...]) -> None:
        if not self.closed:
            self._outbox.put({"type": "layersNeeded", "trackId": publication.id, "rids": rids})

    def _layer_changed(self, subscription: Subscription) -> None:
        layer = subscription.layer
        if layer is None or self.closed:
            return
        width, height = layer.size or (None, None)
        self._outbox.put(
            {
                "type": "videoLayer",
                "trackId": subscription.publication.id,
                "rid": layer.name,
                "width": width,
                "height": height,
            }
        )

    def send_offer(self, sdp: str, tracks: dict[str, str]) -> None:
        self._outbox.put({"type": "offer", "target": "subscriber", "sdp": sdp, "tracks": tracks})

    def negotiation_failed(self) -> None:
        self.spawn(self.close("negotiation-timeout"))


class SubscriberNegotiation:
    """The SFU-offered peer connection: one offer in flight at a time, later changes
    coalesced into the next offer."""

    def __init__(self, session: SignallingParticipant) -> None:
        self._session = session
        self.pc = session.new_peer_connection()
        self._wanted = False
        self._answered = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def request_offer(self) -> None:
        self._wanted = True
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._negotiate())
            self._session.spawn(self._task)

    async def _negotiate(self) -> None:
        while self._wanted and not self._session.closed:
            self._wanted = False
            offer = await self.pc.createOffer()
            await self.pc.setLocalDescription(offer)
            self._answered.clear()
            self._session.send_offer(self.pc.localDescription.sdp, self._track_map())
            try:
                async with asyncio.timeout(NEGOTIATION_TIMEOUT_SECONDS):
                    await self._answered.wait()
            except TimeoutError:
                self._session.negotiation_failed()
                return

    def _track_map(self) -> dict[str, str]:
        """mid -> track id of every transceiver currently forwarding a track."""
        return {
            str(subscription.transceiver.mid): track_id
            for track_id, subscription in self._session.subscriptions.items()
            if subscription.transceiver.mid is not None
        }

    async def apply_answer(self, sdp: str) -> None:
        if self.pc.signalingState != "have-local-offer":
            raise ProtocolError("bad-request", "no subscriber offer is outstanding")
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        self._answered.set()


def _sdp(body: dict[str, Any]) -> str:
    sdp = body.get("sdp")
    if not isinstance(sdp, str) or not sdp or len(sdp) > MAX_SDP_BYTES:
        raise ProtocolError("bad-request", "sdp must be a non-empty SDP string")
    return sdp


def _track_ids(body: dict[str, Any]) -> list[str]:
    track_ids = body.get("trackIds")
    if not isinstance(track_ids, list) or not all(isinstance(t, str) for t in track_ids):
        raise ProtocolError("bad-request", "trackIds must be a list of track ids")
    return track_ids
