"""Bad input, fuzzed: the join API of the real operator, driven by requests generated from
its own OpenAPI document (docs/join-api.openapi.yaml), answers every one without a server
error and with a response the document describes.

Two keys, both rate-limited high enough that every request reaches the logic: one admitted
to the fuzzed namespace, where a Region with a ready SFU pod places what the join creates;
one admitted to every namespace (`*`), with which a join may name any namespace, most of
which do not exist.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import kubernetes
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from fixtures.cluster import Cluster, apply
from fixtures.cluster import get_json as get
from fixtures.waiting import wait_for
from switchboard_api.kube_types import DNS_LABEL_PATTERN
from switchboard_api.resources import GROUP, ROOM, VERSION
from switchboard_dev.operator_process import OPERATOR_NAMESPACE

pytestmark = [pytest.mark.cluster, pytest.mark.nodeagent]

OPENAPI = Path(__file__).resolve().parents[2] / "docs" / "join-api.openapi.yaml"
REGION, MEDIA_NS, FUZZ_NS = "fuzz-eu", "e2e-fuzz-media", "e2e-fuzz-rooms"
FUZZ_LABEL = {"switchboard.dev/fuzz": "true"}
NAMESPACE_KEY = "fuzz-namespace-key-0123456789"
ANY_NAMESPACE_KEY = "fuzz-any-namespace-key-0123456789"
EXAMPLES = 120
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    ignored_auth,
]

schema = schemathesis.openapi.from_path(OPENAPI)
_DNS_LABEL = re.compile(DNS_LABEL_PATTERN)


def api_key(name: str, key: str, namespaces: str) -> dict:
    data = {
        "key": key,
        "namespaces": namespaces,
        "create": "true",
        # High enough that no request of the run is limited: the logic is what is fuzzed.
        "ratePerSecond": "100000",
        "burst": "100000",
    }
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": OPERATOR_NAMESPACE,
            "labels": {"switchboard.dev/api-key": "true"},
        },
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def ready_sfu_pods(cluster: Cluster) -> list[dict]:
    items = get(cluster, "pods", "-n", MEDIA_NS, "-l", "app.kubernetes.io/component=sfu")["items"]
    return [
        p
        for p in items
        if any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in (p.get("status") or {}).get("conditions") or []
        )
    ]


@dataclass
class FuzzTarget:
    base_url: str
    rooms: kubernetes.client.CustomObjectsApi

    def forget(self, response) -> None:
        """Delete a Room a join placed, so the run never fills the Region."""
        if response.status_code != 200:
            return
        namespace, name = response.json()["room"].split("/")
        try:
            self.rooms.delete_namespaced_custom_object(GROUP, VERSION, namespace, ROOM.plural, name)
        except kubernetes.client.ApiException as error:
            if error.status != 404:
                raise


@pytest.fixture(scope="module")
def target(operator, node_agent, crds_installed) -> Iterator[FuzzTarget]:
    cluster = crds_installed
    cluster.create_namespace(MEDIA_NS, {"pod-security.kubernetes.io/enforce": "restricted"})
    cluster.create_namespace(FUZZ_NS, FUZZ_LABEL)
    apply(
        cluster,
        {
            "apiVersion": "switchboard.dev/v1alpha1",
            "kind": "Region",
            "metadata": {"name": REGION},
            "spec": {
                "namespace": MEDIA_NS,
                "topologyRegion": "eu-west",
                "location": {"latitude": 48.1, "longitude": 11.6},
                "namespaceSelector": {"matchLabels": FUZZ_LABEL},
                "sfu": {
                    "minReplicas": 1,
                    "maxReplicas": 1,
                    # Room enough for the largest room a join may create, many times over.
                    "capacityPerPod": 100000,
                    "highWaterMark": 1.0,
                },
                "turn": {"enabled": False},
            },
        },
    )
    apply(cluster, api_key("fuzz-namespace", NAMESPACE_KEY, FUZZ_NS))
    apply(cluster, api_key("fuzz-any-namespace", ANY_NAMESPACE_KEY, "*"))
    wait_for(lambda: ready_sfu_pods(cluster), 120, "a ready SFU pod")
    api = cluster.api_client()
    try:
        yield FuzzTarget(operator.http_url, kubernetes.client.CustomObjectsApi(api))
    finally:
        cluster.kubectl("delete", "secret", "-n", OPERATOR_NAMESPACE, "fuzz-namespace")
        cluster.kubectl("delete", "secret", "-n", OPERATOR_NAMESPACE, "fuzz-any-namespace")
        cluster.kubectl("delete", "namespace", FUZZ_NS, "--wait=false")
        cluster.kubectl("delete", "region", REGION, "--wait=false")
        api.close()


FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    derandomize=True,
)


@schema.parametrize()
@FUZZ_SETTINGS
def test_joins_into_the_admitted_namespace(case, target):
    # A valid namespace becomes the admitted one, so the join reaches placement; an invalid
    # one stays, as the part of the request the API must refuse.
    namespace = case.path_parameters.get("namespace")
    if isinstance(namespace, str) and _DNS_LABEL.fullmatch(namespace):
        case.path_parameters["namespace"] = FUZZ_NS
    response = case.call_and_validate(
        base_url=target.base_url,
        headers={"Authorization": f"Bearer {NAMESPACE_KEY}"},
        checks=CHECKS,
        timeout=30,
    )
    target.forget(response)


@schema.parametrize()
@FUZZ_SETTINGS
def test_joins_into_any_namespace(case, target):
    response = case.call_and_validate(
        base_url=target.base_url,
        headers={"Authorization": f"Bearer {ANY_NAMESPACE_KEY}"},
        checks=CHECKS,
        timeout=30,
    )
    target.forget(response)
