"""Every refusal of the join API is a JSON error with a stable code and the right status,
and nothing is placed for a request that is refused before placement."""

from __future__ import annotations

import json

import pytest
from joinapi_fakes import OPS_KEY, SLOW_KEY, TEAM_KEY, VIEWER_KEY

from switchboard_operator.joinapi import RoomUnschedulable
from switchboard_operator.joinapi import handler as join_handler
from switchboard_operator.joinapi.models import ErrorBody
from switchboard_operator.logic.placement import UnschedulableReason


async def _error(response, status: int, code: str) -> ErrorBody:
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    body = ErrorBody.model_validate(await response.json())
    assert body.error.code == code
    assert body.error.message
    return body


# -- authentication and authorisation ---------------------------------------------------


async def test_a_request_without_an_api_key_is_unauthenticated(join_api):
    response = await join_api.join(key=None)

    await _error(response, 401, "unauthenticated")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert join_api.placements.calls == []


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer not-a-key-anyone-has-0123",
        f"Basic {TEAM_KEY}",
        "Bearer",
        f"Bearer {TEAM_KEY}x",
    ],
)
async def test_an_unknown_key_or_scheme_is_unauthenticated(join_api, authorization):
    response = await join_api.join(key=None, headers={"Authorization": authorization})

    body = await _error(response, 401, "unauthenticated")
    assert TEAM_KEY not in body.error.message
    assert join_api.placements.calls == []


async def test_a_key_for_another_namespace_is_forbidden(join_api):
    response = await join_api.join(namespace="team-b")

    body = await _error(response, 403, "namespace_forbidden")
    assert "team-b" in body.error.message
    assert join_api.placements.calls == []


async def test_an_unknown_room_without_create_permission_is_forbidden(join_api):
    response = await join_api.join(name="new-room", key=VIEWER_KEY)

    body = await _error(response, 403, "room_creation_forbidden")
    assert "team-a/new-room" in body.error.message
    [call] = join_api.placements.calls
    assert call.create is False
    assert "team-a/new-room" not in join_api.placements.rooms


async def test_a_key_without_create_permission_joins_existing_rooms(join_api):
    await join_api.join(name="daily", key=TEAM_KEY)

    response = await join_api.join(name="daily", key=VIEWER_KEY)

    assert response.status == 200


async def test_an_unknown_room_with_create_false_is_not_found(join_api):
    response = await join_api.join(name="nobody-here", body={"identity": "a", "create": False})

    await _error(response, 404, "room_not_found")
    assert "team-a/nobody-here" not in join_api.placements.rooms


async def test_a_room_to_create_in_a_namespace_that_does_not_exist_is_not_found(join_api):
    join_api.placements.missing_namespaces.add("nowhere")

    response = await join_api.join(namespace="nowhere", name="standup", key=OPS_KEY)

    body = await _error(response, 404, "namespace_not_found")
    assert "'nowhere'" in body.error.message
    assert "nowhere/standup" not in join_api.placements.rooms


# -- rate limiting ----------------------------------------------------------------------


async def test_a_key_over_its_rate_is_told_when_to_retry(join_api):
    assert (await join_api.join(key=SLOW_KEY)).status == 200
    assert (await join_api.join(key=SLOW_KEY)).status == 200
    placed_before = len(join_api.placements.calls)

    limited = await join_api.join(key=SLOW_KEY)

    await _error(limited, 429, "rate_limited")
    assert limited.headers["Retry-After"] == "1"
    assert len(join_api.placements.calls) == placed_before
    # Other keys have their own buckets.
    assert (await join_api.join(key=TEAM_KEY)).status == 200

    join_api.clock.advance(1.0)
    assert (await join_api.join(key=SLOW_KEY)).status == 200
    assert (await join_api.join(key=SLOW_KEY)).status == 429


async def test_rate_limiting_applies_before_the_request_is_read(join_api):
    for _ in range(2):
        await join_api.join(key=SLOW_KEY)

    response = await join_api.join(key=SLOW_KEY, data=b"{not json", headers={})

    await _error(response, 429, "rate_limited")


# -- malformed requests -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("namespace", "name"),
    [
        ("Team-A", "standup"),
        ("team_a", "standup"),
        ("team-a", "-standup"),
        ("team-a", "x" * 64),
        ("team-a", "standup%0A"),  # a trailing newline
        ("team-a%0A", "standup"),
    ],
)
async def test_names_that_are_not_dns_labels_are_refused(join_api, namespace, name):
    response = await join_api.join(namespace=namespace, name=name, key=OPS_KEY)

    await _error(response, 400, "invalid_name")
    assert join_api.placements.calls == []


@pytest.mark.parametrize(
    "data",
    [b"{not json", b'{"identity": "a"', b"", b"   "],
)
async def test_a_body_that_is_not_json_is_refused(join_api, data):
    response = await join_api.join(data=data, headers={"Content-Type": "application/json"})

    await _error(response, 400, "invalid_json")
    assert join_api.placements.calls == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], "body"),
        ("alice", "body"),
        ({}, "identity"),
        ({"identity": 42}, "identity"),
        ({"identity": ""}, "identity"),
        ({"identity": "x" * 101}, "identity"),
        ({"identity": "line\nbreak"}, "identity"),
        ({"identity": "a", "create": "true"}, "create"),
        ({"identity": "a", "maxParticipants": "5"}, "maxParticipants"),
        ({"identity": "a", "maxParticipants": 0}, "maxParticipants"),
        ({"identity": "a", "location": {"latitude": "48", "longitude": 2}}, "location.latitude"),
        ({"identity": "a", "location": {"latitude": 91, "longitude": 2}}, "location.latitude"),
        ({"identity": "a", "location": {"lat": 48, "longitude": 2}}, "location"),
        ({"identity": "a", "region": "EU West"}, "region"),
        ({"identity": "a", "grants": {"publsh": False}}, "grants.publsh"),
        ({"identity": "a", "grants": {"publish": "no"}}, "grants.publish"),
        ({"identity": "a", "maxParticipant": 5}, "maxParticipant"),
    ],
)
async def test_a_body_not_matching_the_schema_is_refused_naming_the_field(join_api, body, field):
    response = await join_api.join(body=body)

    error = await _error(response, 400, "invalid_request")
    assert field in error.error.message
    assert join_api.placements.calls == []


async def test_an_oversized_body_is_refused(join_api):
    body = {"identity": "a", "padding": "x" * (17 * 1024)}

    response = await join_api.join(body=body)

    await _error(response, 413, "body_too_large")
    assert join_api.placements.calls == []


async def test_an_oversized_chunked_body_is_refused(join_api):
    async def chunks():
        yield b'{"identity": "a", "padding": "'
        for _ in range(40):
            yield b"x" * 1024
        yield b'"}'

    response = await join_api.join(
        data=chunks(), headers={"Content-Type": "application/json"}, chunked=True
    )

    await _error(response, 413, "body_too_large")


async def test_a_body_that_is_not_json_by_content_type_is_refused(join_api):
    response = await join_api.join(
        data=json.dumps({"identity": "a"}), headers={"Content-Type": "text/plain"}
    )

    await _error(response, 415, "unsupported_media_type")


# -- placement failures -----------------------------------------------------------------


async def test_a_room_that_no_pod_has_capacity_for_is_unavailable_with_the_reason(join_api):
    join_api.placements.unschedulable["team-a/standup"] = RoomUnschedulable(
        UnschedulableReason.REGION_FULL, "Region 'eu-west' has no pod with 12 free units"
    )

    response = await join_api.join()

    body = await _error(response, 503, "room_unschedulable")
    assert body.error.reason == "RegionFull"
    assert "Region 'eu-west' has no pod with 12 free units" in body.error.message


async def test_a_room_pinned_to_a_missing_region_is_a_conflict(join_api):
    join_api.placements.unschedulable["team-a/standup"] = RoomUnschedulable(
        UnschedulableReason.REGION_NOT_FOUND, "the room is pinned to Region 'mars'"
    )

    response = await join_api.join()

    body = await _error(response, 409, "room_unschedulable")
    assert body.error.reason == "RegionNotFound"
    assert "mars" in body.error.message


async def test_a_replica_that_does_not_act_as_leader_issues_no_token(join_api):
    join_api.placements.term = None
    response = await join_api.join(body={"identity": "alice"})
    await _error(response, 503, "not_leading")
    assert join_api.placements.calls == []  # nothing placed or created either


async def test_a_placement_that_times_out_is_a_gateway_timeout(join_api):
    join_api.placements.stuck.add("team-a/standup")

    response = await join_api.join()

    body = await _error(response, 504, "placement_timeout")
    assert "team-a/standup" in body.error.message


async def test_a_port_that_never_gives_up_is_cut_off(join_api, monkeypatch):
    monkeypatch.setattr(join_handler, "TIMEOUT_GRACE_SECONDS", 0.05)
    join_api.placements.ignores_timeout.add("team-a/standup")

    response = await join_api.join()

    await _error(response, 504, "placement_timeout")


async def test_an_unexpected_failure_is_an_internal_error_without_details(join_api):
    join_api.placements.broken.add("team-a/standup")

    response = await join_api.join()

    body = await _error(response, 500, "internal_error")
    assert "exploded" not in body.error.message


# -- routing ----------------------------------------------------------------------------


async def test_other_methods_and_paths_answer_in_the_error_shape(join_api):
    get = await join_api.client.get("/v1/namespaces/team-a/rooms/standup/join")
    await _error(get, 405, "method_not_allowed")
    assert "POST" in get.headers["Allow"]

    missing = await join_api.client.post("/v1/namespaces/team-a/rooms/standup")
    await _error(missing, 404, "not_found")
