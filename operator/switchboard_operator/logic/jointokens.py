"""Join tokens as the control plane issues them: `JoinTokenClaims` signed EdDSA with the
current Ed25519 key, its `kid` in the JWS header. Pure: the key and the clock are arguments.
"""

from __future__ import annotations

from dataclasses import dataclass

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from switchboard_api.contract import JOIN_TOKEN_ALGORITHM, JoinGrants, JoinTokenClaims
from switchboard_api.defaults import JOIN_TOKEN_TTL_SECONDS


@dataclass(frozen=True)
class IssuedJoinToken:
    """A signed join token and the claims it carries."""

    token: str
    claims: JoinTokenClaims


def join_claims(
    *,
    identity: str,
    room: str,
    pod: str,
    pod_uid: str,
    grants: JoinGrants,
    now_unix: float,
    ttl_seconds: int = JOIN_TOKEN_TTL_SECONDS,
) -> JoinTokenClaims:
    """Claims for `identity` joining `room` on one incarnation of an SFU pod, valid from
    `now_unix` for `ttl_seconds` (the SFU allows for clock skew on both ends)."""
    if ttl_seconds <= 0:
        raise ValueError(f"join token TTL must be positive, got {ttl_seconds}")
    issued_at = int(now_unix)
    return JoinTokenClaims(
        sub=identity,
        room=room,
        pod=pod,
        pod_uid=pod_uid,
        grants=grants,
        iat=issued_at,
        nbf=issued_at,
        exp=issued_at + ttl_seconds,
    )


def sign_join_token(claims: JoinTokenClaims, key: Ed25519PrivateKey, kid: str) -> str:
    """The compact JWS of `claims`, signed with `key` and naming `kid` in its header."""
    # SFUs look the key up as the file `<kid>.pub` and refuse kids that could leave the
    # keys directory, so such a kid would only mint tokens no SFU accepts.
    if not kid or "/" in kid or kid.startswith("."):
        raise ValueError(f"unusable join key id {kid!r}")
    return jwt.encode(
        claims.to_wire(),
        key,
        algorithm=JOIN_TOKEN_ALGORITHM,
        headers={"kid": kid},
    )


def issue_join_token(
    *,
    identity: str,
    room: str,
    pod: str,
    pod_uid: str,
    grants: JoinGrants,
    key: Ed25519PrivateKey,
    kid: str,
    now_unix: float,
    ttl_seconds: int = JOIN_TOKEN_TTL_SECONDS,
) -> IssuedJoinToken:
    """Claims for the join (see `join_claims`) and their signed token."""
    claims = join_claims(
        identity=identity,
        room=room,
        pod=pod,
        pod_uid=pod_uid,
        grants=grants,
        now_unix=now_unix,
        ttl_seconds=ttl_seconds,
    )
    return IssuedJoinToken(token=sign_join_token(claims, key, kid), claims=claims)
