"""A container's environment: precedence, valueFrom sources, envFrom, and missing references."""

import base64

import pytest

from switchboard_localcluster.nodeagent.downward import PodFacts
from switchboard_localcluster.nodeagent.environment import (
    EnvConfigError,
    ReferencedObjects,
    container_environment,
    env_references,
)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


POD = {
    "metadata": {"name": "web-1", "namespace": "apps", "uid": "u-1", "labels": {"tier": "front"}},
    "spec": {"nodeName": "n1", "serviceAccountName": "web", "containers": [{"name": "web"}]},
}
FACTS = PodFacts(POD, pod_ip="127.10.0.9", host_ip="127.10.0.1", node_allocatable={"cpu": "4"})
OBJECTS = ReferencedObjects(
    config_maps={
        "settings": {"data": {"mode": "fast", "LEVEL": "3", "bad key": "x"}},
        "gone": None,
    },
    secrets={"creds": {"data": {"password": b64("s3cret"), "TOKEN": b64("t0k")}}},
)
SERVICE_ENV = {"KUBERNETES_SERVICE_HOST": "127.0.0.1"}
IMAGE_ENV = {"PATH": "/usr/bin", "MODE": "image-default"}


def env_of(container: dict, objects: ReferencedObjects = OBJECTS) -> dict[str, str]:
    return container_environment(
        FACTS, {"name": "web", **container}, objects, SERVICE_ENV, IMAGE_ENV
    )


def test_literals_expand_against_earlier_variables_and_service_links() -> None:
    env = env_of(
        {
            "env": [
                {"name": "A", "value": "a"},
                {"name": "B", "value": "$(A)-$(KUBERNETES_SERVICE_HOST)-$(LATER)"},
                {"name": "LATER", "value": "z"},
            ]
        }
    )
    assert env["B"] == "a-127.0.0.1-$(LATER)"


def test_value_from_sources() -> None:
    env = env_of(
        {
            "env": [
                {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {
                    "name": "TIER",
                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['tier']"}},
                },
                {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
                {
                    "name": "MODE",
                    "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}},
                },
                {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
            ]
        }
    )
    assert env["POD"] == "web-1"
    assert env["IP"] == "127.10.0.9"
    assert env["TIER"] == "front"
    assert env["CPU"] == "4"
    assert env["MODE"] == "fast"
    assert env["PW"] == "s3cret"


def test_env_from_with_prefix_skips_invalid_names_and_env_wins() -> None:
    env = env_of(
        {
            "envFrom": [
                {"configMapRef": {"name": "settings"}, "prefix": "CFG_"},
                {"secretRef": {"name": "creds"}},
            ],
            "env": [{"name": "TOKEN", "value": "explicit"}],
        }
    )
    assert env["CFG_mode"] == "fast"
    assert env["CFG_LEVEL"] == "3"
    assert not any(" " in name for name in env)
    assert env["TOKEN"] == "explicit"


def test_precedence_image_then_service_links_then_container() -> None:
    env = env_of({"env": [{"name": "MODE", "value": "container"}]})
    assert env["MODE"] == "container"
    assert env["PATH"] == "/usr/bin"
    assert env["KUBERNETES_SERVICE_HOST"] == "127.0.0.1"


@pytest.mark.parametrize(
    ("container", "message"),
    [
        (
            {
                "env": [
                    {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "k"}}}
                ]
            },
            'configmap "gone" not found',
        ),
        (
            {
                "env": [
                    {"name": "X", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "nope"}}}
                ]
            },
            "couldn't find key nope in secret creds",
        ),
        ({"envFrom": [{"secretRef": {"name": "absent"}}]}, 'secret "absent" not found'),
    ],
)
def test_missing_references_are_config_errors(container: dict, message: str) -> None:
    with pytest.raises(EnvConfigError, match=message):
        env_of(container)


def test_optional_missing_references_are_skipped() -> None:
    env = env_of(
        {
            "envFrom": [{"secretRef": {"name": "absent", "optional": True}}],
            "env": [
                {
                    "name": "X",
                    "valueFrom": {
                        "configMapKeyRef": {"name": "gone", "key": "k", "optional": True}
                    },
                }
            ],
        }
    )
    assert "X" not in env


def test_references_are_collected_for_fetching() -> None:
    containers = [
        {"envFrom": [{"configMapRef": {"name": "a"}}, {"secretRef": {"name": "s1"}}]},
        {"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "s2", "key": "k"}}}]},
    ]
    assert env_references(containers) == ({"a"}, {"s1", "s2"})
