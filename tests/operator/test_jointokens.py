"""Join tokens as the control plane signs them: EdDSA with the key's id in the header, and
the claims the contract names, timed by the clock the caller passes."""

from __future__ import annotations

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from switchboard_api.contract import (
    JOIN_TOKEN_AUDIENCE,
    JOIN_TOKEN_ISSUER,
    JoinGrants,
    JoinTokenClaims,
)
from switchboard_api.defaults import JOIN_TOKEN_TTL_SECONDS
from switchboard_operator.logic.jointokens import issue_join_token, join_claims, sign_join_token

NOW = 1_750_000_000.7
KEY = Ed25519PrivateKey.generate()


def _issue(**overrides):
    arguments = {
        "identity": "alice",
        "room": "team-a/standup",
        "pod": "sfu-0",
        "pod_uid": "uid-0",
        "grants": JoinGrants(publish=False),
        "key": KEY,
        "kid": "20260101-cafe",
        "now_unix": NOW,
    } | overrides
    return issue_join_token(**arguments)


def test_the_header_names_eddsa_and_the_key_id():
    header = jwt.get_unverified_header(_issue().token)

    assert header["alg"] == "EdDSA"
    assert header["kid"] == "20260101-cafe"


def _verify(token: str, public_key) -> dict:
    # Times are the claims tests' business: NOW is a fixed instant, not the test's clock.
    return jwt.decode(
        token,
        public_key,
        algorithms=["EdDSA"],
        audience=JOIN_TOKEN_AUDIENCE,
        options={"verify_exp": False, "verify_nbf": False, "verify_iat": False},
    )


def test_the_signature_verifies_with_the_public_key_only():
    token = _issue().token

    assert _verify(token, KEY.public_key())["sub"] == "alice"
    with pytest.raises(jwt.InvalidSignatureError):
        _verify(token, Ed25519PrivateKey.generate().public_key())


def test_the_claims_are_the_contracts_in_wire_form():
    issued = _issue()
    payload = jwt.decode(issued.token, options={"verify_signature": False})

    assert payload == {
        "iss": JOIN_TOKEN_ISSUER,
        "aud": JOIN_TOKEN_AUDIENCE,
        "sub": "alice",
        "room": "team-a/standup",
        "pod": "sfu-0",
        "podUID": "uid-0",
        "grants": {"publish": False, "subscribe": True, "data": True},
        "iat": 1_750_000_000,
        "nbf": 1_750_000_000,
        "exp": 1_750_000_000 + JOIN_TOKEN_TTL_SECONDS,
    }
    assert JoinTokenClaims.model_validate(payload) == issued.claims


def test_the_ttl_sets_the_expiry():
    claims = join_claims(
        identity="bob",
        room="a/b",
        pod="p",
        pod_uid="u",
        grants=JoinGrants(),
        now_unix=100.0,
        ttl_seconds=30,
    )

    assert (claims.iat, claims.nbf, claims.exp) == (100, 100, 130)


@pytest.mark.parametrize("ttl", [0, -5])
def test_a_ttl_that_is_not_positive_is_refused(ttl):
    with pytest.raises(ValueError, match="TTL"):
        _issue(ttl_seconds=ttl)


@pytest.mark.parametrize("kid", ["", "../escape", "a/b", ".hidden"])
def test_a_key_id_no_sfu_could_look_up_is_refused(kid):
    claims = _issue().claims

    with pytest.raises(ValueError, match="key id"):
        sign_join_token(claims, KEY, kid)
