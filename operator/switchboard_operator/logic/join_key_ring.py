"""Join-token keys over a rotation, decided: which key signs a token for a pod, and which
public keys SFU pods are given.

A rotation is a change of the signing Secret (`JoinKeySecrets.SIGNING_SECRET`), picked up
without a restart:

1. A new key is added to the Secret: its public key is published to every Region at once,
   but it signs a token for a pod only once that pod reports holding it
   (`CapacityReport.joinKeyIds`), so no token is ever signed with a key its SFU lacks.
2. An old key is removed from the Secret: it signs nothing more, and its public key stays
   published until every token it signed has expired, then it is withdrawn and the SFUs
   refuse tokens signed by it.

Pure: the clock is an argument.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from switchboard_api.contract import JOIN_PUBLIC_KEY_SUFFIX, JOIN_TOKEN_LEEWAY_SECONDS
from switchboard_operator.logic.jointokens import JoinKeys


@dataclass(frozen=True)
class RetiringKey:
    public: Ed25519PublicKey
    until: float
    """When the last token it signed has expired (leeway included)."""


class JoinKeyRing:
    def __init__(self, keys: JoinKeys) -> None:
        self._keys = keys
        self._expiries: dict[str, float] = {}
        """Per key, when the last token it signed expires."""
        self._retiring: dict[str, RetiringKey] = {}

    @property
    def keys(self) -> JoinKeys:
        """The keys of the Secret as last read."""
        return self._keys

    def replace(self, keys: JoinKeys, now: float) -> bool:
        """The Secret's keys as read now; True if what is published or signs changed."""
        changed = set(keys.private) != set(self._keys.private)
        for kid, private in self._keys.private.items():
            if kid in keys.private:
                continue
            until = self._expiries.get(kid, float("-inf")) + JOIN_TOKEN_LEEWAY_SECONDS
            if until > now:
                self._retiring[kid] = RetiringKey(private.public_key(), until)
        for kid in keys.private:
            self._retiring.pop(kid, None)  # back in the Secret: an ordinary key again
        self._keys = keys
        return changed

    def signing_kid(self, held: Sequence[str] | None) -> str:
        """The key that signs a token for a pod holding `held` (its last report's
        `joinKeyIds`): the newest key of the Secret that the pod holds. A pod that does
        not say (an older SFU) gets the newest key; a pod holding none of them too (its
        token will be refused, as before any rotation)."""
        if held is not None:
            usable = [kid for kid in held if kid in self._keys.private]
            if usable:
                return max(usable)
        return self._keys.signing_kid

    def signed(self, kid: str, expires: float) -> None:
        """A token signed with `kid` expires at `expires`: the key must outlive it."""
        self._expiries[kid] = max(expires, self._expiries.get(kid, expires))

    def public_pems(self, now: float) -> dict[str, str]:
        """ConfigMap data, `<kid>.pub` → PEM: the Secret's keys and the retiring keys whose
        tokens may still be alive at `now`."""
        published = {kid: key.public_key() for kid, key in self._keys.private.items()}
        for kid, retiring in self._retiring.items():
            if retiring.until > now:
                published[kid] = retiring.public
        return {
            f"{kid}{JOIN_PUBLIC_KEY_SUFFIX}": _pem(key) for kid, key in sorted(published.items())
        }

    def next_withdrawal(self, now: float) -> float | None:
        """When the next retiring key must be withdrawn (None if none is retiring); keys
        already past their time are forgotten."""
        for kid in [kid for kid, r in self._retiring.items() if r.until <= now]:
            del self._retiring[kid]
        return min((r.until for r in self._retiring.values()), default=None)


def _pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
