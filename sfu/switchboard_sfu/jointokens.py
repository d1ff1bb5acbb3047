"""Verification of join tokens: EdDSA JWTs signed by the control plane, checked against
the public keys mounted into the pod and against this pod's identity.

Only verification lives here; the control plane's join API signs (tests sign with their
own helper), and the claim model is `switchboard_api.contract.JoinTokenClaims`.
"""

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import jwt
import pydantic
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from switchboard_api.contract import (
    JOIN_PUBLIC_KEY_SUFFIX,
    JOIN_TOKEN_ALGORITHM,
    JOIN_TOKEN_AUDIENCE,
    JOIN_TOKEN_ISSUER,
    JoinTokenClaims,
)
from switchboard_sfu.refusals import JoinRefused, RefusalCode

log = logging.getLogger(__name__)

CLOCK_LEEWAY_SECONDS = 5
"""Tolerated clock difference between the control plane and the SFU node."""

KEY_RELOAD_INTERVAL_SECONDS = 1.0
"""An unknown `kid` re-reads the keys directory at most this often (tokens are untrusted)."""

MAX_TOKEN_BYTES = 8192
"""Longer inputs are refused before any parsing (a join token is a few hundred bytes)."""


class JoinKeyring:
    """Ed25519 public keys by `kid`, loaded from `<kid>.pub` files in a directory.

    The directory is a mounted ConfigMap that the kubelet updates in place when keys
    rotate, so an unknown `kid` triggers one re-read before the token is refused, and
    every capacity report re-reads it (`refresh`): a key removed from the ConfigMap stops
    verifying tokens, and the report tells the control plane which keys this pod holds.
    """

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._loaded_at = 0.0
        self.reload()

    def reload(self) -> None:
        self._loaded_at = time.monotonic()
        keys: dict[str, Ed25519PublicKey] = {}
        for path in sorted(self._directory.glob(f"*{JOIN_PUBLIC_KEY_SUFFIX}")):
            kid = path.name.removesuffix(JOIN_PUBLIC_KEY_SUFFIX)
            try:
                key = load_pem_public_key(path.read_bytes())
            except (OSError, ValueError) as error:
                log.warning("join key unreadable kid=%s error=%s", kid, error)
                continue
            if not isinstance(key, Ed25519PublicKey):
                log.warning("join key is not Ed25519 kid=%s type=%s", kid, type(key).__name__)
                continue
            keys[kid] = key
        if keys.keys() != self._keys.keys() or not self._keys:
            log.info("join keys loaded dir=%s kids=%s", self._directory, ",".join(keys) or "-")
        self._keys = keys

    def refresh(self) -> None:
        """Re-read the directory if it was not read within the reload interval."""
        if time.monotonic() - self._loaded_at >= KEY_RELOAD_INTERVAL_SECONDS:
            self.reload()

    def kids(self) -> list[str]:
        """The key ids held now, sorted."""
        return sorted(self._keys)

    def get(self, kid: str) -> Ed25519PublicKey | None:
        key = self._keys.get(kid)
        if key is None and time.monotonic() - self._loaded_at >= KEY_RELOAD_INTERVAL_SECONDS:
            self.reload()
            key = self._keys.get(kid)
        return key


@dataclass(frozen=True)
class PodIdentity:
    """The incarnation of the SFU pod that tokens must name."""

    name: str
    uid: str


class JoinTokenVerifier:
    """Turns a join token into verified claims for this pod, or refuses it."""

    def __init__(self, keyring: JoinKeyring, pod: PodIdentity) -> None:
        self._keyring = keyring
        self._pod = pod

    def verify(self, token: str | None, now_unix: float) -> JoinTokenClaims:
        """The token's claims if it is genuine, current and meant for this pod.

        Raises JoinRefused with a code that says which check failed; the message never
        echoes the token.
        """
        if not token:
            raise JoinRefused(RefusalCode.MISSING_TOKEN, "a join token is required")
        if len(token) > MAX_TOKEN_BYTES:
            raise JoinRefused(RefusalCode.INVALID_TOKEN, "join token is too long")
        key = self._key_for(token)
        try:
            payload = jwt.decode(
                token,
                key=key,
                algorithms=[JOIN_TOKEN_ALGORITHM],
                audience=JOIN_TOKEN_AUDIENCE,
                issuer=JOIN_TOKEN_ISSUER,
                # Times are checked below against the caller's clock.
                options={
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "require": ["exp", "nbf", "iat", "aud", "iss", "sub"],
                },
            )
        except jwt.InvalidAudienceError:
            raise JoinRefused(RefusalCode.INVALID_TOKEN, "token is not for an SFU") from None
        except jwt.InvalidIssuerError:
            raise JoinRefused(RefusalCode.INVALID_TOKEN, "token has an unknown issuer") from None
        except jwt.InvalidSignatureError:
            raise JoinRefused(RefusalCode.INVALID_TOKEN, "token signature is invalid") from None
        except jwt.PyJWTError as error:
            raise JoinRefused(RefusalCode.INVALID_TOKEN, f"malformed token: {error}") from None
        try:
            claims = JoinTokenClaims.model_validate(payload)
        except pydantic.ValidationError as error:
            fields = ",".join(".".join(map(str, e["loc"])) for e in error.errors())
            raise JoinRefused(RefusalCode.INVALID_TOKEN, f"invalid claims: {fields}") from None
        self._check_times(claims, now_unix)
        if claims.pod != self._pod.name or claims.pod_uid != self._pod.uid:
            raise JoinRefused(
                RefusalCode.WRONG_POD,
                f"token is for SFU pod {claims.pod} ({claims.pod_uid}), this is "
                f"{self._pod.name} ({self._pod.uid}); ask the join API again",
            )
        return claims

    def _key_for(self, token: str) -> Ed25519PublicKey:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise JoinRefused(RefusalCode.INVALID_TOKEN, "token is not a JWT") from None
        if header.get("alg") != JOIN_TOKEN_ALGORITHM:
            raise JoinRefused(RefusalCode.INVALID_TOKEN, "token is not signed with EdDSA")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise JoinRefused(RefusalCode.INVALID_TOKEN, "token header has no kid")
        key = self._keyring.get(kid) if "/" not in kid and not kid.startswith(".") else None
        if key is None:
            raise JoinRefused(RefusalCode.UNKNOWN_KEY, f"no verification key with kid {kid!r}")
        return key

    @staticmethod
    def _check_times(claims: JoinTokenClaims, now_unix: float) -> None:
        if now_unix >= claims.exp + CLOCK_LEEWAY_SECONDS:
            raise JoinRefused(RefusalCode.TOKEN_EXPIRED, "token has expired")
        if now_unix < claims.nbf - CLOCK_LEEWAY_SECONDS:
            raise JoinRefused(RefusalCode.TOKEN_NOT_YET_VALID, "token is not valid yet")
