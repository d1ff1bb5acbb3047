"""WHIP (RFC 9725) publishing and WHEP (draft-ietf-wish-whep) playback over HTTP.

POST an SDP offer with `Authorization: Bearer <join token>` to `/whip/<ns>/<room>` or
`/whep/<ns>/<room>`; the answer comes back `201 Created` with a `Location` that names the
session. DELETE on it ends the session, PATCH trickles ICE candidates. The resource URL
holds an unguessable session id, so it is the capability for DELETE/PATCH (a join token
may have expired long before the session ends).
"""

import logging
from typing import TYPE_CHECKING

from aiohttp import web
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.exceptions import InvalidAccessError, InvalidStateError, OperationError

from switchboard_api.contract import JoinTokenClaims, room_key
from switchboard_sfu import appkeys
from switchboard_sfu.media import CodecMismatchError, Publication
from switchboard_sfu.negotiation import (
    MAX_SDP_BYTES,
    answer_publisher_offer,
    summarize_offer,
    trickle_candidates,
)
from switchboard_sfu.participant import Participant
from switchboard_sfu.refusals import JoinRefused, RefusalCode
from switchboard_sfu.rooms import Member, MemberKind, Room
from switchboard_sfu.service import Grant, require_grant

if TYPE_CHECKING:
    from switchboard_sfu.service import SfuService

log = logging.getLogger(__name__)

SDP_TYPE = "application/sdp"
TRICKLE_TYPE = "application/trickle-ice-sdpfrag"
WHIP_PREFIX = "/whip"
WHEP_PREFIX = "/whep"

SESSIONS: web.AppKey[dict[str, "HttpSession"]] = web.AppKey("whip_whep_sessions")


class HttpSession(Participant):
    """A WHIP or WHEP session: one peer connection, no message channel."""

    def __init__(self, service: "SfuService", room: Room, claims: JoinTokenClaims) -> None:
        super().__init__(service, room, claims)
        self.pc: RTCPeerConnection = self.new_peer_connection()
        self.sessions: dict[str, HttpSession] | None = None

    async def release(self, reason: str) -> None:
        if self.sessions is not None:
            self.sessions.pop(self.session_id, None)
        await super().release(reason)


class WhipSession(HttpSession):
    kind = MemberKind.WHIP
    id_prefix = "WHIP"


class WhepSession(HttpSession):
    kind = MemberKind.WHEP
    id_prefix = "WHEP"

    def publication_removed(self, publication: Publication) -> None:
        super().publication_removed(publication)
        if not self.subscriptions and not self.closed:
            # WHEP has no way to offer the player a new track: end the session so the
            # player reconnects and gets whatever is published then.
            self.spawn(self.close("publisher-left"))


def _bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _refusal_response(refusal: JoinRefused) -> web.Response:
    return web.json_response(refusal.to_json(), status=refusal.http_status)


async def _read_offer(request: web.Request) -> str:
    if request.content_type != SDP_TYPE:
        raise web.HTTPUnsupportedMediaType(text=f"the offer must be {SDP_TYPE}")
    if request.content_length is not None and request.content_length > MAX_SDP_BYTES:
        raise web.HTTPRequestEntityTooLarge(MAX_SDP_BYTES, request.content_length)
    sdp = await request.text()
    if not sdp.startswith("v=0"):
        raise web.HTTPBadRequest(text="the body is not an SDP offer")
    return sdp


def _created(
    request: web.Request, session: HttpSession, prefix: str, answer: str | None = None
) -> web.Response:
    text = answer if answer is not None else session.pc.localDescription.sdp
    response = web.Response(status=201, text=text, content_type=SDP_TYPE)
    response.headers["Location"] = f"{prefix}/resource/{session.session_id}"
    response.headers["ETag"] = f'"{session.session_id}"'
    response.headers["Accept-Patch"] = TRICKLE_TYPE
    for server in session.service.ice_servers_for(session.identity):
        for value in server.link_headers():
            response.headers.add("Link", value)
    request.app[SESSIONS][session.session_id] = session
    session.sessions = request.app[SESSIONS]
    return response


async def handle_whip(request: web.Request) -> web.StreamResponse:
    """POST /whip/{namespace}/{room}: publish the offer's tracks into the room."""
    service = request.app[appkeys.SERVICE]
    sdp = await _read_offer(request)
    offer = summarize_offer(sdp)
    key = room_key(request.match_info["namespace"], request.match_info["room"])
    try:
        if not offer.media_kinds:
            raise JoinRefused(RefusalCode.BAD_REQUEST, "a WHIP offer must send audio or video")
        claims, room, replaced = service.admit(
            _bearer_token(request), MemberKind.WHIP, needs=(Grant.PUBLISH,), room_key=key
        )
        if offer.data:
            require_grant(claims.grants, Grant.DATA)
    except JoinRefused as refusal:
        return _refusal_response(refusal)
    session = WhipSession(service, room, claims)
    service.add_member(room, session)
    if replaced is not None:
        session.spawn(replaced.close("duplicate-identity"))
    session.accept_published_tracks(session.pc)
    try:
        answer = await answer_publisher_offer(session.pc, sdp)
    except (
        CodecMismatchError,
        ValueError,
        InvalidAccessError,
        InvalidStateError,
        OperationError,
    ) as error:
        await session.release("bad-offer")
        return web.json_response({"error": "bad-offer", "message": str(error)}, status=400)
    service.announce_publications(room, session, session.take_new_publications())
    return _created(request, session, WHIP_PREFIX, answer)


async def handle_whep(request: web.Request) -> web.StreamResponse:
    """POST /whep/{namespace}/{room}: play the room's tracks (one publisher's, by default
    the first; `?identity=` picks one) on the offer's recvonly m-lines."""
    service = request.app[appkeys.SERVICE]
    sdp = await _read_offer(request)
    key = room_key(request.match_info["namespace"], request.match_info["room"])
    try:
        claims, room, replaced = service.admit(
            _bearer_token(request), MemberKind.WHEP, needs=(Grant.SUBSCRIBE,), room_key=key
        )
    except JoinRefused as refusal:
        return _refusal_response(refusal)
    session = WhepSession(service, room, claims)
    service.add_member(room, session)
    if replaced is not None:
        session.spawn(replaced.close("duplicate-identity"))
    try:
        await _answer_whep_offer(session, sdp, request.query.get("identity"))
    except _NothingToPlay as error:
        await session.release("nothing-to-play")
        return web.json_response({"error": "nothing-to-play", "message": str(error)}, status=404)
    except (
        CodecMismatchError,
        ValueError,
        InvalidAccessError,
        InvalidStateError,
        OperationError,
    ) as error:
        await session.release("bad-offer")
        return web.json_response({"error": "bad-offer", "message": str(error)}, status=400)
    return _created(request, session, WHEP_PREFIX)


class _NothingToPlay(Exception):
    pass


async def _answer_whep_offer(session: WhepSession, sdp: str, identity: str | None) -> None:
    media = session.room.media
    pc = session.pc
    await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
    available = _playable(media.publications if media else (), session, identity)
    if not available:
        who = f"participant {identity}" if identity else "anyone"
        raise _NothingToPlay(f"nothing is published by {who} in room {session.room.key}")
    for transceiver in pc.getTransceivers():
        publication = next((p for p in available if p.kind == transceiver.kind), None)
        if publication is None or media is None:
            transceiver.direction = "inactive"
            continue
        available.remove(publication)
        session.subscriptions[publication.id] = media.subscribe(
            session.session_id, pc, publication, transceiver=transceiver
        )
    if not session.subscriptions:
        raise _NothingToPlay("the offer receives no kind of track that is published")
    answer = await pc.createAnswer()
    await pc.setLocalDescription(answer)


def _playable(
    publications: tuple[Publication, ...], session: WhepSession, identity: str | None
) -> list[Publication]:
    """The tracks of one publisher: the named one, else the first that published."""
    members = session.room.members
    candidates = [
        p
        for p in publications
        if p.participant_id != session.session_id
        and p.codec is not None
        and (identity is None or _identity_of(members, p.participant_id) == identity)
    ]
    if not candidates:
        return []
    publisher = candidates[0].participant_id
    return [p for p in candidates if p.participant_id == publisher]


def _identity_of(members: dict[str, Member], session_id: str) -> str | None:
    member = members.get(session_id)
    return member.identity if member is not None else None


def _session(request: web.Request, kind: type[HttpSession]) -> HttpSession:
    session = request.app[SESSIONS].get(request.match_info["session"])
    if not isinstance(session, kind):
        raise web.HTTPNotFound(text="no such session")
    return session


def resource_handlers(kind: type[HttpSession]) -> tuple:
    """DELETE and PATCH handlers for the resources of `kind` sessions."""

    async def delete(request: web.Request) -> web.StreamResponse:
        session = _session(request, kind)
        await session.release("deleted")
        return web.Response(status=200)

    async def patch(request: web.Request) -> web.StreamResponse:
        session = _session(request, kind)
        if request.headers.get("If-Match") == "*":
            # An ICE restart: aiortc cannot restart ICE, so the client must POST anew.
            raise web.HTTPMethodNotAllowed("PATCH", ["DELETE"], text="ICE restart unsupported")
        if request.content_type != TRICKLE_TYPE:
            raise web.HTTPUnsupportedMediaType(text=f"trickle bodies are {TRICKLE_TYPE}")
        etag = request.headers.get("If-Match")
        if etag is not None and etag != f'"{session.session_id}"':
            raise web.HTTPPreconditionFailed(text="the ICE session has changed")
        body = await request.text()
        if len(body) > MAX_SDP_BYTES:
            raise web.HTTPRequestEntityTooLarge(MAX_SDP_BYTES, len(body))
        try:
            candidates, complete = trickle_candidates(body)
        except ValueError as error:
            raise web.HTTPBadRequest(text=f"bad candidate: {error}") from None
        for candidate in candidates:
            await session.pc.addIceCandidate(candidate)
        if complete:
            await session.pc.addIceCandidate(None)
        return web.Response(status=204)

    return delete, patch


def add_routes(app: web.Application) -> None:
    app[SESSIONS] = {}
    app.router.add_post(WHIP_PREFIX + "/{namespace}/{room}", handle_whip)
    app.router.add_post(WHEP_PREFIX + "/{namespace}/{room}", handle_whep)
    for prefix, kind in ((WHIP_PREFIX, WhipSession), (WHEP_PREFIX, WhepSession)):
        delete, patch = resource_handlers(kind)
        app.router.add_delete(prefix + "/resource/{session}", delete)
        app.router.add_patch(prefix + "/resource/{session}", patch)
