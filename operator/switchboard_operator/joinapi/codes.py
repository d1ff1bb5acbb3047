"""The join API's error codes: stable snake_case names clients branch on, the HTTP statuses
each comes with, and what each means."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from http import HTTPStatus


class ErrorCode(StrEnum):
    """What went wrong, for clients to branch on (the message is for humans)."""

    INVALID_NAME = "invalid_name"
    INVALID_JSON = "invalid_json"
    INVALID_REQUEST = "invalid_request"
    UNAUTHENTICATED = "unauthenticated"
    NAMESPACE_FORBIDDEN = "namespace_forbidden"
    ROOM_CREATION_FORBIDDEN = "room_creation_forbidden"
    ROOM_NOT_FOUND = "room_not_found"
    NAMESPACE_NOT_FOUND = "namespace_not_found"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    ROOM_UNSCHEDULABLE = "room_unschedulable"
    BODY_TOO_LARGE = "body_too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    RATE_LIMITED = "rate_limited"
    INTERNAL_ERROR = "internal_error"
    PLACEMENT_TIMEOUT = "placement_timeout"
    NOT_LEADING = "not_leading"


ERROR_STATUSES: Mapping[ErrorCode, tuple[HTTPStatus, ...]] = {
    ErrorCode.INVALID_NAME: (HTTPStatus.BAD_REQUEST,),
    ErrorCode.INVALID_JSON: (HTTPStatus.BAD_REQUEST,),
    ErrorCode.INVALID_REQUEST: (HTTPStatus.BAD_REQUEST,),
    ErrorCode.UNAUTHENTICATED: (HTTPStatus.UNAUTHORIZED,),
    ErrorCode.NAMESPACE_FORBIDDEN: (HTTPStatus.FORBIDDEN,),
    ErrorCode.ROOM_CREATION_FORBIDDEN: (HTTPStatus.FORBIDDEN,),
    ErrorCode.ROOM_NOT_FOUND: (HTTPStatus.NOT_FOUND,),
    ErrorCode.NAMESPACE_NOT_FOUND: (HTTPStatus.NOT_FOUND,),
    ErrorCode.NOT_FOUND: (HTTPStatus.NOT_FOUND,),
    ErrorCode.METHOD_NOT_ALLOWED: (HTTPStatus.METHOD_NOT_ALLOWED,),
    ErrorCode.ROOM_UNSCHEDULABLE: (HTTPStatus.CONFLICT, HTTPStatus.SERVICE_UNAVAILABLE),
    ErrorCode.BODY_TOO_LARGE: (HTTPStatus.REQUEST_ENTITY_TOO_LARGE,),
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: (HTTPStatus.UNSUPPORTED_MEDIA_TYPE,),
    ErrorCode.RATE_LIMITED: (HTTPStatus.TOO_MANY_REQUESTS,),
    ErrorCode.INTERNAL_ERROR: (HTTPStatus.INTERNAL_SERVER_ERROR,),
    ErrorCode.PLACEMENT_TIMEOUT: (HTTPStatus.GATEWAY_TIMEOUT,),
    ErrorCode.NOT_LEADING: (HTTPStatus.SERVICE_UNAVAILABLE,),
}
"""The statuses a code is answered with; the first is the usual one."""

ERROR_MEANING: Mapping[ErrorCode, str] = {
    ErrorCode.INVALID_NAME: "The namespace or room name in the path is not a DNS label.",
    ErrorCode.INVALID_JSON: "The body is not a JSON document.",
    ErrorCode.INVALID_REQUEST: "The body does not match the JoinRequest schema.",
    ErrorCode.UNAUTHENTICATED: "No API key, or one the control plane does not know.",
    ErrorCode.NAMESPACE_FORBIDDEN: "The API key may not join rooms of this namespace.",
    ErrorCode.ROOM_CREATION_FORBIDDEN: "The room does not exist and the API key may not "
    "create rooms.",
    ErrorCode.ROOM_NOT_FOUND: "The room does not exist and `create` was false.",
    ErrorCode.NAMESPACE_NOT_FOUND: "The room does not exist and cannot be created: its "
    "namespace does not exist (or is being deleted).",
    ErrorCode.NOT_FOUND: "No such endpoint.",
    ErrorCode.METHOD_NOT_ALLOWED: "The endpoint does not accept this method.",
    ErrorCode.ROOM_UNSCHEDULABLE: "No SFU pod can take the room; `reason` gives placement's "
    "reason. 503: capacity is short and a later retry can succeed; 409: the room's "
    "constraints (pinned region, namespace admission) exclude every Region.",
    ErrorCode.BODY_TOO_LARGE: "The body exceeds the size limit.",
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: "The body is not `application/json`.",
    ErrorCode.RATE_LIMITED: "The API key's request rate is exceeded; retry after the "
    "`Retry-After` header's seconds.",
    ErrorCode.INTERNAL_ERROR: "The control plane failed unexpectedly.",
    ErrorCode.PLACEMENT_TIMEOUT: "The room was not placed in time; retrying is safe.",
    ErrorCode.NOT_LEADING: "This control-plane replica is not the acting leader (a leader "
    "change or an API-server outage); retrying is safe.",
}
"""What each code means (the OpenAPI document lists them per status)."""
