"""Join tokens as the control plane issues them: `JoinTokenClaims` signed EdDSA with the
current Ed25519 key, its `kid` in the JWS header; and the signing keys, as their Secret
holds them. Pure: the keys and the clock are arguments.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from switchboard_api.contract import (
    JOIN_PUBLIC_KEY_SUFFIX,
    JOIN_TOKEN_ALGORITHM,
    JoinGrants,
    JoinKeySecrets,
    JoinTokenClaims,
)
from switchboard_api.defaults import JOIN_TOKEN_TTL_SECONDS

PRIVATE_SUFFIX = ".pem"
"""Secret data key suffix of a private key: `<kid>.pem`."""


@dataclass(frozen=True)
class JoinKeys:
    signing_kid: str
    private: Mapping[str, Ed25519PrivateKey]

    @property
    def signing_key(self) -> Ed25519PrivateKey:
        return self.private[self.signing_kid]

    def public_pems(self) -> dict[str, str]:
        """ConfigMap data: `<kid>.pub` → PEM public key, for every key still accepted."""
        return {
            f"{kid}{JOIN_PUBLIC_KEY_SUFFIX}": key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
            for kid, key in sorted(self.private.items())
        }


def parse_join_keys(secret: Mapping[str, object]) -> JoinKeys:
    """The keys of the signing Secret (its newest kid signs)."""
    data = secret.get("data") or {}
    assert isinstance(data, Mapping)
    private: dict[str, Ed25519PrivateKey] = {}
    for name, value in data.items():
        if not str(name).endswith(PRIVATE_SUFFIX):
            continue
        key = serialization.load_pem_private_key(base64.b64decode(str(value)), password=None)
        if isinstance(key, Ed25519PrivateKey):
            private[str(name).removesuffix(PRIVATE_SUFFIX)] = key
    if not private:
        raise ValueError(f"Secret {JoinKeySecrets.SIGNING_SECRET} holds no Ed25519 key")
    # The newest kid signs (kids start with their creation date).
    return JoinKeys(signing_kid=max(private), private=private)


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
    term: int | None = None,
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
        term=term,
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
    term: int | None = None,
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
        term=term,
    )
    return IssuedJoinToken(token=sign_join_token(claims, key, kid), claims=claims)
