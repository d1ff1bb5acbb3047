"""Downward API values: pod fields and container resources as the kubelet exposes them."""

from decimal import Decimal

import pytest

from switchboard_localcluster.nodeagent.downward import (
    DownwardAPIError,
    PodFacts,
    field_value,
    format_map,
    resource_value,
)
from switchboard_localcluster.nodeagent.quantity import parse_quantity

POD = {
    "metadata": {
        "name": "sfu-0",
        "namespace": "media",
        "uid": "1234",
        "labels": {"app": "sfu", "topology.kubernetes.io/region": "eu-west"},
        "annotations": {"note": 'say "hi"'},
    },
    "spec": {
        "nodeName": "eu-west-a-1",
        "serviceAccountName": "sfu",
        "containers": [
            {
                "name": "sfu",
                "resources": {
                    "limits": {"cpu": "1500m", "memory": "512Mi"},
                    "requests": {"cpu": "250m"},
                },
            },
            {"name": "sidecar"},
        ],
    },
}
FACTS = PodFacts(
    POD, pod_ip="127.10.0.7", host_ip="127.10.0.1", node_allocatable={"cpu": "8", "memory": "16Gi"}
)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("metadata.name", "sfu-0"),
        ("metadata.namespace", "media"),
        ("metadata.uid", "1234"),
        ("metadata.labels['topology.kubernetes.io/region']", "eu-west"),
        ("metadata.annotations['note']", 'say "hi"'),
        ("metadata.labels['absent']", ""),
        ("spec.nodeName", "eu-west-a-1"),
        ("spec.serviceAccountName", "sfu"),
        ("status.podIP", "127.10.0.7"),
        ("status.hostIP", "127.10.0.1"),
    ],
)
def test_field_paths(path: str, expected: str) -> None:
    assert field_value(FACTS, path) == expected


def test_label_map_is_sorted_quoted_lines() -> None:
    assert field_value(FACTS, "metadata.labels") == (
        'app="sfu"\ntopology.kubernetes.io/region="eu-west"'
    )
    assert format_map({"b": "2", "a": 'x"y'}) == 'a="x\\"y"\nb="2"'


def test_unknown_field_path_is_an_error() -> None:
    with pytest.raises(DownwardAPIError):
        field_value(FACTS, "status.phase")


@pytest.mark.parametrize(
    ("container", "resource", "divisor", "expected"),
    [
        ("sfu", "limits.cpu", None, "2"),  # 1.5 cores round up
        ("sfu", "limits.cpu", "1m", "1500"),
        ("sfu", "requests.cpu", "1m", "250"),
        ("sfu", "limits.memory", "1Mi", "512"),
        ("sfu", "requests.memory", None, "0"),
        ("sidecar", "limits.cpu", None, "8"),  # unset limit: node allocatable
        ("sidecar", "limits.memory", "1Gi", "16"),
    ],
)
def test_resource_field_refs(
    container: str, resource: str, divisor: str | None, expected: str
) -> None:
    ref = {"resource": resource, **({"divisor": divisor} if divisor else {})}
    assert resource_value(FACTS, container, ref) == expected


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("250m", Decimal("0.25")),
        ("1Gi", Decimal(2**30)),
        ("1e3", Decimal(1000)),
        ("2k", Decimal(2000)),
        ("3", Decimal(3)),
        ("100n", Decimal("1e-7")),
    ],
)
def test_quantities(text: str, value: Decimal) -> None:
    assert parse_quantity(text) == value


def test_bad_quantity_is_rejected() -> None:
    with pytest.raises(ValueError, match="quantity"):
        parse_quantity("12 apples")
