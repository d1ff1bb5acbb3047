"""API keys from Secrets: which Secrets count, what a key may do, and that unusable Secrets
are skipped loudly without ever revealing a key value."""

from __future__ import annotations

import base64
import logging

import pytest
from joinapi_fakes import api_key_secret

from switchboard_operator.joinapi.apikeys import DEFAULT_RATE, SecretApiKeyStore
from switchboard_operator.logic.ratelimit import Rate

KEY = "k3y-value-0123456789abcdef"


def _store(*secrets) -> SecretApiKeyStore:
    return SecretApiKeyStore(list(secrets))


def test_a_key_resolves_to_its_policy():
    store = _store(
        api_key_secret(
            "partner",
            {
                "key": KEY,
                "namespaces": "team-a, team-b",
                "create": "true",
                "ratePerSecond": "2.5",
                "burst": "5",
            },
        )
    )

    policy = store.lookup(KEY)

    assert policy is not None
    assert policy.name == "partner"
    assert policy.allows_namespace("team-a") and policy.allows_namespace("team-b")
    assert not policy.allows_namespace("team-c")
    assert policy.may_create is True
    assert policy.rate == Rate(per_second=2.5, burst=5)


def test_only_the_exact_key_value_matches():
    store = _store(api_key_secret("partner", {"key": KEY, "namespaces": "team-a"}))

    assert store.lookup(KEY + "x") is None
    assert store.lookup(KEY[:-1]) is None
    assert store.lookup("") is None


def test_a_star_allows_every_namespace_and_defaults_apply():
    store = _store(api_key_secret("ops", {"key": KEY, "namespaces": "*"}))

    policy = store.lookup(KEY)

    assert policy is not None
    assert policy.allows_namespace("anything")
    assert policy.may_create is False
    assert policy.rate == DEFAULT_RATE


def test_a_trailing_newline_in_the_stored_key_is_ignored():
    # `kubectl create secret --from-file` keeps the file's final newline.
    store = _store(api_key_secret("partner", {"key": KEY + "\n", "namespaces": "team-a"}))

    assert store.lookup(KEY) is not None


def test_secrets_without_the_api_key_label_are_not_keys():
    store = _store(api_key_secret("unrelated", {"key": KEY, "namespaces": "*"}, labelled=False))

    assert store.lookup(KEY) is None


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        ({"key": "short", "namespaces": "*"}, "at least 16"),
        ({"namespaces": "*"}, "at least 16"),
        ({"key": "has a space in it 0123456789", "namespaces": "*"}, "whitespace"),
        ({"key": KEY}, "namespaces is required"),
        ({"key": KEY, "namespaces": " , "}, "names no namespace"),
        ({"key": KEY, "namespaces": "team-a,Team_B"}, "Team_B"),
        ({"key": KEY, "namespaces": "*", "create": "yes"}, "'true' or 'false'"),
        ({"key": KEY, "namespaces": "*", "ratePerSecond": "0"}, "ratePerSecond"),
        ({"key": KEY, "namespaces": "*", "ratePerSecond": "inf"}, "ratePerSecond"),
        ({"key": KEY, "namespaces": "*", "burst": "1.5"}, "burst"),
        ({"key": KEY, "namespaces": "*", "burst": "0"}, "burst"),
    ],
)
def test_unusable_secrets_are_skipped_with_a_warning_that_hides_the_key(data, complaint, caplog):
    caplog.set_level(logging.WARNING)
    good_key = "good-key-0123456789abcdef"
    store = _store(
        api_key_secret("broken", data),
        api_key_secret("fine", {"key": good_key, "namespaces": "*"}),
    )

    assert store.names == {"fine"}
    assert store.lookup(data.get("key", "").strip()) is None
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "secret=broken" in warning
    assert complaint in warning
    assert KEY not in warning


def test_data_that_is_not_base64_is_skipped():
    secret = api_key_secret("broken", {"namespaces": "*"})
    secret["data"]["key"] = "not base64!"  # type: ignore[index]

    assert _store(secret).names == set()


def test_two_secrets_with_the_same_key_value_keep_the_first_by_name(caplog):
    caplog.set_level(logging.WARNING)
    store = _store(
        api_key_secret("zeta", {"key": KEY, "namespaces": "team-z"}),
        api_key_secret("alpha", {"key": KEY, "namespaces": "team-a"}),
    )

    policy = store.lookup(KEY)

    assert policy is not None and policy.name == "alpha"
    assert any("secret=zeta" in r.getMessage() for r in caplog.records)


def test_replace_swaps_every_key_at_once():
    old_key, new_key = "old-key-0123456789abcdef", "new-key-0123456789abcdef"
    store = _store(api_key_secret("partner", {"key": old_key, "namespaces": "*"}))

    store.replace([api_key_secret("partner", {"key": new_key, "namespaces": "*"})])

    assert store.lookup(old_key) is None
    assert store.lookup(new_key) is not None


def test_the_store_keeps_no_key_value():
    store = _store(api_key_secret("partner", {"key": KEY, "namespaces": "*"}))

    kept = repr(vars(store))
    assert KEY not in kept
    assert base64.b64encode(KEY.encode()).decode() not in kept
