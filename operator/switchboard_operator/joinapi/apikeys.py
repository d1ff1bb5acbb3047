"""API keys of the join API: Kubernetes Secrets in the operator's namespace, labelled
`switchboard.dev/api-key=true`, each holding one key and what it may do.

Only SHA-256 digests of the key values are kept; a presented key is hashed and compared
with every digest in constant time. Key values never reach a log or an error message.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Protocol

from switchboard_api.apikeys import (
    ALL_NAMESPACES,
    API_KEY_LABEL,
    API_KEY_LABEL_VALUE,
    ApiKeyData,
)
from switchboard_api.kube_types import DNS_LABEL_MAX_LENGTH, DNS_LABEL_PATTERN
from switchboard_operator.logic.ratelimit import Rate

log = logging.getLogger(__name__)

DEFAULT_RATE: Final = Rate(per_second=10.0, burst=20)
MIN_KEY_LENGTH: Final = 16
"""Shorter key values are refused: they could be guessed."""

_DNS_LABEL = re.compile(DNS_LABEL_PATTERN)


@dataclass(frozen=True)
class KeyPolicy:
    """What one API key may do; `name` (its Secret's) identifies it in logs."""

    name: str
    namespaces: frozenset[str] | None
    """Room namespaces the key may join; None for every namespace."""
    may_create: bool
    rate: Rate

    def allows_namespace(self, namespace: str) -> bool:
        return self.namespaces is None or namespace in self.namespaces


class ApiKeyStore(Protocol):
    """Finds the policy of a presented API key."""

    def lookup(self, presented: str) -> KeyPolicy | None:
        """The policy of the key whose value is `presented`, or None if there is none."""
        ...


class InvalidApiKeySecret(ValueError):
    """A Secret labelled as an API key that cannot be used (the message says why)."""


@dataclass(frozen=True)
class StoredApiKey:
    """An API key as the store keeps it: the digest of its value, and its policy."""

    digest: bytes
    policy: KeyPolicy


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


class SecretApiKeyStore:
    """API keys loaded from Secret objects (dicts as the API server returns them).

    Feed it the labelled Secrets of the operator's namespace with `replace` whenever they
    change; unusable Secrets are skipped with a warning naming the Secret.
    """

    def __init__(self, secrets: Iterable[Mapping[str, object]] = ()) -> None:
        self._keys: tuple[StoredApiKey, ...] = ()
        self.replace(secrets)

    @property
    def names(self) -> set[str]:
        """Names of the usable keys."""
        return {key.policy.name for key in self._keys}

    def replace(self, secrets: Iterable[Mapping[str, object]]) -> None:
        """Use exactly the API keys of `secrets` from now on."""
        keys: dict[bytes, StoredApiKey] = {}
        labelled = (s for s in secrets if _labels(s).get(API_KEY_LABEL) == API_KEY_LABEL_VALUE)
        for secret in sorted(labelled, key=_name):
            try:
                key = parse_api_key_secret(secret)
            except InvalidApiKeySecret as error:
                log.warning("api key secret skipped secret=%s reason=%s", _name(secret), error)
                continue
            if key.digest in keys:
                log.warning(
                    "api key secret skipped secret=%s reason=same key value as secret %s",
                    key.policy.name,
                    keys[key.digest].policy.name,
                )
                continue
            keys[key.digest] = key
        self._keys = tuple(keys.values())
        log.info("api keys loaded keys=%s", ",".join(sorted(self.names)) or "-")

    def lookup(self, presented: str) -> KeyPolicy | None:
        digest = _digest(presented.encode("utf-8"))
        found: KeyPolicy | None = None
        # Every digest is compared, so the time taken does not depend on which key matched.
        for key in self._keys:
            if hmac.compare_digest(digest, key.digest):
                found = key.policy
        return found


def parse_api_key_secret(secret: Mapping[str, object]) -> StoredApiKey:
    """The digest and policy of one API key Secret; InvalidApiKeySecret if unusable."""
    name = _name(secret)
    raw = secret.get("data") or {}
    if not isinstance(raw, Mapping):
        raise InvalidApiKeySecret("data is not a mapping")
    data = {str(k): _decode(str(k), v) for k, v in raw.items()}
    value = data.get(ApiKeyData.KEY, "").strip()
    if len(value) < MIN_KEY_LENGTH:
        raise InvalidApiKeySecret(
            f"data.{ApiKeyData.KEY} must hold at least {MIN_KEY_LENGTH} characters"
        )
    if any(c.isspace() for c in value):
        raise InvalidApiKeySecret(f"data.{ApiKeyData.KEY} must not contain whitespace")
    policy = KeyPolicy(
        name=name,
        namespaces=_namespaces(data.get(ApiKeyData.NAMESPACES)),
        may_create=_flag(ApiKeyData.CREATE, data.get(ApiKeyData.CREATE)),
        rate=_rate(data.get(ApiKeyData.RATE_PER_SECOND), data.get(ApiKeyData.BURST)),
    )
    return StoredApiKey(digest=_digest(value.encode("utf-8")), policy=policy)


def _name(secret: Mapping[str, object]) -> str:
    metadata = secret.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    return str(name) if name else "?"


def _labels(secret: Mapping[str, object]) -> Mapping[str, object]:
    metadata = secret.get("metadata")
    labels = metadata.get("labels") if isinstance(metadata, Mapping) else None
    return labels if isinstance(labels, Mapping) else {}


def _decode(field: str, encoded: object) -> str:
    try:
        return base64.b64decode(str(encoded), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidApiKeySecret(f"data.{field} is not base64-encoded UTF-8") from None


def _namespaces(value: str | None) -> frozenset[str] | None:
    if value is None:
        raise InvalidApiKeySecret(
            f"data.{ApiKeyData.NAMESPACES} is required (namespaces, or {ALL_NAMESPACES!r})"
        )
    entries = {entry.strip() for entry in value.split(",")} - {""}
    if ALL_NAMESPACES in entries:
        return None
    if not entries:
        raise InvalidApiKeySecret(f"data.{ApiKeyData.NAMESPACES} names no namespace")
    invalid = sorted(
        e for e in entries if len(e) > DNS_LABEL_MAX_LENGTH or not _DNS_LABEL.fullmatch(e)
    )
    if invalid:
        raise InvalidApiKeySecret(
            f"data.{ApiKeyData.NAMESPACES} has invalid namespace names: {', '.join(invalid)}"
        )
    return frozenset(entries)


def _flag(field: str, value: str | None) -> bool:
    if value is None:
        return False
    normalized = value.strip().lower()
    if normalized not in {"true", "false"}:
        raise InvalidApiKeySecret(f"data.{field} must be 'true' or 'false'")
    return normalized == "true"


def _rate(per_second: str | None, burst: str | None) -> Rate:
    try:
        rate = DEFAULT_RATE.per_second if per_second is None else float(per_second)
        size = DEFAULT_RATE.burst if burst is None else int(burst)
        return Rate(per_second=rate, burst=size)
    except ValueError as error:
        raise InvalidApiKeySecret(
            f"data.{ApiKeyData.RATE_PER_SECOND} must be a positive number and "
            f"data.{ApiKeyData.BURST} a whole number of at least 1 ({error})"
        ) from None
