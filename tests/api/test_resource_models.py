"""Region and Room models: what they accept, reject, default and compute."""

import copy

import pytest
from api_examples import example_objects, first_example
from pydantic import ValidationError

from switchboard_api import defaults
from switchboard_api.invalid_cases import invalid_cases, python_error_fields
from switchboard_api.region import Region
from switchboard_api.room import Room, RoomSpec

MODELS = {"Region": Region, "Room": Room}
CASES = [
    case for kind, model in MODELS.items() for case in invalid_cases(model, first_example(kind))
]


def test_examples_cover_both_kinds():
    kinds = [obj["kind"] for obj in example_objects()]
    assert kinds.count("Region") >= 2
    assert kinds.count("Room") >= 2


@pytest.mark.parametrize("example", example_objects(), ids=lambda e: e["metadata"]["name"])
def test_every_example_is_valid_and_round_trips(example):
    model = MODELS[example["kind"]]
    parsed = model.model_validate(example)
    assert model.model_validate(parsed.to_wire()) == parsed


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_model_rejects_each_invalid_case_at_the_same_field_as_the_api_server(case):
    assert case.field in python_error_fields(MODELS[case.kind], case.body)


def test_invalid_table_is_large_and_covers_every_constraint_kind():
    assert len(CASES) >= 15
    broken = {case.broken_by.split(" ")[0] for case in CASES}
    assert {"type", "minimum", "maximum", "enum", "pattern", "maxLength", "required"} <= broken
    rules = [rule for model in (Region, Room) for rule in _all_rules(model)]
    assert {case.broken_by for case in CASES} >= {rule.rule for rule in rules}


def _all_rules(model):
    seen, pending, rules = set(), [model], []
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        rules.extend(getattr(current, "cel_rules", ()))
        for field in current.model_fields.values():
            for candidate in (field.annotation, *getattr(field.annotation, "__args__", ())):
                if isinstance(candidate, type) and hasattr(candidate, "model_fields"):
                    pending.append(candidate)
    return rules


def test_region_defaults_come_from_the_defaults_module():
    region = Region.model_validate(
        {"metadata": {"name": "x"}, "spec": {"location": {"latitude": 0, "longitude": 0}}}
    )
    assert region.spec.namespace == defaults.REGION_NAMESPACE
    # Images are the operator's (the chart's), never stored in a Region by the API server.
    assert region.spec.sfu.image is None and region.spec.sfu.image_pull_policy is None
    assert region.spec.turn.image is None and region.spec.turn.image_pull_policy is None
    assert region.spec.sfu.capacity_per_pod == defaults.SFU_CAPACITY_PER_POD
    assert region.spec.turn.credential_ttl_seconds == defaults.TURN_CREDENTIAL_TTL_SECONDS
    assert region.topology_region == "x"


def test_wire_names_are_camel_case_with_kubernetes_initialisms():
    region = Region.model_validate(first_example("Region")).to_wire()
    assert {"capacityPerPod", "minReplicas", "publicURLTemplate"} & set(region["spec"]["sfu"])
    assert {"credentialTTLSeconds", "allowedPeerCIDRs", "relayPortRange"} <= set(
        region["spec"]["turn"]
    )


def test_python_field_names_are_accepted_too():
    spec = RoomSpec(max_participants=4, empty_timeout_seconds=0)
    assert spec.to_wire()["maxParticipants"] == 4


def test_cross_field_rule_is_enforced_in_python_with_the_rule_message():
    body = copy.deepcopy(first_example("Region"))
    body["spec"]["sfu"].update(minReplicas=3, maxReplicas=2)
    with pytest.raises(ValidationError, match="minReplicas must not exceed maxReplicas"):
        Region.model_validate(body)


def test_room_reservation_counts_forwarded_streams_in_capacity_units():
    spec = RoomSpec.model_validate(
        {
            "maxParticipants": 5,
            "mediaProfile": {"videoPublishers": 2, "audioPublishers": 3, "videoBitrateKbps": 500},
        }
    )
    # 2 video streams to 4 receivers at half the reference bitrate, 3 audio streams to 4.
    assert spec.reservation_units() == pytest.approx(2 * 4 * 0.5 + 3 * 4 * 0.1)


def test_a_room_alone_reserves_nothing():
    assert RoomSpec(max_participants=1).reservation_units() == 0


def test_a_small_room_with_the_default_profile_counts_only_admitted_publishers():
    # The default profile expects 2 video and 4 audio publishers; two people can be at most 2.
    assert RoomSpec(max_participants=2).reservation_units() == pytest.approx(2 * 1 + 2 * 0.1)


def test_room_key_is_namespace_slash_name():
    room = Room.model_validate({"metadata": {"name": "standup", "namespace": "team-a"}})
    assert room.key == "team-a/standup"
