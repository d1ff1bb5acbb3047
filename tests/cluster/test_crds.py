"""The generated CRDs, as the real API server enforces and shows them."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client import ApiClient, CustomObjectsApi
from kubernetes.client.exceptions import ApiException

from fixtures.waiting import wait_for
from switchboard_api.invalid_cases import InvalidCase, invalid_cases
from switchboard_api.region import Region, RegionSpec
from switchboard_api.resources import GROUP, REGION, ROOM, VERSION
from switchboard_api.room import Room

pytestmark = pytest.mark.cluster

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"
MODELS: dict[str, type[Region] | type[Room]] = {"Region": Region, "Room": Room}


def _examples() -> list[dict[str, Any]]:
    return [
        document
        for path in sorted(EXAMPLES_DIR.glob("*.yaml"))
        for document in yaml.safe_load_all(path.read_text())
        if document
    ]


def _first_example(kind: str) -> dict[str, Any]:
    return next(example for example in _examples() if example["kind"] == kind)


CASES: list[InvalidCase] = [
    case for kind, model in MODELS.items() for case in invalid_cases(model, _first_example(kind))
]


def _create(api: CustomObjectsApi, body: dict[str, Any], dry_run: str | None = None) -> dict:
    options = {"dry_run": dry_run} if dry_run else {}
    if body["kind"] == REGION.kind:
        return api.create_cluster_custom_object(GROUP, VERSION, REGION.plural, body, **options)
    namespace = body["metadata"].get("namespace", "default")
    return api.create_namespaced_custom_object(
        GROUP, VERSION, namespace, ROOM.plural, body, **options
    )


def _words(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def api(crds_installed) -> Iterator[CustomObjectsApi]:
    client: ApiClient = crds_installed.api_client()
    with client:
        yield CustomObjectsApi(client)


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:6]


def test_crds_are_listed_under_the_switchboard_category(crds_installed):
    listed = crds_installed.kubectl("api-resources", "--categories=switchboard", "-o", "name")
    assert set(listed.stdout.split()) == {
        f"{REGION.plural}.{GROUP}",
        f"{ROOM.plural}.{GROUP}",
    }
    short = crds_installed.kubectl("api-resources", "--api-group", GROUP, "--no-headers")
    assert re.search(r"^regions\s+rgn\s+\S+\s+false\s+Region$", short.stdout, re.M)
    assert re.search(r"^rooms\s+rm\s+\S+\s+true\s+Room$", short.stdout, re.M)


@pytest.mark.parametrize("example", _examples(), ids=lambda e: e["metadata"]["name"])
def test_every_example_is_accepted_and_defaulted_like_the_model(api, example, unique):
    body = json.loads(json.dumps(example))
    body["metadata"]["name"] = f"{example['metadata']['name']}-{unique}"
    created = _create(api, body, dry_run="All")
    expected = MODELS[example["kind"]].model_validate(body).to_wire()["spec"]
    assert created["spec"] == expected


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_invalid_object_is_rejected_naming_the_offending_field(api, case):
    with pytest.raises(ApiException) as raised:
        _create(api, case.body, dry_run="All")
    assert raised.value.status == 422, raised.value.body
    status = json.loads(raised.value.body)
    fields = {cause.get("field") for cause in status["details"].get("causes", [])}
    assert case.field in fields, status["message"]


def test_generated_table_covers_every_kind_of_constraint():
    broken = {case.broken_by.split(" ")[0] for case in CASES}
    assert {"type", "minimum", "maximum", "enum", "pattern", "required"} <= broken
    assert any(case.broken_by.startswith("self.") for case in CASES)  # CEL rules
    assert len(CASES) >= 15


@pytest.fixture
def region_and_room(crds_installed, api, unique) -> Iterator[tuple[str, str, str]]:
    region_body = _first_example("Region")
    region = region_body["metadata"]["name"] = f"columns-{unique}"
    namespace = crds_installed.create_namespace(f"crds-{unique}")
    room_body = _first_example("Room")
    room = room_body["metadata"]["name"] = f"room-{unique}"
    room_body["metadata"]["namespace"] = namespace
    _create(api, region_body)
    _create(api, room_body)
    try:
        yield region, namespace, room
    finally:
        api.delete_cluster_custom_object(GROUP, VERSION, REGION.plural, region)
        crds_installed.kubectl("delete", "namespace", namespace, "--wait=false")


def _table(output: str) -> list[list[str]]:
    return [re.split(r"\s{2,}", line.strip()) for line in output.strip().splitlines()]


def test_kubectl_get_shows_the_printer_columns(crds_installed, api, region_and_room):
    region, namespace, room = region_and_room
    max_participants = str(_first_example("Room")["spec"]["maxParticipants"])
    # A Closed room's status is the one an operator running in this session never writes
    # (it writes only the closing it decided itself): patched until kubectl shows it, as
    # an operator's first pass over the new Room may land after the first patch.
    status = {"phase": "Closed", "region": region, "pod": "sfu-0", "participants": 3}

    def rooms_shown() -> list[list[str]] | None:
        api.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, ROOM.plural, room, {"status": status}
        )
        rooms = _table(crds_installed.kubectl("get", "rooms", "-A").stdout)
        row = next(r for r in rooms if r[:2] == [namespace, room])
        return rooms if row[2:7] == ["Closed", region, "sfu-0", "3", max_participants] else None

    rooms = wait_for(rooms_shown, 30, "the patched status in kubectl's columns")

    regions = _table(crds_installed.kubectl("get", "regions").stdout)
    assert regions[0] == [
        "NAME",
        "LAT",
        "LON",
        "DESIRED",
        "AVAILABLE",
        "ROOMS",
        "LOAD",
        "READY",
        "AGE",
    ]
    row = next(r for r in regions if r[0] == region)
    location = _first_example("Region")["spec"]["location"]
    assert row[1:3] == [str(location["latitude"]), str(location["longitude"])]

    header = ["NAMESPACE", "NAME", "PHASE", "REGION", "POD", "PARTICIPANTS", "MAX", "AGE"]
    assert rooms[0] == header

    both = crds_installed.kubectl("get", "switchboard", "-A").stdout
    assert f"region.{GROUP}/{region}" in both
    assert f"room.{GROUP}/{room}" in both


def test_kubectl_explain_shows_the_field_descriptions(crds_installed):
    explained = _words(crds_installed.kubectl("explain", "region.spec.sfu").stdout)
    assert _words(RegionSpec.model_fields["sfu"].description or "") in explained
    sfu_model = RegionSpec.model_fields["sfu"].annotation
    for field in sfu_model.model_fields.values():
        assert _words(field.description or "") in explained, field.alias
