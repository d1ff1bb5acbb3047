"""The peer channel between the SFU pods of a Region: each pod answers lease checks on its
peer port with a LeaseStatus signed by a key it generated at start, and asks its peers
when its own lease has expired.

Authentication needs nothing from the API server: a pod's public key reaches its peers only
through the control plane's acknowledgements (`peers`), which list pods the control plane
heard from over their authenticated report channel. An answer that does not verify with
the key listed for that pod and incarnation, or that does not echo the query's nonce,
counts as no answer.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
import secrets
import time
from collections.abc import Callable, Sequence

import aiohttp
import jwt
import pydantic
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from switchboard_api.contract import (
    JOIN_TOKEN_ALGORITHM,
    PEER_LEASE_CONTENT_TYPE,
    PEER_LEASE_PATH,
    PEER_QUERY_FANOUT,
    PEER_QUERY_TIMEOUT_SECONDS,
    LeasePeer,
    LeaseQuery,
    LeaseStatus,
    PeerEndpoint,
)
from switchboard_sfu.lease import PeerAnswer

log = logging.getLogger(__name__)

MAX_QUERY_BYTES = 1024
MAX_ANSWER_BYTES = 4096


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def public_key_from(text: str) -> Ed25519PublicKey | None:
    """The Ed25519 key a peer announced, or None if it is not one."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        return None


class PeerKey:
    """This process's own signing key for lease answers (never leaves memory)."""

    def __init__(self) -> None:
        self._key = Ed25519PrivateKey.generate()
        raw = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.public = _b64(raw)

    def sign(self, status: LeaseStatus) -> str:
        return jwt.encode(
            status.model_dump(mode="json", by_alias=True), self._key, algorithm=JOIN_TOKEN_ALGORITHM
        )

    def endpoint(self, host: str, port: int) -> PeerEndpoint:
        return PeerEndpoint(url=f"http://{host}:{port}{PEER_LEASE_PATH}", public_key=self.public)


StatusNow = Callable[[str], LeaseStatus]
"""(nonce) -> this pod's lease status now."""


def peer_app(key: PeerKey, status_now: StatusNow) -> web.Application:
    """The peer port's application: one route, answering lease checks."""

    async def answer(request: web.Request) -> web.Response:
        if request.content_length is not None and request.content_length > MAX_QUERY_BYTES:
            return web.json_response({"error": "too-large"}, status=413)
        try:
            query = LeaseQuery.model_validate_json(await request.content.read(MAX_QUERY_BYTES))
        except pydantic.ValidationError:
            return web.json_response({"error": "bad-request"}, status=400)
        status = status_now(query.nonce)
        log.debug("lease check answered asker=%s", query.pod)
        return web.Response(text=key.sign(status), content_type=PEER_LEASE_CONTENT_TYPE)

    app = web.Application(client_max_size=MAX_QUERY_BYTES)
    app.router.add_post(PEER_LEASE_PATH, answer)
    return app


class PeerChecker:
    """Asks peers for their lease status; returns the answers that verify."""

    def __init__(
        self,
        pod_name: str,
        *,
        fanout: int = PEER_QUERY_FANOUT,
        timeout_seconds: float = PEER_QUERY_TIMEOUT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pod = pod_name
        self._fanout = fanout
        self._timeout = timeout_seconds
        self._clock = clock

    async def ask(
        self, session: aiohttp.ClientSession, peers: Sequence[LeasePeer]
    ) -> list[PeerAnswer]:
        chosen = random.sample(list(peers), min(self._fanout, len(peers)))
        results = await asyncio.gather(*(self._ask_one(session, peer) for peer in chosen))
        return [answer for answer in results if answer is not None]

    async def _ask_one(self, session: aiohttp.ClientSession, peer: LeasePeer) -> PeerAnswer | None:
        key = public_key_from(peer.public_key)
        if key is None:
            log.warning("peer key unusable peer=%s", peer.pod)
            return None
        nonce = secrets.token_urlsafe(18)
        query = LeaseQuery(nonce=nonce, pod=self._pod).to_wire()
        timeout = aiohttp.ClientTimeout(total=self._timeout)
        try:
            async with session.post(peer.url, json=query, timeout=timeout) as reply:
                if reply.status != 200:
                    log.info("lease check refused peer=%s status=%d", peer.pod, reply.status)
                    return None
                token = (await reply.content.read(MAX_ANSWER_BYTES)).decode()
            arrived = self._clock()
        except (aiohttp.ClientError, TimeoutError, UnicodeDecodeError) as error:
            log.info("lease check unanswered peer=%s error=%r", peer.pod, error)
            return None
        try:
            claims = jwt.decode(token, key=key, algorithms=[JOIN_TOKEN_ALGORITHM])
            status = LeaseStatus.model_validate(claims)
        except (jwt.PyJWTError, pydantic.ValidationError) as error:
            log.warning("lease answer does not verify peer=%s error=%s", peer.pod, error)
            return None
        if status.nonce != nonce or status.pod != peer.pod or status.pod_uid != peer.pod_uid:
            log.warning("lease answer is not this peer's answer to this query peer=%s", peer.pod)
            return None
        acked_at = None if status.ack_age_seconds is None else arrived - status.ack_age_seconds
        return PeerAnswer(pod=peer.pod, term=status.term, acked_at=acked_at, fenced=status.fenced)
