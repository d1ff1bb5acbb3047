"""TURN credentials follow coturn's `use-auth-secret` REST scheme byte for byte."""

import base64
import hashlib
import hmac

import pytest

from switchboard_turn.credentials import mint_turn_credential, turn_password

# Computed independently with OpenSSL:
#   printf '1700000000:alice' | openssl dgst -sha1 -hmac 'north-wind-secret' -binary | base64
KNOWN_SECRET = b"north-wind-secret"
KNOWN_USERNAME = "1700000000:alice"
KNOWN_PASSWORD = "r/l6ttQtMIfbS2lfULS0mDRRNUg="


def test_password_matches_known_vector() -> None:
    assert turn_password(KNOWN_SECRET, KNOWN_USERNAME) == KNOWN_PASSWORD


def test_minted_username_is_expiry_then_identity() -> None:
    credential = mint_turn_credential(
        KNOWN_SECRET, "alice", now_unix=1_699_999_400.7, ttl_seconds=600
    )

    assert credential.username == KNOWN_USERNAME
    assert credential.password == KNOWN_PASSWORD
    assert credential.expires_at == 1_700_000_000


def test_coturn_check_accepts_the_credential() -> None:
    """What coturn does on an Allocate: parse the expiry, recompute the HMAC, compare."""
    credential = mint_turn_credential(b"s3cret", "bob@example", now_unix=1000, ttl_seconds=60)

    expiry = int(credential.username.split(":", 1)[0])
    expected = base64.b64encode(
        hmac.new(b"s3cret", credential.username.encode(), hashlib.sha1).digest()
    ).decode()
    assert expiry == 1060
    assert credential.password == expected


def test_ice_server_entry_has_webrtc_field_names() -> None:
    credential = mint_turn_credential(b"k", "carol", now_unix=0, ttl_seconds=1)

    entry = credential.ice_server(["turn:turn.example:3478?transport=udp"])

    assert entry == {
        "urls": ["turn:turn.example:3478?transport=udp"],
        "username": "1:carol",
        "credential": credential.password,
    }


@pytest.mark.parametrize(("secret", "ttl"), [(b"", 60), (b"k", 0), (b"k", -5)])
def test_rejects_unusable_inputs(secret: bytes, ttl: int) -> None:
    with pytest.raises(ValueError):
        mint_turn_credential(secret, "dave", now_unix=0, ttl_seconds=ttl)
