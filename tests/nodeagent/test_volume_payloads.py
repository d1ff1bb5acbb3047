"""Volume contents: which files ConfigMap, Secret, downwardAPI and projected volumes hold."""

import base64

import pytest

from switchboard_localcluster.nodeagent.downward import PodFacts
from switchboard_localcluster.nodeagent.volumes import (
    FileContent,
    TokenSource,
    VolumeError,
    VolumeObjects,
    token_sources,
    volume_payload,
    volume_references,
)

POD = {
    "metadata": {"name": "p", "namespace": "n", "uid": "u", "labels": {"a": "1"}},
    "spec": {"containers": [{"name": "c"}]},
}
FACTS = PodFacts(POD, "127.10.0.2", "127.10.0.1")
TOKEN = TokenSource(volume="kube-api", path="token", audience=None, expiration_seconds=3607)
OBJECTS = VolumeObjects(
    config_maps={
        "cfg": {
            "data": {"a.conf": "x=1\n", "b.conf": "y=2\n"},
            "binaryData": {"blob": base64.b64encode(b"\x00\x01").decode()},
        },
        "kube-root-ca.crt": {"data": {"ca.crt": "PEM"}},
    },
    secrets={"tls": {"data": {"tls.key": base64.b64encode(b"KEY").decode()}}, "gone": None},
    tokens={TOKEN: "jwt"},
)


def test_config_map_all_keys_default_mode() -> None:
    payload = volume_payload({"name": "v", "configMap": {"name": "cfg"}}, FACTS, OBJECTS)
    assert payload == {
        "a.conf": FileContent(b"x=1\n", 0o644),
        "b.conf": FileContent(b"y=2\n", 0o644),
        "blob": FileContent(b"\x00\x01", 0o644),
    }


def test_secret_items_and_modes() -> None:
    volume = {
        "name": "v",
        "secret": {
            "secretName": "tls",
            "defaultMode": 0o400,
            "items": [{"key": "tls.key", "path": "keys/server.key"}],
        },
    }
    assert volume_payload(volume, FACTS, OBJECTS) == {"keys/server.key": FileContent(b"KEY", 0o400)}


def test_missing_objects_and_keys() -> None:
    with pytest.raises(VolumeError, match='secret "gone" not found'):
        volume_payload({"name": "v", "secret": {"secretName": "gone"}}, FACTS, OBJECTS)
    assert (
        volume_payload(
            {"name": "v", "secret": {"secretName": "gone", "optional": True}}, FACTS, OBJECTS
        )
        == {}
    )
    with pytest.raises(VolumeError, match="nope"):
        volume_payload(
            {"name": "v", "configMap": {"name": "cfg", "items": [{"key": "nope", "path": "x"}]}},
            FACTS,
            OBJECTS,
        )


def test_projected_service_account_volume_as_kubernetes_injects_it() -> None:
    volume = {
        "name": "kube-api",
        "projected": {
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {
                    "configMap": {
                        "name": "kube-root-ca.crt",
                        "items": [{"key": "ca.crt", "path": "ca.crt"}],
                    }
                },
                {
                    "downwardAPI": {
                        "items": [
                            {"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}
                        ]
                    }
                },
            ],
        },
    }
    assert token_sources([volume]) == [TOKEN]
    assert volume_payload(volume, FACTS, OBJECTS) == {
        "token": FileContent(b"jwt", 0o644),
        "ca.crt": FileContent(b"PEM", 0o644),
        "namespace": FileContent(b"n", 0o644),
    }


def test_token_sources_carry_audience_and_expiry() -> None:
    volume = {
        "name": "t",
        "projected": {
            "sources": [
                {
                    "serviceAccountToken": {
                        "audience": "switchboard",
                        "expirationSeconds": 600,
                        "path": "tok",
                    }
                }
            ]
        },
    }
    assert token_sources([volume]) == [TokenSource("t", "tok", "switchboard", 600)]


def test_references_are_collected() -> None:
    volumes = [
        {"name": "a", "configMap": {"name": "c1"}},
        {"name": "b", "secret": {"secretName": "s1"}},
        {
            "name": "c",
            "projected": {"sources": [{"secret": {"name": "s2"}}, {"configMap": {"name": "c2"}}]},
        },
        {"name": "d", "emptyDir": {}},
    ]
    assert volume_references(volumes) == ({"c1", "c2"}, {"s1", "s2"})
