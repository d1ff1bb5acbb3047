"""Who is calling: the API key presented as `Authorization: Bearer <key>`, resolved to its
policy. Refusals never echo the presented value."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from switchboard_operator.joinapi.apikeys import ApiKeyStore, KeyPolicy
from switchboard_operator.joinapi.codes import ErrorCode
from switchboard_operator.joinapi.errors import JoinApiError

BEARER: Final = "bearer"
CHALLENGE: Final = {"WWW-Authenticate": 'Bearer realm="switchboard"'}
"""Sent with every 401, as RFC 6750 asks."""


def authenticate(headers: Mapping[str, str], keys: ApiKeyStore) -> KeyPolicy:
    """The policy of the request's API key; JoinApiError (401) without a known one."""
    header = headers.get("Authorization")
    if header is None:
        raise _unauthenticated("an API key is required: send `Authorization: Bearer <key>`")
    scheme, _, presented = header.strip().partition(" ")
    presented = presented.strip()
    if scheme.lower() != BEARER or not presented:
        raise _unauthenticated("the Authorization header must be `Bearer <key>`")
    policy = keys.lookup(presented)
    if policy is None:
        raise _unauthenticated("the API key is not valid")
    return policy


def _unauthenticated(message: str) -> JoinApiError:
    return JoinApiError(ErrorCode.UNAUTHENTICATED, message, headers=CHALLENGE)
