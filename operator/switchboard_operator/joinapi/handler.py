"""The join endpoint: authenticate, rate-limit, validate, have the room placed, then hand
back the SFU's URL, a signed join token and ICE servers with TURN credentials."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Final

import pydantic
from aiohttp import web
from pydantic_core import ErrorDetails

from switchboard_api.contract import JoinGrants, room_key
from switchboard_api.defaults import JOIN_TOKEN_TTL_SECONDS
from switchboard_api.geo import GeoLocation
from switchboard_api.kube_types import DNS_LABEL_MAX_LENGTH, DNS_LABEL_PATTERN
from switchboard_operator.joinapi.apikeys import ApiKeyStore, KeyPolicy
from switchboard_operator.joinapi.auth import authenticate
from switchboard_operator.joinapi.codes import ErrorCode
from switchboard_operator.joinapi.errors import JoinApiError, retry_after_header
from switchboard_operator.joinapi.models import IceServer, JoinRequest, JoinResponse
from switchboard_operator.joinapi.port import (
    NamespaceNotFound,
    PlacedRoomInfo,
    PlacementTimeout,
    RoomNotFound,
    RoomPlacements,
    RoomUnschedulable,
)
from switchboard_operator.logic.jointokens import issue_join_token
from switchboard_operator.logic.placement import UnschedulableReason
from switchboard_operator.logic.ratelimit import RateLimiter
from switchboard_turn.credentials import mint_turn_credential

log = logging.getLogger(__name__)

Clock = Callable[[], float]

_DNS_LABEL = re.compile(DNS_LABEL_PATTERN)
_JSON_MEDIA_TYPE = re.compile(r"^application/([a-z0-9.+-]+\+)?json$")

CAPACITY_REASONS: Final = frozenset(
    {UnschedulableReason.REGION_FULL, UnschedulableReason.NO_CAPACITY}
)
"""Unschedulable reasons that a retry can outlive (503); the others need a change of the
room or the Regions (409)."""

TIMEOUT_GRACE_SECONDS: Final = 1.0
"""How long past the placement timeout the handler waits for the port to report it."""


@dataclass(frozen=True)
class JoinApiSettings:
    """Limits of the join endpoint."""

    placement_timeout_seconds: float = 10.0
    """How long a join waits for its room to be placed before answering 504."""
    max_body_bytes: int = 16 * 1024
    token_ttl_seconds: int = JOIN_TOKEN_TTL_SECONDS


class JoinHandler:
    """Serves `POST .../namespaces/{namespace}/rooms/{name}/join`."""

    def __init__(
        self,
        placements: RoomPlacements,
        keys: ApiKeyStore,
        *,
        settings: JoinApiSettings,
        limiter: RateLimiter,
        wall_clock: Clock = time.time,
        monotonic_clock: Clock = time.monotonic,
    ) -> None:
        self._placements = placements
        self._keys = keys
        self._settings = settings
        self._limiter = limiter
        self._wall_clock = wall_clock
        self._monotonic_clock = monotonic_clock

    async def join(self, request: web.Request) -> web.Response:
        started = self._monotonic_clock()
        key_name = room = "-"
        try:
            policy = authenticate(request.headers, self._keys)
            key_name = policy.name
            self._rate_limit(policy)
            namespace, name = _room_name(request)
            room = room_key(namespace, name)
            if not policy.allows_namespace(namespace):
                raise JoinApiError(
                    ErrorCode.NAMESPACE_FORBIDDEN,
                    f"the API key may not join rooms in namespace {namespace!r}",
                )
            join = _parse(await _read_body(request, self._settings.max_body_bytes))
            self._acting_term()
            placed = await self._place(namespace, name, join, policy)
            response = self._grant(placed, join)
        except JoinApiError as error:
            log.info(
                "join refused code=%s status=%d room=%s key=%s",
                error.code,
                error.status,
                room,
                key_name,
            )
            return error.response()
        log.info(
            "join granted room=%s identity=%s key=%s region=%s pod=%s elapsed_ms=%.1f",
            response.room,
            response.identity,
            key_name,
            response.region,
            response.pod,
            (self._monotonic_clock() - started) * 1000,
        )
        return web.json_response(response.to_wire())

    def _rate_limit(self, policy: KeyPolicy) -> None:
        admission = self._limiter.admit(policy.name, policy.rate, self._monotonic_clock())
        if not admission.allowed:
            raise JoinApiError(
                ErrorCode.RATE_LIMITED,
                f"the API key is limited to {policy.rate.per_second:g} requests per second "
                f"(burst {policy.rate.burst})",
                headers={"Retry-After": retry_after_header(admission.retry_after)},
            )

    async def _place(
        self, namespace: str, name: str, join: JoinRequest, policy: KeyPolicy
    ) -> PlacedRoomInfo:
        timeout = self._settings.placement_timeout_seconds
        may_create = join.create and policy.may_create
        try:
            # The port enforces the timeout; the guard only bounds a port that does not.
            async with asyncio.timeout(timeout + TIMEOUT_GRACE_SECONDS):
                return await self._placements.ensure_placed(
                    namespace,
                    name,
                    create=may_create,
                    max_participants=join.max_participants,
                    location=_location(join),
                    region_hint=join.region,
                    timeout=timeout,
                )
        except RoomNotFound:
            if join.create and not policy.may_create:
                raise JoinApiError(
                    ErrorCode.ROOM_CREATION_FORBIDDEN,
                    f"room {namespace}/{name} does not exist and the API key may not create rooms",
                ) from None
            raise JoinApiError(
                ErrorCode.ROOM_NOT_FOUND, f"room {namespace}/{name} does not exist"
            ) from None
        except NamespaceNotFound:
            raise JoinApiError(
                ErrorCode.NAMESPACE_NOT_FOUND,
                f"room {namespace}/{name} cannot be created: namespace {namespace!r} does not "
                "exist",
            ) from None
        except RoomUnschedulable as error:
            raise JoinApiError(
                ErrorCode.ROOM_UNSCHEDULABLE,
                f"room {namespace}/{name} cannot be placed: {error.message}",
                status=HTTPStatus.SERVICE_UNAVAILABLE
                if error.reason in CAPACITY_REASONS
                else HTTPStatus.CONFLICT,
                reason=str(error.reason),
            ) from None
        except (PlacementTimeout, TimeoutError):
            raise JoinApiError(
                ErrorCode.PLACEMENT_TIMEOUT,
                f"room {namespace}/{name} was not placed within {timeout:g} s",
            ) from None

    def _acting_term(self) -> int | None:
        term = self._placements.acting_term()
        if term is None:
            raise JoinApiError(
                ErrorCode.NOT_LEADING,
                "this control-plane replica is not the acting leader; retry",
            )
        return term

    def _grant(self, placed: PlacedRoomInfo, join: JoinRequest) -> JoinResponse:
        term = self._acting_term()  # the placement may have outlasted the acting window
        now = self._wall_clock()
        ring = self._placements.join_keys()
        # Signed only with a key the pod holds: during a rotation, the new key signs a
        # pod's tokens from its first report that lists it.
        kid = ring.signing_kid(self._placements.held_join_keys(placed))
        issued = issue_join_token(
            identity=join.identity,
            room=placed.room_key,
            pod=placed.pod,
            pod_uid=placed.pod_uid,
            grants=JoinGrants(**join.grants.model_dump()),
            key=ring.keys.private[kid],
            kid=kid,
            now_unix=now,
            ttl_seconds=self._settings.token_ttl_seconds,
            term=term,
        )
        ring.signed(kid, issued.claims.exp)
        return JoinResponse(
            room=placed.room_key,
            region=placed.region,
            pod=placed.pod,
            pod_uid=placed.pod_uid,
            url=placed.url,
            token=issued.token,
            expires_at=dt.datetime.fromtimestamp(issued.claims.exp, dt.UTC),
            identity=join.identity,
            ice_servers=self._ice_servers(placed.region, join.identity, now),
        )

    def _ice_servers(self, region: str, identity: str, now: float) -> list[IceServer]:
        turn = self._placements.turn_for_region(region)
        if turn is None or not turn.uris:
            return []
        try:
            credential = mint_turn_credential(
                turn.secret, identity, now, turn.credential_ttl_seconds
            )
        except ValueError as error:
            # Credentials TURN would refuse help no one: join without TURN rather than fail.
            log.warning("turn credentials not minted region=%s reason=%s", region, error)
            return []
        return [
            IceServer(
                urls=list(turn.uris), username=credential.username, credential=credential.password
            )
        ]


def _location(join: JoinRequest) -> GeoLocation | None:
    # The port gets the plain API type, not the request's stricter subclass.
    return None if join.location is None else GeoLocation(**join.location.model_dump())


def _room_name(request: web.Request) -> tuple[str, str]:
    namespace = request.match_info["namespace"]
    name = request.match_info["name"]
    for kind, value in (("namespace", namespace), ("room name", name)):
        if len(value) > DNS_LABEL_MAX_LENGTH or not _DNS_LABEL.fullmatch(value):
            raise JoinApiError(
                ErrorCode.INVALID_NAME,
                f"the {kind} must be a DNS label: at most {DNS_LABEL_MAX_LENGTH} lower-case "
                "letters, digits and '-', starting and ending with a letter or digit",
            )
    return namespace, name


async def _read_body(request: web.Request, limit: int) -> bytes:
    content_type = request.headers.get("Content-Type")
    if content_type is not None and not _JSON_MEDIA_TYPE.match(request.content_type):
        raise JoinApiError(
            ErrorCode.UNSUPPORTED_MEDIA_TYPE, "the body must be JSON (application/json)"
        )
    too_large = JoinApiError(ErrorCode.BODY_TOO_LARGE, f"the body must not exceed {limit} bytes")
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    # Read in chunks rather than trusting Content-Length: a chunked body has none.
    body = bytearray()
    async for chunk in request.content.iter_chunked(4096):
        body += chunk
        if len(body) > limit:
            raise too_large
    return bytes(body)


def _parse(body: bytes) -> JoinRequest:
    if not body.strip():
        raise JoinApiError(ErrorCode.INVALID_JSON, "the body is empty: send a JoinRequest object")
    try:
        # Strict: a JSON string is not silently taken for a number or a boolean.
        return JoinRequest.model_validate_json(body, strict=True)
    except pydantic.ValidationError as error:
        problems = error.errors(include_url=False, include_input=False)
        if any(p["type"] == "json_invalid" for p in problems):
            raise JoinApiError(ErrorCode.INVALID_JSON, "the body is not valid JSON") from None
        raise JoinApiError(ErrorCode.INVALID_REQUEST, _describe(problems)) from None


def _describe(problems: list[ErrorDetails]) -> str:
    parts = []
    for problem in problems[:5]:
        where = ".".join(str(p) for p in problem["loc"]) or "body"
        parts.append(f"{where}: {problem['msg']}")
    more = len(problems) - 5
    return "invalid request: " + "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")
