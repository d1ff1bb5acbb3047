"""Join-token keys over a rotation: which key signs for a pod, and which public keys the
SFU pods are given while a key is added and another removed."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from switchboard_api.contract import JOIN_TOKEN_LEEWAY_SECONDS
from switchboard_operator.logic.join_key_ring import JoinKeyRing
from switchboard_operator.logic.jointokens import JoinKeys

OLD, NEW = "20260101-aaaa", "20260201-bbbb"
KEYS = {OLD: Ed25519PrivateKey.generate(), NEW: Ed25519PrivateKey.generate()}


def keys(*kids: str) -> JoinKeys:
    return JoinKeys(signing_kid=max(kids), private={kid: KEYS[kid] for kid in kids})


def published(ring: JoinKeyRing, now: float) -> set[str]:
    return {name.removesuffix(".pub") for name in ring.public_pems(now)}


def test_a_new_key_is_published_at_once_and_signs_only_for_pods_that_hold_it():
    ring = JoinKeyRing(keys(OLD))
    assert ring.replace(keys(OLD, NEW), now=100.0)
    assert published(ring, 100.0) == {OLD, NEW}
    assert ring.signing_kid([OLD]) == OLD
    assert ring.signing_kid([OLD, NEW]) == NEW
    assert ring.signing_kid([NEW]) == NEW
    # A pod that does not say (an older SFU) gets the newest, as before.
    assert ring.signing_kid(None) == NEW
    # Ids the Secret does not hold are never chosen.
    assert ring.signing_kid(["zzz-unknown", OLD]) == OLD


def test_a_removed_key_stays_published_until_its_last_token_expires():
    ring = JoinKeyRing(keys(OLD, NEW))
    ring.signed(OLD, expires=400.0)
    ring.signed(OLD, expires=350.0)  # an earlier expiry does not shorten it
    assert ring.replace(keys(NEW), now=200.0)
    assert ring.signing_kid([OLD, NEW]) == NEW
    assert ring.signing_kid([OLD]) == NEW  # it no longer signs, even for a pod that lacks NEW
    until = 400.0 + JOIN_TOKEN_LEEWAY_SECONDS
    assert published(ring, until - 0.1) == {OLD, NEW}
    assert ring.next_withdrawal(until - 0.1) == until
    assert published(ring, until) == {NEW}
    assert ring.next_withdrawal(until) is None


def test_a_removed_key_that_signed_nothing_is_withdrawn_at_once():
    ring = JoinKeyRing(keys(OLD, NEW))
    ring.replace(keys(OLD), now=50.0)
    assert published(ring, 50.0) == {OLD}
    assert ring.next_withdrawal(50.0) is None


def test_an_unchanged_secret_changes_nothing():
    ring = JoinKeyRing(keys(OLD, NEW))
    assert not ring.replace(keys(OLD, NEW), now=1.0)
